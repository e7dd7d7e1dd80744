namespace EtPhoneHome.Agent;

/// <summary>
/// <c>eph-agent run</c>: starts the RPC listener, then keeps one <see cref="ControlSession"/> alive at a
/// time, waiting with <see cref="ReconnectBackoff"/> between sessions (no wait after a hub-requested
/// reconnect, reset after a session that reached welcome).
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

        var server = $"{config.ServerUser}@{config.ServerHost}:{config.ServerPort}";
        var status = new StatusReporter(configDir, server, rpc.Port);
        var backoff = new ReconnectBackoff(config.ReconnectInitialS, config.ReconnectMaxS);
        var session = new ControlSession(config, configDir, rpc, status);
        AgentLog.Info($"eph-agent {EtPhoneHome.Protocol.ProtocolInfo.ProductVersion} starting: rpc on 127.0.0.1:{rpc.Port}, server {server}");

        try
        {
            while (!ct.IsCancellationRequested)
            {
                var outcome = await session.RunAsync(ct).ConfigureAwait(false);
                if (ct.IsCancellationRequested)
                {
                    break;
                }

                if (outcome.ReachedWelcome)
                {
                    backoff.Reset();
                }

                if (outcome.ReconnectNow)
                {
                    status.Set(AgentStates.Connecting);
                    await Task.Delay(ReconnectPause, ct).ConfigureAwait(false);
                    continue;
                }

                var delay = backoff.NextDelay();
                status.Set(AgentStates.Backoff, lastError: outcome.Error, nextAttempt: DateTimeOffset.UtcNow + delay);
                AgentLog.Info($"session ended: {outcome.Error ?? "closed"}; reconnecting in {delay.TotalSeconds:0.0} s");
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
