using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench simulated [--agents N] [--rounds R]: N agent RPC servers in this process on loopback (no ssh), each with
/// a session; a fan-out of `run_command true` and of `heartbeat` to all of them. Measures the operator side and the
/// agent's request handling alone (the `true` run still forks a shell per target).
/// </summary>
internal static class SimulatedBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = TransferBench.Arg(args, "--agents", 1000);
        var rounds = TransferBench.Arg(args, "--rounds", 5);
        var servers = new List<RpcServer>(count);
        var targets = new List<FleetTarget>(count);
        try
        {
            for (var i = 0; i < count; i++)
            {
                var server = new RpcServer();
                server.Start();
                var secret = TunnelHandshake.NewSecret();
                var uuid = Guid.NewGuid().ToString();
                server.SetSession(secret, uuid, null);
                servers.Add(server);
                targets.Add(new FleetTarget(uuid, $"sim-{i:D4}", new SessionRecord
                {
                    Id = i,
                    Uuid = uuid,
                    Fingerprint = "SHA256:sim",
                    Host = "localhost",
                    TunnelPort = server.Port,
                    Secret = secret,
                    ConnectedAt = DateTimeOffset.UtcNow,
                    LastHeartbeat = DateTimeOffset.UtcNow,
                }));
            }

            var executor = new FleetExecutor(new TunnelCommandTransport());
            var lines = new List<string>();
            foreach (var throttle in new[] { 32, 128, count })
            {
                var commands = await TimeAsync(rounds, async () =>
                {
                    var ok = 0;
                    var failures = new Dictionary<string, int>(StringComparer.Ordinal);
                    await foreach (var r in executor.RunAsync(targets, new RunCommandParams { Cmd = "true" }, new FleetOptions { ThrottleLimit = throttle }))
                    {
                        ok += r.Status == CommandStatus.Succeeded ? 1 : 0;
                        if (r.Status != CommandStatus.Succeeded)
                        {
                            var key = $"{r.Status} {r.Failure}: {r.Error ?? $"exit {r.ExitCode}"}";
                            failures[key] = failures.GetValueOrDefault(key) + 1;
                        }
                    }

                    // A target that did not succeed is shown, not only counted.
                    foreach (var (what, n) in failures)
                    {
                        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  throttle {throttle}: {n} x {what}"));
                    }

                    return ok;
                });
                var heartbeats = await TimeAsync(rounds, async () =>
                {
                    var ok = 0;
                    await foreach (var r in FleetFileRunner.RunAsync(targets, async (t, ct) =>
                    {
                        await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", t.Session!.TunnelPort, t.Session.Secret, TimeSpan.FromSeconds(30), ct);
                        return await tunnel.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, ct);
                    }, throttle))
                    {
                        ok += r.Status == CommandStatus.Succeeded ? 1 : 0;
                    }

                    return ok;
                });
                lines.Add(string.Create(CultureInfo.InvariantCulture,
                    $"| {count} | {throttle} | {commands.Median / 1000:0.000} s ({commands.Ok}/{count}) | {heartbeats.Median / 1000:0.000} s ({heartbeats.Ok}/{count}) |"));
                Console.Error.WriteLine(lines[^1]);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## {count} agents simulated in-process on loopback, no ssh ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores), median of {rounds}"));
            Console.WriteLine();
            Console.WriteLine("| agents | throttle | `run_command true` to all | `heartbeat` to all |");
            Console.WriteLine("|---:|---:|---:|---:|");
            lines.ForEach(Console.WriteLine);
            return 0;
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }

    private static async Task<(double Median, int Ok)> TimeAsync(int rounds, Func<Task<int>> action)
    {
        await action(); // warm-up
        var samples = new List<double>();
        var ok = 0;
        for (var i = 0; i < rounds; i++)
        {
            var clock = Stopwatch.StartNew();
            ok = await action();
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }

        return (BenchSandbox.Median(samples), ok);
    }
}
