using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Services;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Hub;

/// <summary>
/// This hub's way to the clients the other hubs hold: one SSH connection per other hub (opened at its first use, opened
/// again after a drop), logging in with this hub's relay key to the other hub's operator service, that hub's sshd host
/// key pinned from the registry. Each fan-out sends one call per other hub naming its targets by uuid; that hub fans
/// out to them in parallel and streams the results back. Every target gets one result — an error naming the hub when it
/// cannot be reached or drops half way.
/// </summary>
public sealed class HubRelay : IFleetRelay, IAsyncDisposable
{
    private readonly Func<string, HubRecord?> _findHub;
    private readonly string _keyFile;
    private readonly SshLinkOptions _ssh;
    private readonly ConcurrentDictionary<string, (HubRelayEndpoint Endpoint, RemoteServer Server)> _links = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _lock = new(1, 1);

    /// <param name="findHub">A hub's row as the registry says now.</param>
    /// <param name="keyFile">This hub's relay private key (its public half is published in the registry).</param>
    /// <param name="ssh">How ssh runs (no user config is read: the pinned key and this key decide).</param>
    public HubRelay(Func<string, HubRecord?> findHub, string keyFile, SshLinkOptions? ssh = null)
    {
        _findHub = findHub ?? throw new ArgumentNullException(nameof(findHub));
        _keyFile = keyFile ?? throw new ArgumentNullException(nameof(keyFile));
        _ssh = ssh ?? new SshLinkOptions { ConfigFile = "none" };
    }

    /// <summary>A hub not heard from for longer is not relayed to (its sessions are about to be closed by the survivors).</summary>
    public TimeSpan DeadAfter { get; init; } = TimeSpan.FromSeconds(60);

    public IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(string hubId, IReadOnlyList<FleetTarget> targets, CommandRequest request, FleetOptions options,
        OperatorContext who, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var args = new RunCommandsArgs
        {
            Targets = HubRouting.Selection(targets),
            Request = request,
            ThrottleLimit = options.ThrottleLimit,
            PerTargetTimeoutSeconds = options.PerTargetTimeout?.TotalSeconds,
            MaxErrors = options.MaxErrors?.ToString(),
        };
        return RelayAsync(hubId, targets, who, (remote, origin, c) => remote.RunCommandsAsync(args, null, origin, c), r => r.Uuid, r => r.Error,
            (target, why) => FleetCommandResult.Unstarted(target, CommandStatus.Error, why) with { Failure = FailureKind.Unreachable }, ct);
    }

    public IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(string hubId, IReadOnlyList<FleetTarget> targets, bool summary, FleetMetricsOptions options,
        OperatorContext who, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(options);
        var args = new CollectMetricsArgs
        {
            Targets = HubRouting.Selection(targets),
            Summary = summary,
            ThrottleLimit = options.ThrottleLimit,
            TimeoutSeconds = options.Timeout.TotalSeconds,
        };
        return RelayAsync(hubId, targets, who, (remote, origin, c) => remote.CollectMetricsAsync(args, null, origin, c), r => r.Uuid, r => r.Error,
            (target, why) => new ClientMetricsResult { Uuid = target.Uuid, DisplayName = target.DisplayName, Status = MetricsStatus.Unreachable, Error = why }, ct);
    }

    public IAsyncEnumerable<FleetFileOutcome<T>> FilesAsync<T>(string hubId, string op, IReadOnlyList<FleetTarget> targets, FileOperationArgs args,
        OperatorContext who, CancellationToken ct)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(args);
        var relayed = args with { Targets = HubRouting.Selection(targets) };
        return RelayAsync(hubId, targets, who, (remote, origin, c) => remote.FileOutcomesAsync<T>(op, relayed, origin, c), o => o.Target.Uuid, o => o.Error,
            (target, why) => new FleetFileOutcome<T>(target, CommandStatus.Error, null, why, 0, FailureKind.Unreachable), ct);
    }

    /// <summary>
    /// One relayed fan-out: the other hub's results as they come, then an error for every target it did not answer
    /// (it could not be reached, it went away, or it did not know the client).
    /// </summary>
    private async IAsyncEnumerable<T> RelayAsync<T>(string hubId, IReadOnlyList<FleetTarget> targets, OperatorContext who,
        Func<RemoteOperator, RelayOrigin, CancellationToken, IAsyncEnumerable<T>> run, Func<T, string> uuidOf, Func<T, string?> errorOf, Func<FleetTarget, string, T> failed,
        [EnumeratorCancellation] CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(who);
        var pending = targets.ToDictionary(t => t.Uuid, StringComparer.OrdinalIgnoreCase);
        var origin = new RelayOrigin { Operator = who.Actor, Surface = SurfaceOf(who.Surface), Source = who.Source };
        string? lost = null;
        RemoteOperator? remote = null;
        try
        {
            remote = await LinkAsync(hubId, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            lost = "cancelled before hub " + hubId + " was reached";
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            lost = $"connected to hub {hubId}, which this hub could not reach: {UntrustedText.ForTerminal(ex.Message)}";
        }

        if (remote is not null)
        {
            await using var results = run(remote, origin, ct).GetAsyncEnumerator(ct);
            while (true)
            {
                T item;
                try
                {
                    if (!await results.MoveNextAsync().ConfigureAwait(false))
                    {
                        break;
                    }

                    item = results.Current;
                }
                catch (OperatorRemoteException ex)
                {
                    lost = $"connected to hub {hubId}, which refused the relayed request: {ex.Message}";
                    break;
                }
                catch (Exception ex) when (ex is not OperationCanceledException || ct.IsCancellationRequested)
                {
                    // Whatever the other hub or the link does, its targets are answered here (never a fault of the whole fan-out).
                    lost = ex switch
                    {
                        OperationCanceledException => "cancelled",
                        RemoteConnectionException or IOException or ObjectDisposedException =>
                            $"connected to hub {hubId}, whose connection was lost: {UntrustedText.ForTerminal(ex.Message)}",
                        _ => $"connected to hub {hubId}, whose answer could not be read: {UntrustedText.ForTerminal(ex.Message)}",
                    };
                    break;
                }

                // The link's own answer for a target whose result was lost with the connection is said again below, naming the hub.
                if (errorOf(item) == RemoteOperator.ConnectionLostMessage)
                {
                    lost = $"connected to hub {hubId}, whose connection was lost before its result arrived";
                    continue;
                }

                // Only a target this hub asked about is taken; anything else from the other hub is dropped.
                if (pending.Remove(uuidOf(item)))
                {
                    yield return item;
                }
            }

            lost ??= $"connected to hub {hubId}, which gave no result for it";
        }

        foreach (var target in targets.Where(t => pending.ContainsKey(t.Uuid)))
        {
            yield return failed(target, $"{target.Describe()} is {lost}");
        }
    }

    /// <summary>The surface as the operator named it (the receiving hub records it again with its own suffix).</summary>
    private static string? SurfaceOf(string recorded)
    {
        var plain = recorded.EndsWith("+ssh", StringComparison.Ordinal) ? recorded[..^4] : recorded;
        return plain is Surfaces.PowerShell or Surfaces.Cli or Surfaces.Mcp ? plain : null;
    }

    /// <summary>The open connection to <paramref name="hubId"/>; a new one when its row's address or keys changed.</summary>
    private async Task<RemoteOperator> LinkAsync(string hubId, CancellationToken ct)
    {
        var hub = _findHub(hubId) ?? throw new InvalidOperationException($"hub {hubId} is not in the registry");
        if (!hub.IsAlive(DateTimeOffset.UtcNow, DeadAfter))
        {
            throw new InvalidOperationException($"hub {hubId} has not been heard from since {hub.LastSeen:u}");
        }

        if (hub.Relay is not { } endpoint)
        {
            throw new InvalidOperationException($"hub {hubId} serves no relay (it was started without --relay-address)");
        }

        RemoteServer server;
        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (_links.TryGetValue(hubId, out var link) && link.Endpoint == endpoint)
            {
                server = link.Server;
            }
            else
            {
                if (link.Server is not null)
                {
                    await link.Server.DisposeAsync().ConfigureAwait(false);
                }

                server = new RemoteServer(ServerAddress.Parse(endpoint.Address, _keyFile), HostKey.Parse(endpoint.HostKey), "hub", _ssh);
                _links[hubId] = (endpoint, server);
            }
        }
        finally
        {
            _lock.Release();
        }

        return await server.GetAsync(ct).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (_, server) in _links.Values)
        {
            await server.DisposeAsync().ConfigureAwait(false);
        }

        _links.Clear();
        _lock.Dispose();
    }
}
