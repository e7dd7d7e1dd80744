namespace EtPhoneHome.Agent;

/// <summary>
/// <c>eph-agent run</c>: starts the RPC listener, then keeps one <see cref="ControlSession"/> alive at a
/// time, on the server <see cref="ServerSelector"/> picks, waiting with <see cref="ReconnectBackoff"/> between
/// sessions (no wait after a hub-requested reconnect, reset after a session that reached welcome; a server that could
/// not be reached gives way to the next one configured).
/// </summary>
public sealed class SshSupervisor(AgentConfig config, string configDir)
{
    /// <summary>Pause before reconnecting when the hub asked for it.</summary>
    public static readonly TimeSpan ReconnectPause = TimeSpan.FromMilliseconds(200);

    public async Task<int> RunAsync(CancellationToken ct)
    {
        await using var rpc = new RpcServer(config.RpcPort, config.MaxOutputBytes, config.AllowedPaths);
        try
        {
            rpc.Start();
        }
        catch (System.Net.Sockets.SocketException ex)
        {
            AgentLog.Error($"cannot listen on 127.0.0.1:{config.RpcPort}: {ex.Message}");
            return 1;
        }

        // Detected now, while the first connection is made, and refreshed in the background: no hello waits for it again.
        using var capabilities = new CapabilityCache();
        var servers = config.AllServers();
        var selector = new ServerSelector(servers, new ReconnectBackoff(config.ReconnectInitialS, config.ReconnectMaxS));
        var status = new StatusReporter(configDir, selector.Current.ToString(), rpc.Port);
        AgentLog.Info($"eph-agent {EtPhoneHome.Protocol.ProtocolInfo.ProductVersion} starting: rpc on 127.0.0.1:{rpc.Port}, " +
            (servers.Count == 1 ? $"server {selector.Current}" : $"servers {string.Join(", ", servers)}"));

        try
        {
            while (!ct.IsCancellationRequested)
            {
                var server = selector.Current;
                status.Server = server.ToString();
                var session = new ControlSession(config.For(server), configDir, rpc, status, capabilities);
                var outcome = await session.RunAsync(ct).ConfigureAwait(false);
                if (ct.IsCancellationRequested)
                {
                    break;
                }

                var delay = selector.After(outcome);
                if (outcome.ReconnectNow)
                {
                    status.Set(AgentStates.Connecting);
                    await Task.Delay(ReconnectPause, ct).ConfigureAwait(false);
                    continue;
                }

                status.Set(AgentStates.Backoff, lastError: outcome.Error, nextAttempt: DateTimeOffset.UtcNow + delay);
                var next = selector.Current == server ? "" : $" to {selector.Current}";
                AgentLog.Info($"session ended: {outcome.Error ?? "closed"}; reconnecting{next} in {delay.TotalSeconds:0.0} s");
                await Task.Delay(delay, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }

        status.Set(AgentStates.Stopped);
        AgentLog.Info("stopped");
        return 0;
    }
}
