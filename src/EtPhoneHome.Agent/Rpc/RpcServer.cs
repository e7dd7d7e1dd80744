using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// The agent's loopback RPC listener behind the tunnel. Every connection must complete the mutual
/// handshake over the current session secret before a single request is read; without a session there is
/// no secret and every connection is closed at once. Connections are served concurrently, requests on one
/// connection one after another.
/// <para>
/// Anyone on the server can connect to the tunnel port, so the two kinds of connection are bounded apart.
/// Connections still in their handshake (at most <see cref="MaxPendingConnections"/>, each for at most the
/// handshake timeout) cost a socket, a few small objects and a buffer that grows only with the bytes the peer
/// actually sends; when they are all taken the oldest is closed to admit the new one
/// (<see cref="HandshakeQueue"/>). Authenticated connections have their own limit,
/// <see cref="MaxConnections"/>; past it the first request is answered BUSY.
/// </para>
/// </summary>
public sealed class RpcServer : IAsyncDisposable
{
    /// <summary>Authenticated connections served at once; the next one's request is answered BUSY.</summary>
    public const int MaxConnections = 128;

    /// <summary>Connections in their handshake at once; a new one past it closes the oldest.</summary>
    public const int MaxPendingConnections = 64;

    /// <summary>Largest per-stream output cap a request may ask for (both streams must fit in one frame).</summary>
    public const long MaxOutputCapLimit = Framing.MaxFrameBytes / 4;

    /// <summary>
    /// Default time a connection has to complete the handshake (including waiting for a session): the operators' own
    /// handshake time (10 s, counted from before their connect), so an operator that is merely slow — a thousand
    /// handshakes at once on a loaded machine brought proofs after 3 s — is served instead of refused, and when time
    /// does run out the operator's own timeout speaks first. What bounds idle connections is the pending bound with
    /// eviction of the oldest (<see cref="MaxPendingConnections"/>), not this time.
    /// </summary>
    public static readonly TimeSpan DefaultHandshakeTimeout = TimeSpan.FromSeconds(10);

    private readonly TimeSpan _handshakeTimeout;

    private readonly TcpListener _listener;
    private readonly string[]? _agentAllowedPaths;
    private readonly long _configuredMaxOutputBytes;
    private readonly SemaphoreSlim _slots;
    private readonly int _maxConnections;
    private readonly HandshakeQueue _pending;
    private readonly CancellationTokenSource _stopping = new();
    private readonly IdleTrimmer _trimmer;
    private readonly Stopwatch _uptime = Stopwatch.StartNew();
    private readonly object _sync = new();
    private Session? _session;
    private TaskCompletionSource _sessionSet = NewSignal();
    private Task? _acceptLoop;

    public RpcServer(int port = 0, long maxOutputBytes = CommandLimits.DefaultMaxOutputBytes, string[]? agentAllowedPaths = null, TimeSpan? handshakeTimeout = null,
        int maxConnections = MaxConnections, int maxPendingConnections = MaxPendingConnections)
        : this(IdleTrimmer.ForProcess, port, maxOutputBytes, agentAllowedPaths, handshakeTimeout, maxConnections, maxPendingConnections)
    {
    }

    /// <summary>
    /// The GC and the array pool are the process's, so is "no request in flight": every server of a process shares one
    /// trimmer (<see cref="IdleTrimmer.ForProcess"/> by default), or one server's idle time would collect in the middle of
    /// another's burst, and a process holding many servers would collect once per server.
    /// </summary>
    internal RpcServer(IdleTrimmer trimmer, int port = 0, long maxOutputBytes = CommandLimits.DefaultMaxOutputBytes, string[]? agentAllowedPaths = null,
        TimeSpan? handshakeTimeout = null, int maxConnections = MaxConnections, int maxPendingConnections = MaxPendingConnections)
    {
        _trimmer = trimmer;
        _handshakeTimeout = handshakeTimeout ?? DefaultHandshakeTimeout;
        _maxConnections = maxConnections;
        _slots = new SemaphoreSlim(maxConnections, maxConnections);
        _pending = new HandshakeQueue(maxPendingConnections);
        _listener = new TcpListener(IPAddress.Loopback, port);
        _configuredMaxOutputBytes = Math.Clamp(maxOutputBytes, 1, MaxOutputCapLimit);
        _agentAllowedPaths = agentAllowedPaths;
    }

    /// <summary>The trimmer this server reports its requests to (the process's unless one was given).</summary>
    internal IdleTrimmer Trimmer => _trimmer;

    /// <summary>The bound port (valid after <see cref="Start"/>).</summary>
    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Connections in their handshake now.</summary>
    public int PendingConnections => _pending.Count;

    /// <summary>Connections closed so far to make room for newer ones in their handshake.</summary>
    public long EvictedConnections => _pending.Evicted;

    /// <summary>True while a session secret is set (between welcome and the end of the SSH session).</summary>
    public bool HasSession
    {
        get
        {
            lock (_sync)
            {
                return _session is not null;
            }
        }
    }

    public void Start()
    {
        // A deep backlog: the accept loop evicts at once, but a burst must not have the kernel drop an operator's connection
        // before the loop sees it.
        _listener.Start(512);
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>Installs the secret and settings of a session the hub welcomed.</summary>
    public void SetSession(byte[] secret, string uuid, SessionSettings? settings)
    {
        ArgumentNullException.ThrowIfNull(secret);
        var maxOutput = settings is { MaxOutputBytes: > 0 } s ? Math.Min(s.MaxOutputBytes, MaxOutputCapLimit) : _configuredMaxOutputBytes;
        lock (_sync)
        {
            _session = new Session((byte[])secret.Clone(), uuid, maxOutput, new PathPolicy(_agentAllowedPaths, settings?.AllowedPaths));
            _sessionSet.TrySetResult();
        }
    }

    /// <summary>Forgets the secret: from now on every connection is closed before the handshake.</summary>
    public void ClearSession()
    {
        lock (_sync)
        {
            _session = null;
            if (_sessionSet.Task.IsCompleted)
            {
                _sessionSet = NewSignal();
            }
        }
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// The current session, waiting (within the handshake timeout) for one to be set. The hub connects to the
    /// tunnel right after it sends the welcome, on another SSH channel, so that connection can arrive before the
    /// welcome has been read. Nothing is read from the connection while waiting.
    /// </summary>
    private async Task<Session?> AwaitSessionAsync(CancellationToken ct)
    {
        Task signal;
        lock (_sync)
        {
            if (_session is not null)
            {
                return _session;
            }

            signal = _sessionSet.Task;
        }

        try
        {
            await signal.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return null;
        }

        return CurrentSession();
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        _listener.Stop();
        if (_acceptLoop is not null)
        {
            try
            {
                await _acceptLoop.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
            }
        }

        _listener.Dispose();
        _stopping.Dispose();
    }

    private Session? CurrentSession()
    {
        lock (_sync)
        {
            return _session;
        }
    }

    private async Task AcceptLoopAsync()
    {
        var ct = _stopping.Token;
        while (!ct.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                AgentLog.Warn($"rpc accept failed: {ex.SocketErrorCode}");
                continue;
            }

            // No thread and no large buffer per connection until it has proved the secret: the handshake is
            // asynchronous, and the proof is read into a buffer that grows only as its bytes arrive.
            var abort = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var place = _pending.Admit(() => Abort(client, abort));
            _ = Task.Run(async () =>
            {
                try
                {
                    await ServeConnectionAsync(client, place, abort.Token, ct).ConfigureAwait(false);
                }
                catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or ObjectDisposedException or InvalidOperationException)
                {
                    // Evicted, timed out or gone.
                }
                finally
                {
                    _pending.Leave(place);
                    client.Dispose();
                    abort.Dispose();
                }
            }, CancellationToken.None);
        }
    }

    /// <summary>Closes a connection that is still in its handshake (evicted by a newer one).</summary>
    private static void Abort(TcpClient client, CancellationTokenSource abort)
    {
        try
        {
            abort.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // It ended meanwhile.
        }

        client.Dispose();
    }

    private async Task ServeConnectionAsync(TcpClient client, object place, CancellationToken abort, CancellationToken ct)
    {
        Session? session;
        using (var wait = CancellationTokenSource.CreateLinkedTokenSource(abort))
        {
            wait.CancelAfter(_handshakeTimeout);
            session = await AwaitSessionAsync(wait.Token).ConfigureAwait(false);
        }

        if (session is null)
        {
            return; // no session secret (or evicted): nobody can authenticate
        }

        client.NoDelay = true;
        var stream = client.GetStream();
        try
        {
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(abort))
            {
                handshake.CancelAfter(_handshakeTimeout);
                var proof = await TunnelHandshake.AcceptAsync(stream, session.Secret, session.Uuid, ProtocolInfo.ProductVersion, handshake.Token).ConfigureAwait(false);
                if (proof.Policy is { } policy)
                {
                    // The registry's policy as of this request (the welcome's copy may be older): this connection uses
                    // the agent's own list intersected with it.
                    session = session with { Paths = new PathPolicy(_agentAllowedPaths, policy.AllowedPaths) };
                }
            }
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            if (ex is ProtocolException { Error: ProtocolError.AuthenticationFailed })
            {
                AgentLog.Warn("rpc: a tunnel connection failed the session-secret handshake; closed");
            }
            else if (ex is OperationCanceledException && !abort.IsCancellationRequested)
            {
                // Our time ran out, not the connection's place (an evicted connection is already closed).
                await TunnelHandshake.TryRefuseLateAsync(stream, _handshakeTimeout).ConfigureAwait(false);
            }

            return;
        }

        if (!_pending.Leave(place))
        {
            return; // evicted just as it finished: already closed
        }

        if (!_slots.Wait(0))
        {
            await AnswerBusyAsync(stream, ct).ConfigureAwait(false);
            return;
        }

        try
        {
            await ServeRequestsAsync(client, stream, session, ct).ConfigureAwait(false);
        }
        finally
        {
            _slots.Release();
        }
    }

    /// <summary>An authenticated connection past the limit: its first request is answered BUSY, then it is closed.</summary>
    private async Task AnswerBusyAsync(NetworkStream stream, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(_handshakeTimeout);
        try
        {
            var frame = await Framing.ReadFrameAsync(stream, Framing.MaxFrameBytes, limit.Token).ConfigureAwait(false);
            if (frame is null)
            {
                return;
            }

            long id = 0;
            try
            {
                using var document = JsonDocument.Parse(frame);
                if (document.RootElement.ValueKind == JsonValueKind.Object && document.RootElement.TryGetProperty("id", out var idElement))
                {
                    idElement.TryGetInt64(out id);
                }
            }
            catch (JsonException)
            {
                // Answered with id 0.
            }

            await Wire.WriteAsync(stream, Error(id, RpcErrorCodes.Busy, $"the agent is serving {_maxConnections} connections, its limit; retry shortly"),
                ProtocolJson.Default.RpcResponse, limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or OperationCanceledException or SocketException)
        {
            // Gone or silent: closed all the same.
        }
    }

    private async Task ServeRequestsAsync(TcpClient client, NetworkStream stream, Session session, CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                byte[]? frame;
                try
                {
                    frame = await Framing.ReadFrameAsync(stream, Framing.MaxFrameBytes, ct).ConfigureAwait(false);
                }
                catch (ProtocolException ex)
                {
                    AgentLog.Warn($"rpc: closing connection: {ex.Message}");
                    return;
                }

                if (frame is null)
                {
                    return;
                }

                bool keepOpen;
                _trimmer.Enter();
                try
                {
                    (var response, keepOpen) = await HandleFrameAsync(frame, session, new Connection(client.Client, stream), ct).ConfigureAwait(false);
                    if (response is not null)
                    {
                        await Wire.WriteAsync(stream, response, ProtocolJson.Default.RpcResponse, ct).ConfigureAwait(false);
                    }
                }
                finally
                {
                    _trimmer.Exit();
                }

                if (!keepOpen)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // Peer went away or the agent is stopping.
        }
    }

    private async Task<(RpcResponse? Response, bool KeepOpen)> HandleFrameAsync(byte[] frame, Session session, Connection connection, CancellationToken ct)
    {
        RpcRequest request;
        try
        {
            using var document = JsonDocument.Parse(frame);
            try
            {
                request = Wire.Deserialize<RpcRequest>(frame, ProtocolJson.Default.RpcRequest);
            }
            catch (ProtocolException)
            {
                var id = document.RootElement.ValueKind == JsonValueKind.Object
                    && document.RootElement.TryGetProperty("id", out var idElement)
                    && idElement.TryGetInt64(out var parsed) ? parsed : 0;
                return (Error(id, RpcErrorCodes.InvalidRequest, "not a request: expected {id, method, params}"), false);
            }
        }
        catch (JsonException)
        {
            return (Error(0, RpcErrorCodes.ParseError, "frame is not valid JSON"), false);
        }

        try
        {
            var result = await DispatchAsync(request, session, connection, ct).ConfigureAwait(false);
            return (result is { } r ? new RpcResponse { Id = request.Id, Result = r } : null, true);
        }
        catch (RpcFault fault)
        {
            return (Error(request.Id, fault.Code, fault.Message), true);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (PeerClosedException)
        {
            // The operator went away (or a transfer broke mid-stream): nothing to answer, close the connection.
            return (null, false);
        }
        catch (Exception ex)
        {
            AgentLog.Error($"rpc: {request.Method} failed: {ex}");
            return (Error(request.Id, RpcErrorCodes.Internal, "internal error"), true);
        }
    }

    /// <summary>One RPC method: its parameters and session in, its result out (null when it answered on the stream itself).</summary>
    private delegate Task<JsonElement?> Handler(RpcServer server, RpcRequest request, Session session, Connection connection, CancellationToken ct);

    /// <summary>
    /// Every method the agent serves, by name. A new method is one line here and a handler in Handlers/; an unknown name is
    /// METHOD_NOT_FOUND before anything runs.
    /// </summary>
    private static readonly Dictionary<string, Handler> Handlers = new(StringComparer.Ordinal)
    {
        [RpcMethods.Heartbeat] = (server, _, session, _, _) => Task.FromResult<JsonElement?>(Wire.ToElement(new HeartbeatResult
        {
            Uuid = session.Uuid,
            AgentVersion = ProtocolInfo.ProductVersion,
            UptimeS = (long)server._uptime.Elapsed.TotalSeconds,
            Time = DateTimeOffset.UtcNow,
        }, ProtocolJson.Default.HeartbeatResult)),
        [RpcMethods.RunCommand] = async (_, request, session, connection, ct) =>
        {
            var spec = RunCommandRequest.ToSpec(request.Params, session.MaxOutputBytes, session.Paths);
            var result = await RunUntilPeerClosesAsync(spec, connection.Socket, ct).ConfigureAwait(false);
            return Wire.ToElement(result, ProtocolJson.Default.RunCommandResult);
        },
        [MetricsMethods.GetMetrics] = async (_, request, _, _, ct) => await Metrics.MetricsRpc.HandleAsync(request.Params, Metrics.MetricsCollector.Default, ct).ConfigureAwait(false),
        [ExchangeMethods.Fetch] = async (_, request, session, _, ct) => await ExchangeHandlers.FetchAsync(request.Params, session.Paths, ct).ConfigureAwait(false),
        [ExchangeMethods.Put] = async (_, request, session, _, ct) => await ExchangeHandlers.PutAsync(request.Params, session.Paths, ct).ConfigureAwait(false),
        [FileMethods.ReadFile] = (_, request, session, _, _) => Task.FromResult<JsonElement?>(FileRequests.ReadFile(request.Params, session.Paths)),
        [FileMethods.WriteFile] = (_, request, session, _, _) => Task.FromResult<JsonElement?>(FileRequests.WriteFile(request.Params, session.Paths)),
        [FileMethods.ListFiles] = (_, request, session, _, _) => Task.FromResult<JsonElement?>(FileRequests.ListFiles(request.Params, session.Paths)),
        [FileMethods.Upload] = (_, request, session, connection, ct) => StreamAsync(request, () => FileTransfers.UploadAsync(request, connection.Stream, session.Paths, ct)),
        [FileMethods.Download] = (_, request, session, connection, ct) => StreamAsync(request, () => FileTransfers.DownloadAsync(request, connection.Stream, session.Paths, ct)),
    };

    private Task<JsonElement?> DispatchAsync(RpcRequest request, Session session, Connection connection, CancellationToken ct) =>
        Handlers.TryGetValue(request.Method, out var handler)
            ? handler(this, request, session, connection, ct)
            : throw new RpcFault(RpcErrorCodes.MethodNotFound, $"unknown method: {Truncate(request.Method)}");

    /// <summary>A transfer answers on the stream itself; a fault half way leaves raw bytes in it, so it cannot carry another frame.</summary>
    private static async Task<JsonElement?> StreamAsync(RpcRequest request, Func<Task> transfer)
    {
        try
        {
            await transfer().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is not RpcFault and not OperationCanceledException)
        {
            AgentLog.Warn($"rpc: {request.Method} stopped: {ex.Message}");
            throw new PeerClosedException();
        }

        return null;
    }

    /// <summary>
    /// Runs a command while watching its connection: when the operator closes it (Ctrl+C, a cancelled fan-out, a killed
    /// process) the command's process tree is killed at once instead of running to its timeout. The watch peeks, so a
    /// byte the operator sends meanwhile stays in the socket for the next request.
    /// </summary>
    private static async Task<RunCommandResult> RunUntilPeerClosesAsync(CommandSpec spec, Socket socket, CancellationToken ct)
    {
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var stopWatching = new CancellationTokenSource();
        var watch = WatchForCloseAsync(socket, run, stopWatching.Token);
        try
        {
            return await CommandRunner.RunAsync(spec, run.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new PeerClosedException();
        }
        finally
        {
            await stopWatching.CancelAsync().ConfigureAwait(false);
            await watch.ConfigureAwait(false);
        }
    }

    private static async Task WatchForCloseAsync(Socket socket, CancellationTokenSource cancelOnClose, CancellationToken stop)
    {
        var probe = new byte[1];
        try
        {
            var n = await socket.ReceiveAsync(probe, SocketFlags.Peek, stop).ConfigureAwait(false);
            if (n == 0)
            {
                await cancelOnClose.CancelAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
            // The command finished first.
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            await cancelOnClose.CancelAsync().ConfigureAwait(false);
        }
    }

    private static string Truncate(string value) => value.Length <= 64 ? value : value[..64] + "…";

    private static RpcResponse Error(long id, int code, string message) =>
        new() { Id = id, Error = new RpcError { Code = code, Message = message } };

    private sealed record Session(byte[] Secret, string Uuid, long MaxOutputBytes, PathPolicy Paths);

    private sealed record Connection(Socket Socket, NetworkStream Stream);

    /// <summary>The operator closed the connection while its request ran.</summary>
    private sealed class PeerClosedException : Exception;
}
