using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Services;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Hub;

/// <summary>Who is on an operator connection: the approved operator key's name and role, and where sshd saw it come from.</summary>
public sealed record OperatorIdentity(string Name, string Fingerprint, OperatorRole Role, string? Source)
{
    /// <summary>
    /// Set when the connection is another hub's (its relay key, published in the registry): it may only relay the
    /// fan-out operations, each for a named operator whose own role decides, and only to this hub's own clients.
    /// </summary>
    public string? Hub { get; init; }
}

/// <summary>
/// The hub's operator service: one connection per operator ssh session (relayed by <c>eph-gate operator</c>), many
/// requests in flight on it (<see cref="OperatorFrames"/>), each run through the same Core entry points the cmdlets,
/// verbs and MCP tools use on the server host, recorded with the operator's name, role, surface and source. The role is
/// read again on every request, so a demotion or a removal applies to the next one; a frame that breaks the protocol
/// ends the connection after one error message saying why.
/// </summary>
public sealed partial class OperatorService
{
    /// <summary>
    /// Requests one connection may have in flight; more are refused BUSY. The operator's client holds its calls within
    /// the same bounds (<see cref="OperatorLimits"/>), so only a client that does not count meets the refusal.
    /// </summary>
    public const int MaxInFlight = OperatorLimits.MaxInFlight;

    /// <summary>Transfers (uploads and downloads) one connection may have in flight; each holds buffers of a few MiB.</summary>
    public const int MaxTransfersInFlight = OperatorLimits.MaxTransfersInFlight;

    /// <summary>
    /// Bytes of call messages one connection may have in flight (two of the largest); a call past it is refused BUSY.
    /// Each call keeps its arguments until it ends, and a peer that stops reading keeps every call from ending.
    /// </summary>
    public const long MaxArgumentBytesInFlight = OperatorLimits.MaxArgumentBytesInFlight;

    /// <summary>Connections one operator key may hold at once; the next is told why and closed.</summary>
    public const int MaxConnectionsPerOperator = 16;

    /// <summary>Bytes of an upload the service buffers ahead of the agent (the credit it grants).</summary>
    public const int UploadWindow = 8 * 1024 * 1024;

    /// <summary>Largest download window a client may ask for.</summary>
    public const long MaxDownloadWindow = 64L * 1024 * 1024;

    private readonly Func<RegistryStores> _openRegistry;
    private readonly Func<string, OperatorIdentity?> _currentIdentity;
    private readonly IEphLog _log;
    private readonly ConcurrentDictionary<string, int> _connections = new(StringComparer.Ordinal);

    /// <param name="openRegistry">Opens the registry for one connection (its own SQLite connection; disposed with it).</param>
    /// <param name="currentIdentity">The operator of a key fingerprint as the registry says now; null once removed.</param>
    /// <param name="log">The hub's log.</param>
    public OperatorService(Func<RegistryStores> openRegistry, Func<string, OperatorIdentity?> currentIdentity, IEphLog? log = null)
    {
        _openRegistry = openRegistry ?? throw new ArgumentNullException(nameof(openRegistry));
        _currentIdentity = currentIdentity ?? throw new ArgumentNullException(nameof(currentIdentity));
        _log = log ?? NullLog.Instance;
    }

    /// <summary>The host name the service reports in its hello.</summary>
    public string HostName { get; init; } = Environment.MachineName;

    /// <summary>
    /// How often a connection reads its operator's role again while it is open: a removal then ends it, and a demotion
    /// cancels the calls in flight the new role may not make, even when no new request comes.
    /// </summary>
    public TimeSpan RoleCheckInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// The operations another hub may relay: fan-outs to clients (each for a named operator) and the greeting. Key
    /// decisions, operators, client edits and transfers are never relayed.
    /// </summary>
    public static readonly IReadOnlySet<string> RelayedOperations = new HashSet<string>(StringComparer.Ordinal)
    {
        OperatorOperations.Hello,
        OperatorOperations.RunCommands,
        OperatorOperations.CollectMetrics,
        OperatorOperations.ReadFiles,
        OperatorOperations.WriteFiles,
        OperatorOperations.ListFiles,
    };

    /// <summary>The active operator of a name as the registry says now (a hub's relayed call is for one); null when none.</summary>
    public Func<string, OperatorIdentity?> OperatorByName { get; init; } = _ => null;

    /// <summary>This hub's id (known once the hub started): targets another hub holds go to <see cref="Relay"/>. Null routes nothing.</summary>
    public Func<string?> LocalHubId { get; init; } = () => null;

    /// <summary>How this hub reaches the clients of the others; null relays nothing (their targets are told which hub holds them).</summary>
    public IFleetRelay? Relay { get; init; }

    /// <summary>Replaces how commands reach the agents (tests).</summary>
    internal Func<OperationGuard, ICommandTransport>? CommandTransport { get; init; }

    /// <summary>Replaces the metrics source (tests).</summary>
    internal Func<OperationGuard, Core.Health.IMetricsSource>? MetricsSource { get; init; }

    /// <summary>
    /// The exchange of the operators' exchange operations, with their guard; null reads the hub's own
    /// <c>ETPHONEHOME_R2_*</c> environment at each call (the credentials stay on the server).
    /// </summary>
    public Func<OperationGuard, Core.Exchange.ExchangeClient>? ExchangeConnector { get; init; }

    /// <summary>Serves the connection of an operator the hub checked (the key sshd authenticated), from the session's SSH_CONNECTION.</summary>
    public Task ServeAsync(Stream stream, OperatorRecord op, string? sshConnection, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(op);
        return ServeAsync(stream, new OperatorIdentity(op.Name, op.Fingerprint, op.Role, HubServer.SourceAddress(sshConnection)), ct);
    }

    /// <summary>Serves one operator connection until it ends, then closes the stream; never throws for anything the peer does.</summary>
    public async Task ServeAsync(Stream stream, OperatorIdentity who, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(who);
        if (_connections.AddOrUpdate(who.Fingerprint, 1, (_, n) => n + 1) > MaxConnectionsPerOperator)
        {
            try
            {
                Log(EphLogLevel.Warning, $"operator {UntrustedText.ForTerminal(who.Name)} already holds {MaxConnectionsPerOperator} connections; closing the next");
                await RefuseAsync(stream, $"operator {who.Name} already holds {MaxConnectionsPerOperator} connections to this server; close one first").ConfigureAwait(false);
            }
            finally
            {
                Release(who.Fingerprint);
            }

            return;
        }

        try
        {
            using var connection = new Connection(this, stream, who, ct);
            await connection.RunAsync().ConfigureAwait(false);
        }
        finally
        {
            Release(who.Fingerprint);
        }
    }

    private void Release(string fingerprint)
    {
        while (_connections.TryGetValue(fingerprint, out var n))
        {
            if (n <= 1 ? _connections.TryRemove(new KeyValuePair<string, int>(fingerprint, n)) : _connections.TryUpdate(fingerprint, n - 1, n))
            {
                return;
            }
        }
    }

    /// <summary>Tells a connection the service will not serve it, then closes it; never throws for the peer.</summary>
    private static async Task RefuseAsync(Stream stream, string why)
    {
        try
        {
            using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await OperatorFrames.WriteMessageAsync(stream, new OperatorMessage
            {
                Type = OperatorMessageTypes.Error,
                Id = 0,
                Error = new OperatorError { Code = OperatorErrorCodes.Busy, Message = why },
            }, bound.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
    }

    private void Log(EphLogLevel level, string text) => _log.Write(level, "operators", text);

    /// <summary>One operator connection: its requests, its writer lock, its registry.</summary>
    private sealed partial class Connection : IDisposable
    {
        private readonly OperatorService _service;
        private readonly Stream _stream;
        private readonly OperatorIdentity _who;
        private readonly CancellationTokenSource _life;
        private readonly SemaphoreSlim _writeLock = new(1, 1);
        private readonly ConcurrentDictionary<long, ServerCall> _calls = new();
        private readonly Lazy<RegistryStores> _registry;
        private string? _surface;
        private long _argumentBytes;
        private int _admitted;
        private int _transfers;

        public Connection(OperatorService service, Stream stream, OperatorIdentity who, CancellationToken ct)
        {
            _service = service;
            _stream = stream;
            _who = who;
            _life = CancellationTokenSource.CreateLinkedTokenSource(ct);
            _registry = new Lazy<RegistryStores>(service._openRegistry, LazyThreadSafetyMode.ExecutionAndPublication);
        }

        public async Task RunAsync()
        {
            _service.Log(EphLogLevel.Information, $"operator {UntrustedText.ForTerminal(_who.Name)} ({OperatorRoles.Wire(_who.Role)}) connected from {UntrustedText.ForTerminal(_who.Source ?? "an unknown address")}");
            var watch = WatchRoleAsync();
            try
            {
                while (!_life.IsCancellationRequested)
                {
                    // A data frame's bytes come in a pooled buffer, handed back once written to the agent; a longer
                    // frame (only a message can be) grows with the bytes that arrive.
                    if (await OperatorFrames.ReadPooledAsync(_stream, OperatorFrames.MaxFrameBytes, _life.Token).ConfigureAwait(false) is not { } frame)
                    {
                        break;
                    }

                    await DispatchAsync(frame, frame.Length).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
            }
            catch (ProtocolException ex)
            {
                _service.Log(EphLogLevel.Warning, $"operator {UntrustedText.ForTerminal(_who.Name)} broke the protocol: {UntrustedText.ForTerminal(ex.Message)}; closing");
                await TrySendAsync(new OperatorMessage
                {
                    Type = OperatorMessageTypes.Error,
                    Id = 0,
                    Error = new OperatorError { Code = OperatorErrorCodes.ProtocolViolation, Message = $"the connection was closed: {ex.Message}" },
                }).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // The ssh session ended.
            }
            finally
            {
                await _life.CancelAsync().ConfigureAwait(false);
                var running = _calls.Values.Select(c => c.Task).Where(t => t is not null).ToArray();
                try
                {
                    await Task.WhenAll(running!).WaitAsync(TimeSpan.FromSeconds(15)).ConfigureAwait(false);
                }
                catch (Exception)
                {
                    // Each call logs its own fault; a call stuck past the bound is abandoned with the connection.
                }

                await watch.ConfigureAwait(false);

                // Closing the connection ends the operator's ssh session (and its gate) at once; what it left open of the
                // exchange is aborted after (each abort bounded, a fault logged).
                await _stream.DisposeAsync().ConfigureAwait(false);
                await AbortOpenUploadsAsync().ConfigureAwait(false);
                _service.Log(EphLogLevel.Information, $"operator {UntrustedText.ForTerminal(_who.Name)} disconnected");
            }
        }

        /// <summary>
        /// Reads the operator's role again every <see cref="RoleCheckInterval"/> while the connection is open: a removed
        /// operator's connection ends (its calls in flight are cancelled), and a demoted operator's calls in flight that
        /// the new role may not make are cancelled. Never throws.
        /// </summary>
        private async Task WatchRoleAsync()
        {
            try
            {
                while (true)
                {
                    await Task.Delay(_service.RoleCheckInterval, _life.Token).ConfigureAwait(false);
                    OperatorIdentity? now;
                    try
                    {
                        now = _service._currentIdentity(_who.Fingerprint);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // The registry is busy or unreadable now: the next request reads the role again, and so does the next check.
                        continue;
                    }

                    if (now is null)
                    {
                        _service.Log(EphLogLevel.Warning, $"operator {UntrustedText.ForTerminal(_who.Name)} was removed; closing the connection and cancelling its {_calls.Count} request(s) in flight");
                        await TrySendAsync(new OperatorMessage
                        {
                            Type = OperatorMessageTypes.Error,
                            Id = 0,
                            Error = new OperatorError { Code = OperatorErrorCodes.Forbidden, Message = $"operator {_who.Name} was removed; the connection was closed" },
                        }).ConfigureAwait(false);
                        await _life.CancelAsync().ConfigureAwait(false);
                        return;
                    }

                    foreach (var call in _calls.Values)
                    {
                        // A hub's call is held to the operator it relays for, as the registry says now.
                        var role = now.Hub is null ? now.Role
                            : call.For?.Operator is { Length: > 0 } name && _service.OperatorByName(name) is { } relayedFor ? relayedFor.Role
                            : call.Op == OperatorOperations.Hello ? OperatorRole.Reader : (OperatorRole?)null;
                        if (OperatorOperations.Required.TryGetValue(call.Op, out var needs) && (role is null || role < needs))
                        {
                            try
                            {
                                await call.Cancellation.CancelAsync().ConfigureAwait(false);
                            }
                            catch (ObjectDisposedException)
                            {
                                // It ended meanwhile.
                            }
                        }
                    }
                }
            }
            catch (OperationCanceledException)
            {
            }
        }

        private async Task DispatchAsync(OperatorFrame frame, int size)
        {
            if (frame.IsData)
            {
                if (!_calls.TryGetValue(frame.Id, out var target) || !target.AcceptData(frame.Data))
                {
                    OperatorFrames.ReturnData(frame.Data);
                    throw new ProtocolException(ProtocolError.Malformed, $"data for request {frame.Id}, which takes no data or not that much");
                }

                return;
            }

            var message = frame.Message!;
            switch (message.Type)
            {
                case OperatorMessageTypes.Call:
                    await StartCallAsync(message, size).ConfigureAwait(false);
                    break;
                case OperatorMessageTypes.Cancel:
                    if (_calls.TryGetValue(message.Id, out var cancelled))
                    {
                        await cancelled.Cancellation.CancelAsync().ConfigureAwait(false);
                    }

                    break;
                case OperatorMessageTypes.Credit when message.Bytes is > 0 and var bytes:
                    if (_calls.TryGetValue(message.Id, out var credited))
                    {
                        credited.Grant(bytes);
                    }

                    break;
                case OperatorMessageTypes.End:
                    if (!_calls.TryGetValue(message.Id, out var ended) || !ended.EndData(message.Sha256))
                    {
                        throw new ProtocolException(ProtocolError.Malformed, $"end of data for request {message.Id}, which takes no data");
                    }

                    break;
                default:
                    throw new ProtocolException(ProtocolError.Malformed, $"unknown message type \"{UntrustedText.ForTerminal(message.Type)}\"");
            }
        }

        private async Task StartCallAsync(OperatorMessage message, int size)
        {
            var id = message.Id;
            if (id <= 0 || id > uint.MaxValue)
            {
                throw new ProtocolException(ProtocolError.Malformed, $"request id {id} is out of range");
            }

            if (_calls.ContainsKey(id))
            {
                // Checked first: an error sent for an id in flight is that call's end (see SendAsync).
                throw new ProtocolException(ProtocolError.Malformed, $"request id {id} is already in flight");
            }

            // Calls are admitted here only (the reader's loop); they leave from their own tasks (ReleaseBounds).
            if (Volatile.Read(ref _admitted) >= MaxInFlight)
            {
                await SendErrorAsync(id, OperatorErrorCodes.Busy, $"{MaxInFlight} requests are already in flight on this connection; wait for one to end").ConfigureAwait(false);
                return;
            }

            var transfer = message.Op is OperatorOperations.Upload or OperatorOperations.Download;
            if (transfer && Volatile.Read(ref _transfers) >= MaxTransfersInFlight)
            {
                // Each transfer buffers up to its window: a bound per connection keeps one operator from taking the hub's memory.
                await SendErrorAsync(id, OperatorErrorCodes.Busy, $"{MaxTransfersInFlight} transfers are already in flight on this connection; wait for one to end").ConfigureAwait(false);
                return;
            }

            if (Interlocked.Add(ref _argumentBytes, size) > MaxArgumentBytesInFlight)
            {
                Interlocked.Add(ref _argumentBytes, -size);
                await SendErrorAsync(id, OperatorErrorCodes.Busy, $"the requests in flight on this connection already hold {MaxArgumentBytesInFlight / (1024 * 1024)} MiB of arguments; wait for one to end").ConfigureAwait(false);
                return;
            }

            var call = new ServerCall(this, id, message.Op ?? "", message.Body, _life.Token) { ArgumentBytes = size, For = message.For, Transfer = transfer };
            if (!_calls.TryAdd(id, call))
            {
                Interlocked.Add(ref _argumentBytes, -size);
                throw new ProtocolException(ProtocolError.Malformed, $"request id {id} is already in flight");
            }

            Interlocked.Increment(ref _admitted);
            if (transfer)
            {
                Interlocked.Increment(ref _transfers);
            }

            call.Task = Task.Run(() => RunCallAsync(call));
        }

        private async Task RunCallAsync(ServerCall call)
        {
            try
            {
                if (!OperatorOperations.Required.TryGetValue(call.Op, out var needs))
                {
                    await SendErrorAsync(call.Id, OperatorErrorCodes.UnknownOperation, $"the server has no operation \"{UntrustedText.ForTerminal(call.Op)}\"").ConfigureAwait(false);
                    return;
                }

                // The role as the registry says now: a demotion or removal applies to the very next request.
                var now = _service._currentIdentity(_who.Fingerprint);
                if (now is null)
                {
                    await SendErrorAsync(call.Id, OperatorErrorCodes.Forbidden, $"operator {_who.Name} was removed; ask an admin").ConfigureAwait(false);
                    await _life.CancelAsync().ConfigureAwait(false);
                    return;
                }

                now = now with { Source = _who.Source };
                if (now.Hub is { } hub)
                {
                    now = await RelayedIdentityAsync(call, hub).ConfigureAwait(false);
                    if (now is null)
                    {
                        return;
                    }
                }
                else if (call.For is not null)
                {
                    await SendErrorAsync(call.Id, OperatorErrorCodes.Forbidden, "only a hub relays a request for another operator; nothing was run").ConfigureAwait(false);
                    return;
                }

                if (now.Role < needs)
                {
                    _service.Log(EphLogLevel.Warning, $"operator {UntrustedText.ForTerminal(now.Name)} ({OperatorRoles.Wire(now.Role)}) was refused {call.Op}, which needs {OperatorRoles.Wire(needs)}");
                    await SendAsync(new OperatorMessage
                    {
                        Type = OperatorMessageTypes.Error,
                        Id = call.Id,
                        Error = new OperatorError
                        {
                            Code = OperatorErrorCodes.Forbidden,
                            Needs = OperatorRoles.Wire(needs),
                            Message = $"{call.Op} needs the {OperatorRoles.Wire(needs)} role; operator {now.Name} has {OperatorRoles.Wire(now.Role)}; nothing was changed",
                        },
                    }).ConfigureAwait(false);
                    return;
                }

                JsonElement result;
                using (HistoryAttribution.Begin(OperatorRoles.Wire(now.Role), now.Source))
                {
                    // What the registry records during the call (approvals, edits, operator changes) names the role and source too.
                    result = await RunOperationAsync(call, now).ConfigureAwait(false);
                }

                await SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Result, Id = call.Id, Body = result }).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (call.Cancellation.IsCancellationRequested)
            {
                await TrySendErrorAsync(call.Id, OperatorErrorCodes.Cancelled, "cancelled").ConfigureAwait(false);
            }
            catch (Exception ex) when (Classify(ex) is { } error)
            {
                await TrySendAsync(new OperatorMessage { Type = OperatorMessageTypes.Error, Id = call.Id, Error = error }).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                _service.Log(EphLogLevel.Error, $"operator request {call.Op} failed: {ex}");
                await TrySendErrorAsync(call.Id, OperatorErrorCodes.Internal, $"the server failed: {ex.GetType().Name}").ConfigureAwait(false);
            }
            finally
            {
                ReleaseBounds(call);
                _calls.TryRemove(call.Id, out _);
                call.Dispose();
            }
        }

        /// <summary>
        /// Whom another hub's call is for: the named operator as the registry says now, recorded with where they came
        /// from and through which hub. Null (and the call answered) when the hub may not relay it.
        /// </summary>
        private async Task<OperatorIdentity?> RelayedIdentityAsync(ServerCall call, string hub)
        {
            if (!RelayedOperations.Contains(call.Op))
            {
                _service.Log(EphLogLevel.Warning, $"hub {UntrustedText.ForTerminal(hub)} asked for {call.Op}, which hubs do not relay; refused");
                await SendErrorAsync(call.Id, OperatorErrorCodes.Forbidden, $"hubs relay fan-outs to clients only; {call.Op} is not relayed").ConfigureAwait(false);
                return null;
            }

            if (call.Op == OperatorOperations.Hello)
            {
                return new OperatorIdentity("hub " + hub, _who.Fingerprint, OperatorRole.Reader, _who.Source) { Hub = hub };
            }

            if (call.For is not { Operator: { Length: > 0 } name } origin || _service.OperatorByName(name) is not { } op)
            {
                await SendErrorAsync(call.Id, OperatorErrorCodes.Forbidden,
                    $"hub {hub} relayed {call.Op} for {(call.For?.Operator is { Length: > 0 } n ? $"operator '{UntrustedText.ForTerminal(n)}', who is not an active operator" : "no operator")}; nothing was run").ConfigureAwait(false);
                return null;
            }

            var source = $"{ClipOrigin(origin.Source) ?? "?"} via hub {hub}";
            call.RelaySurface = origin.Surface;
            return op with { Source = source, Hub = hub };
        }

        private static string? ClipOrigin(string? text) => text is null ? null : UntrustedText.ForTerminal(text.Length <= 64 ? text : text[..64]);

        /// <summary>The documented error of an expected fault; null for a fault the server did not expect (logged).</summary>
        private static OperatorError? Classify(Exception ex) => ex switch
        {
            ForbiddenException forbidden => new OperatorError { Code = OperatorErrorCodes.Forbidden, Needs = OperatorRoles.Wire(forbidden.Needs), Message = forbidden.Message },
            UnknownClientsException unknown => new OperatorError
            {
                Code = OperatorErrorCodes.NotFound,
                Names = unknown.Names.ToArray(),
                Message = $"no client matches {string.Join(", ", unknown.Names.Select(n => $"'{UntrustedText.ForTerminal(n)}'"))}; nothing was run",
            },
            InvalidCommandRequestException invalid => new OperatorError { Code = OperatorErrorCodes.InvalidArgument, Field = invalid.Field, Message = invalid.Message },
            RegistryNotFoundException notFound => new OperatorError { Code = OperatorErrorCodes.NotFound, Message = notFound.Message },
            Core.Exchange.ExchangeNotConfiguredException => new OperatorError
            {
                Code = OperatorErrorCodes.NotConfigured,
                Message = "the server has no exchange configured (its hub needs the ETPHONEHOME_R2_* settings; see docs/exchange.md)",
            },
            Core.Exchange.ExchangeHostNotAllowedException host => new OperatorError { Code = OperatorErrorCodes.InvalidArgument, Field = "url", Message = host.Message },
            Core.Exchange.ExchangeException { ErrorCode: "NoSuchKey" } missing => new OperatorError { Code = OperatorErrorCodes.NotFound, Message = missing.Message },
            Core.Exchange.ExchangeException exchange => new OperatorError { Code = OperatorErrorCodes.Failed, Message = exchange.Message },
            RateLimitExceededException limited => new OperatorError { Code = OperatorErrorCodes.RateLimited, Message = limited.Message },
            RegistryValidationException invalidField => new OperatorError { Code = OperatorErrorCodes.InvalidArgument, Field = invalidField.ParamName, Message = invalidField.Message },
            ArgumentException argument => new OperatorError { Code = OperatorErrorCodes.InvalidArgument, Message = argument.Message },
            RpcException rpc => new OperatorError { Code = rpc.CodeName, Message = rpc.Message },
            InvalidOperationException invalidOp => new OperatorError { Code = OperatorErrorCodes.Failed, Message = invalidOp.Message },
            IOException or System.Net.Sockets.SocketException or ProtocolException or TimeoutException =>
                new OperatorError { Code = OperatorErrorCodes.Failed, Message = $"the client could not be reached: {ex.Message}" },
            _ => null,
        };

        internal OperatorServices NewServices(OperatorIdentity who, ServerCall? call = null)
        {
            // A relayed call records the operator it is for, the surface they used, and where they came from through which hub.
            var context = who.Hub is not null
                ? new OperatorContext(who.Name, RemoteSurfaces.Recorded(call?.RelaySurface)) { Role = OperatorRoles.Wire(who.Role), Source = who.Source }
                : new OperatorContext(who.Name, RemoteSurfaces.Recorded(_surface)) { Role = OperatorRoles.Wire(who.Role), Source = _who.Source };
            return new OperatorServices(_registry.Value, context, _service._log, ownsRegistry: false)
            {
                // Another hub's call reaches this hub's own clients only: it is never relayed again.
                Routing = _service.LocalHubId() is { } hub ? new HubRouting(hub, who.Hub is null ? _service.Relay : null) { IsRelayedCall = who.Hub is not null } : null,
                CommandTransport = _service.CommandTransport ?? OperatorServices.TunnelCommands,
                MetricsSource = _service.MetricsSource ?? (guard => new Core.Health.MetricsClient { Guard = guard }),
                ExchangeConnector = _service.ExchangeConnector ?? (guard => Core.Exchange.ExchangeClient.FromEnvironment(guard)),
            };
        }

        internal RegistryStores Registry => _registry.Value;

        internal Task SendAsync(OperatorMessage message) => SendAsync(message, CancellationToken.None);

        internal async Task SendAsync(OperatorMessage message, CancellationToken ct)
        {
            if (message.Type is OperatorMessageTypes.Result or OperatorMessageTypes.Error && message.Id != 0 && _calls.TryGetValue(message.Id, out var ending))
            {
                // A call's end frees its place before it is written: the client frees its own as the end arrives and may
                // send its next call at once, which must not find this one still counted.
                ReleaseBounds(ending);
            }

            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await OperatorFrames.WriteMessageAsync(_stream, message, ct).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }
        }

        internal async Task SendDataAsync(long id, ReadOnlyMemory<byte> data, CancellationToken ct)
        {
            await _writeLock.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                await OperatorFrames.WriteDataAsync(_stream, id, data, ct).ConfigureAwait(false);
            }
            finally
            {
                _writeLock.Release();
            }
        }

        /// <summary>Gives back what a call held of the connection's bounds; once, at its end.</summary>
        private void ReleaseBounds(ServerCall call)
        {
            if (!call.ReleaseBounds())
            {
                return;
            }

            Interlocked.Add(ref _argumentBytes, -call.ArgumentBytes);
            Interlocked.Decrement(ref _admitted);
            if (call.Transfer)
            {
                Interlocked.Decrement(ref _transfers);
            }
        }

        internal Task SendItemAsync<T>(long id, T item, CancellationToken ct) =>
            SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Item, Id = id, Body = OperatorOperations.ToElement(item) }, ct);

        private Task SendErrorAsync(long id, string code, string message) =>
            SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Error, Id = id, Error = new OperatorError { Code = code, Message = message } });

        private Task TrySendErrorAsync(long id, string code, string message) =>
            TrySendAsync(new OperatorMessage { Type = OperatorMessageTypes.Error, Id = id, Error = new OperatorError { Code = code, Message = message } });

        private async Task TrySendAsync(OperatorMessage message)
        {
            try
            {
                using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(5));
                await SendAsync(message, bound.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
            {
                // The connection is gone; nobody is left to tell.
            }
        }

        internal void SetSurface(string? surface) => _surface = surface;

        public void Dispose()
        {
            _life.Dispose();
            if (_registry.IsValueCreated)
            {
                _registry.Value.Dispose();
            }
        }
    }

    /// <summary>An allowed operation asked for something its caller's role may not do; nothing was changed.</summary>
    private sealed class ForbiddenException(OperatorRole needs, string message) : Exception(message)
    {
        public OperatorRole Needs { get; } = needs;
    }

    /// <summary>One request being served: its cancellation, and for uploads the bytes the operator sends.</summary>
    private sealed class ServerCall : IDisposable
    {
        private readonly Channel<ReadOnlyMemory<byte>> _data = Channel.CreateUnbounded<ReadOnlyMemory<byte>>(new UnboundedChannelOptions { SingleReader = true });
        private readonly TaskCompletionSource<string?> _end = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly SemaphoreSlim _creditSignal = new(0);
        private long _expectData;
        private long _credit;

        public ServerCall(Connection connection, long id, string op, JsonElement? args, CancellationToken life)
        {
            Connection = connection;
            Id = id;
            Op = op;
            Args = args;
            Cancellation = CancellationTokenSource.CreateLinkedTokenSource(life);
        }

        public Connection Connection { get; }

        public long Id { get; }

        public string Op { get; }

        public JsonElement? Args { get; }

        /// <summary>Whom a hub relays the call for (the operator's name, surface and source); null on an operator's own call.</summary>
        public RelayOrigin? For { get; init; }

        /// <summary>The surface the relayed call's operator used (recorded in the history).</summary>
        public string? RelaySurface { get; set; }

        /// <summary>The size of the call's message, counted against the connection's bound until the call ends.</summary>
        public int ArgumentBytes { get; init; }

        /// <summary>An upload or a download (bounded apart).</summary>
        public bool Transfer { get; init; }

        private int _released;

        /// <summary>True once: the first time the call gives back its place.</summary>
        public bool ReleaseBounds() => Interlocked.Exchange(ref _released, 1) == 0;

        public CancellationTokenSource Cancellation { get; }

        public Task? Task { get; set; }

        public CancellationToken Token => Cancellation.Token;

        private volatile bool _takesData;

        /// <summary>Allows <paramref name="bytes"/> more bytes from the operator (what the upload granted).</summary>
        public void ExpectData(long bytes)
        {
            _takesData = true;
            Interlocked.Add(ref _expectData, bytes);
        }

        /// <summary>Takes a chunk of the operator's bytes; false when it was not asked for (a protocol violation).</summary>
        public bool AcceptData(ReadOnlyMemory<byte> data)
        {
            if (Interlocked.Add(ref _expectData, -data.Length) < 0)
            {
                return false;
            }

            return _data.Writer.TryWrite(data);
        }

        public ChannelReader<ReadOnlyMemory<byte>> Data => _data.Reader;

        /// <summary>The operator's end of data and the whole file's SHA-256; false when this call took no data.</summary>
        public bool EndData(string? sha256)
        {
            if (!_takesData)
            {
                return false;
            }

            _data.Writer.TryComplete();
            return _end.TrySetResult(sha256);
        }

        public Task<string?> Ended => _end.Task;

        /// <summary>The operator takes <paramref name="bytes"/> more bytes (downloads).</summary>
        public void Grant(long bytes)
        {
            Interlocked.Add(ref _credit, bytes);
            _creditSignal.Release();
        }

        /// <summary>Waits until the operator takes at least one more byte; returns how many.</summary>
        public async Task<long> CreditAsync(CancellationToken ct)
        {
            while (Volatile.Read(ref _credit) <= 0)
            {
                await _creditSignal.WaitAsync(ct).ConfigureAwait(false);
            }

            return Volatile.Read(ref _credit);
        }

        public void Spend(long bytes) => Interlocked.Add(ref _credit, -bytes);

        public void Dispose()
        {
            _data.Writer.TryComplete();
            _end.TrySetCanceled();
            Cancellation.Dispose();
        }
    }
}
