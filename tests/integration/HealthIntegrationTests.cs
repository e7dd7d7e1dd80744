using System.Diagnostics;
using System.Net.Sockets;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// A sandbox whose hub checks health every second (timeout 1 s, threshold 2) while control-channel heartbeats are
/// slow (30 s, so missed heartbeats would take 90 s): whatever takes a frozen agent offline quickly is the monitor.
/// </summary>
public sealed class HealthSandboxFixture : IAsyncLifetime
{
    public const int Threshold = 2;

    public SandboxEnvironment Env { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Env = await SandboxEnvironment.CreateAsync(new SandboxOptions
        {
            HeartbeatSeconds = 30,
            ReconnectInitialSeconds = 0.5,
            ReconnectMaxSeconds = 2,
            ExtraHubArguments = ["--health-interval", "1", "--health-timeout", "1", "--health-threshold", Threshold.ToString(System.Globalization.CultureInfo.InvariantCulture)],
        });
        await Env.StartSshdAsync();
        await Env.StartHubAsync();
    }

    public async Task DisposeAsync() => await Env.DisposeAsync();

    /// <summary>Adds an agent, approves its key once it is pending, and waits until it is online.</summary>
    public async Task<(SandboxAgent Agent, ClientRecord Client)> AddOnlineAgentAsync(string name)
    {
        var agent = await Env.AddAgentAsync(name);
        using (var registry = Env.OpenRegistry())
        {
            var key = await SandboxEnvironment.WaitUntilAsync(
                () => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedDisplayName == name),
                SandboxFixture.Patience, $"a pending key from {name}");
            registry.ApproveKey(key.Fingerprint, "test");
        }

        var online = await Env.WaitOnlineAsync([name], SandboxFixture.Patience);
        return (agent, online[0]);
    }
}

public sealed class HealthIntegrationTests(HealthSandboxFixture fixture) : IClassFixture<HealthSandboxFixture>
{
    private SandboxEnvironment Env => fixture.Env;

    [Fact]
    public async Task RealAgent_AnswersGetMetrics_ThroughEphServerMetricsJson_AndTheFleetView()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("metrics-1");
        try
        {
            var clock = Stopwatch.StartNew();
            var stdout = await Env.RunServerVerbAsync(["metrics", "--data", Env.Data.Path, "--client", "metrics-1", "--json"]);
            var elapsed = clock.ElapsedMilliseconds;

            var line = JsonDocument.Parse(stdout.Trim().Split('\n').Single()).RootElement;
            Assert.Equal(client.Uuid, line.GetProperty("uuid").GetString());
            Assert.Equal("succeeded", line.GetProperty("status").GetString());
            Assert.InRange(line.GetProperty("cpu_percent").GetDouble(), 0, 100);
            Assert.InRange(line.GetProperty("memory_percent").GetDouble(), 0, 100);
            Assert.InRange(line.GetProperty("disk_max_percent").GetDouble(), 0, 100);
            Assert.NotEmpty(line.GetProperty("disks").EnumerateArray());
            Assert.True(line.GetProperty("uptime_s").GetInt64() > 0);
            Assert.True(line.GetProperty("process_count").GetInt32() > 1);
            Assert.True(line.TryGetProperty("network", out _));
            Console.WriteLine($"eph-server metrics --json (process start to exit, one agent): {elapsed} ms");

            var summary = JsonDocument.Parse((await Env.RunServerVerbAsync(["metrics", "--data", Env.Data.Path, "--client", "metrics-1", "--summary", "--json"])).Trim()).RootElement;
            Assert.False(summary.TryGetProperty("disks", out _));
            Assert.True(summary.TryGetProperty("load_1", out _));

            var status = JsonDocument.Parse((await Env.RunServerVerbAsync(["status", "--data", Env.Data.Path, "--json"])).Trim()).RootElement;
            Assert.True(status.GetProperty("online").GetInt32() >= 1);
            Assert.DoesNotContain(status.GetProperty("unreachable").EnumerateArray(), e => e.GetProperty("uuid").GetString() == client.Uuid);

            using var registry = Env.OpenRegistry();
            Assert.Contains(registry.ListAudit(client.Uuid), a => a.Operation == "get_client_metrics" && a.Surface == "cli" && a.Status == "succeeded");
        }
        finally
        {
            await agent.StopAsync();
        }
    }

    [Fact]
    public async Task FrozenAgent_BecomesUnhealthy_AndOffline_WithinTheThreshold_ThenRecovers()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("frozen-1");
        var pid = agent.Process!.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
        using var registry = (SqliteRegistry)Env.OpenRegistry();
        var session = registry.GetOpenSession(client.Uuid)!;
        var clock = Stopwatch.StartNew();
        await SandboxEnvironment.RunAsync("kill", ["-STOP", pid]);
        try
        {
            await SandboxEnvironment.WaitUntilAsync(() => registry.GetClient(client.Uuid) is { Online: false } ? "offline" : null,
                SandboxFixture.Patience, "the frozen agent to go offline");
            var elapsed = clock.Elapsed;

            // Offline because of the monitor, long before missed heartbeats (90 s) could have done it.
            Assert.StartsWith("unhealthy: ", registry.GetSession(session.Id)!.CloseReason, StringComparison.Ordinal);
            Assert.True(elapsed < TimeSpan.FromSeconds(20), $"took {elapsed.TotalSeconds:0.0} s");
            var unhealthy = Assert.Single(registry.ListEvents(), e => e.Type == "client.unhealthy" && e.Uuid == client.Uuid);
            var payload = JsonDocument.Parse(unhealthy.Payload).RootElement.GetProperty("data");
            Assert.Equal(HealthSandboxFixture.Threshold, payload.GetProperty("consecutive_failures").GetInt32());
            Assert.Contains("no answer through the tunnel", payload.GetProperty("reason").GetString(), StringComparison.Ordinal);
            Assert.True(registry.ListHealth().Single(h => h.Uuid == client.Uuid).IsUnhealthy);
            Console.WriteLine($"frozen agent offline after {elapsed.TotalSeconds:0.0} s (interval 1 s, timeout 1 s, threshold {HealthSandboxFixture.Threshold})");
        }
        finally
        {
            await SandboxEnvironment.RunAsync("kill", ["-CONT", pid]);
        }

        // Thawed, the agent notices its SSH session ended, reconnects, and the next answered check clears the mark.
        await Env.WaitOnlineAsync(["frozen-1"], SandboxFixture.Patience);
        await SandboxEnvironment.WaitUntilAsync(() => registry.ListHealth().Single(h => h.Uuid == client.Uuid).IsUnhealthy ? null : "healthy",
            SandboxFixture.Patience, "the unhealthy mark to clear");
        Assert.Single(registry.ListEvents(), e => e.Type == "client.unhealthy" && e.Uuid == client.Uuid);
        await agent.StopAsync();
    }

    /// <summary>
    /// Issue 12 item 9: a local user of the server holds idle connections to a client's tunnel port (no handshake),
    /// re-opening whatever the agent closes, over several health intervals. Operators' requests still go through
    /// promptly, and the health monitor (interval 1 s, threshold 2) does not drop the session.
    /// </summary>
    [Fact]
    public async Task HundredsOfIdleConnectionsToATunnelPort_NeitherStopAnOperator_NorCostTheSession()
    {
        const int Hold = 300;
        const int Budget = 4000;
        var attackFor = TimeSpan.FromSeconds(8);
        var (agent, client) = await fixture.AddOnlineAgentAsync("crowded-1");
        using var registry = (SqliteRegistry)Env.OpenRegistry();
        var session = registry.GetOpenSession(client.Uuid)!;
        var held = new List<(TcpClient Tcp, Task Closed)>();
        var opened = 0;
        var operatorMs = new List<long>();
        var execMs = new List<long>();
        try
        {
            var clock = Stopwatch.StartNew();
            while (clock.Elapsed < attackFor && opened < Budget)
            {
                // Top up to Hold idle connections: the attacker takes back every place the agent frees.
                foreach (var gone in held.Where(h => h.Closed.IsCompleted).ToList())
                {
                    gone.Tcp.Dispose();
                    held.Remove(gone);
                }

                while (held.Count < Hold && opened < Budget)
                {
                    var tcp = new TcpClient();
                    await tcp.ConnectAsync("127.0.0.1", session.TunnelPort);
                    held.Add((tcp, DrainUntilClosedAsync(tcp)));
                    opened++;
                }

                // An operator's request through the same tunnel, while the port is crowded.
                var one = Stopwatch.StartNew();
                await using (var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None))
                {
                    var result = await tunnel.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "echo ok" },
                        ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
                    Assert.Equal("ok\n", result.Stdout);
                }

                operatorMs.Add(one.ElapsedMilliseconds);
                await Task.Delay(250);
            }

            // The operators' verb, while the attacker still holds its connections.
            var exec = Stopwatch.StartNew();
            var run = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["exec", "--data", Env.Data.Path, "--client", client.Uuid, "--", "echo", "ok"]);
            execMs.Add(exec.ElapsedMilliseconds);
            Assert.True(run.ExitCode == 0, $"exec failed: {run.Stdout} {run.Stderr}");
            Assert.Contains("ok", run.Stdout, StringComparison.Ordinal);

            Console.WriteLine($"crowded tunnel: {opened} idle connections opened over {clock.Elapsed.TotalSeconds:0.0} s (at most {Hold} at once); " +
                $"operator run_command echo ok: {operatorMs.Count} calls, median {operatorMs.Order().ElementAt(operatorMs.Count / 2)} ms, max {operatorMs.Max()} ms; " +
                $"eph-server exec (process start to exit): {execMs[0]} ms");
            Assert.True(operatorMs.Max() < 5000, $"slowest operator request took {operatorMs.Max()} ms");
        }
        finally
        {
            foreach (var (tcp, _) in held)
            {
                tcp.Dispose();
            }
        }

        // Several health intervals passed under attack: the session is the same one, still open, never marked.
        var now = registry.GetOpenSession(client.Uuid);
        Assert.NotNull(now);
        Assert.Equal(session.Id, now.Id);
        Assert.True(registry.GetClient(client.Uuid)!.Online);
        Assert.DoesNotContain(registry.ListEvents(), e => e.Type == "client.unhealthy" && e.Uuid == client.Uuid);
        await agent.StopAsync();
    }

    /// <summary>Reads (and drops) whatever the agent sends until it closes the connection.</summary>
    private static async Task DrainUntilClosedAsync(TcpClient tcp)
    {
        var buffer = new byte[256];
        try
        {
            var stream = tcp.GetStream();
            while (await stream.ReadAsync(buffer) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
    }
}
