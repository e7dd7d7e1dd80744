using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench remote [--agents N] [--rounds R] [--mib M]: the operator service against the server host, side by side in
/// one run on one sshd: (1) the first search after connecting (ssh, authentication, hello, search); (2) fan-out of `true`
/// to N agents through the operator service and with FleetExecutor on the server host, and one round trip of the
/// operator connection; (3) an M MiB file up and down through the operator service and with scp through the same sshd.
/// --copy-only runs (3) alone, R rounds (not R / 2), each round printed as it ends.
/// </summary>
internal static class RemoteBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var agents = TransferBench.Arg(args, "--agents", 100);
        var rounds = TransferBench.Arg(args, "--rounds", 5);
        var mib = TransferBench.Arg(args, "--mib", 1024);
        var copyOnly = args.Contains("--copy-only");
        await using var bench = await BenchSandbox.CreateAsync(heartbeatSeconds: 30, reconnectMaxSeconds: 5);
        var onboard = Stopwatch.StartNew();
        await bench.AddOnlineAgentsAsync("rmt", agents, TimeSpan.FromSeconds(120 + 2 * agents));
        Console.Error.WriteLine($"{agents} agents online in {onboard.Elapsed.TotalSeconds:0.0} s");

        // The operator: its own key, added as an operator; the server's host key pinned from the bench's scan.
        var opKey = Path.Combine(bench.Env.WorkDirectory, "operator_ed25519");
        await SandboxEnvironment.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", opKey]);
        using (var registry = bench.Env.OpenRegistry())
        {
            registry.AddOperator("bench", (await File.ReadAllTextAsync(opKey + ".pub")).Trim(), OperatorRole.Operator, "bench");
        }

        var hostKey = HostKey.ParseKeyscan(await File.ReadAllTextAsync(bench.KnownHosts))[0];
        var address = new ServerAddress("127.0.0.1") { Port = bench.Env.SshPort, User = bench.User, KeyFile = opKey };
        var rows = new List<string>();

        // (1) First search after connect, each round a new connection.
        if (!copyOnly)
        {
            var first = new List<double>();
            var connects = new List<double>();
            var sshOnly = new List<double>();
            for (var i = 0; i < rounds; i++)
            {
                // ssh alone to the same sshd with the plain bench key: what any ssh-based tool pays before its first byte.
                var sshClock = Stopwatch.StartNew();
                await SandboxEnvironment.RunAsync("ssh", [.. bench.SshOptions, "-p", bench.Env.SshPort.ToString(CultureInfo.InvariantCulture), $"{bench.User}@127.0.0.1", "true"]);
                sshOnly.Add(sshClock.Elapsed.TotalMilliseconds);

                var clock = Stopwatch.StartNew();
                await using var server = new RemoteServer(address, hostKey, Surfaces.Cli);
                var remote = await server.GetAsync(CancellationToken.None);
                connects.Add(clock.Elapsed.TotalMilliseconds);
                var found = await remote.SearchAsync(new ClientQuery(), CancellationToken.None);
                first.Add(clock.Elapsed.TotalMilliseconds);
                if (found.Clients.Count < agents)
                {
                    throw new InvalidOperationException($"the first search found {found.Clients.Count} clients, expected {agents}");
                }
            }

            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| first search after connect (ssh + auth + hello + search of {agents}) | {BenchSandbox.Median(first):0} ms (connected after {BenchSandbox.Median(connects):0} ms) | `ssh host true` with a plain key: {BenchSandbox.Median(sshOnly):0} ms |"));

            // (2) Fan-out of `true` to every agent: the operator service vs FleetExecutor on the server host.
            await using (var server = new RemoteServer(address, hostKey, Surfaces.Cli))
            {
                var remote = await server.GetAsync(CancellationToken.None);
                var rtt = new List<double>();
                for (var i = 0; i < 20; i++)
                {
                    var clock = Stopwatch.StartNew();
                    await remote.SearchAsync(new ClientQuery { Ids = ["none"] }, CancellationToken.None);
                    rtt.Add(clock.Elapsed.TotalMilliseconds);
                }

                using var registry = bench.Env.OpenRegistry();
                var clients = registry.QueryClients(new ClientQuery { OnlineOnly = true }).Take(agents).ToList();
                var targets = FleetTargets.FromClients(registry, registry, clients);
                var guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.Cli));
                var executor = new FleetExecutor(new TunnelCommandTransport { Guard = guard });
                var local = new List<double>();
                var viaService = new List<double>();
                int localOk = 0, remoteOk = 0;
                for (var i = 0; i < rounds; i++)
                {
                    // Interleaved, so both see the same machine load.
                    var clock = Stopwatch.StartNew();
                    localOk = 0;
                    await foreach (var r in executor.RunAsync(targets, new RunCommandParams { Cmd = "true", TimeoutS = 60 }, new FleetOptions { ThrottleLimit = agents }))
                    {
                        localOk += r.Status == CommandStatus.Succeeded ? 1 : 0;
                    }

                    local.Add(clock.Elapsed.TotalMilliseconds);
                    clock.Restart();
                    remoteOk = 0;
                    var args2 = new RunCommandsArgs { Targets = new TargetSelection { All = true }, Request = new CommandRequest { Command = "true", TimeoutSeconds = 60 }, ThrottleLimit = agents };
                    await foreach (var r in remote.RunCommandsAsync(args2, null, CancellationToken.None))
                    {
                        remoteOk += r.Status == CommandStatus.Succeeded ? 1 : 0;
                    }

                    viaService.Add(clock.Elapsed.TotalMilliseconds);
                }

                var l = BenchSandbox.Median(local);
                var r2 = BenchSandbox.Median(viaService);
                var trip = BenchSandbox.Median(rtt);
                rows.Add(string.Create(CultureInfo.InvariantCulture, $"| fan-out of `true` to {agents} agents | {r2:0} ms ({remoteOk}/{agents}) | {l:0} ms ({localOk}/{agents}) on the server host; one round trip {trip:0.0} ms; goal ≤ {l * 1.2 + trip:0} ms: {(r2 <= l * 1.2 + trip ? "met" : "not met")} |"));
                Console.Error.WriteLine(rows[^1]);
            }
        }

        // (3) A file up and down: the operator service (to and from one agent) vs scp (to and from the server host).
        var dir = Path.Combine(bench.Env.WorkDirectory, "remote-xfer");
        Directory.CreateDirectory(dir);
        FleetAccount.GiveTo(dir); // scp logs in as the fleet account and writes here
        var source = Path.Combine(dir, "source.bin");
        await TransferBench.WriteRandomAsync(source, mib);
        await using (var server = new RemoteServer(address, hostKey, Surfaces.Cli))
        {
            var remote = await server.GetAsync(CancellationToken.None);
            var up = new List<double>();
            var down = new List<double>();
            var scpUp = new List<double>();
            var scpDown = new List<double>();
            var agentFile = Path.Combine(dir, "agent-copy.bin");
            // The classic scp protocol (-O): the sandbox's sshd runs no sftp subsystem, as TransferBench.
            string[] scpBase = ["-q", "-O", "-P", bench.Env.SshPort.ToString(CultureInfo.InvariantCulture), .. bench.SshOptions];
            for (var i = 0; i < (copyOnly ? rounds : Math.Max(1, rounds / 2)); i++)
            {
                File.Delete(agentFile);
                var back = Path.Combine(dir, "back.bin");
                File.Delete(back);
                up.Add(await TimeAsync(copyOnly ? "up" : null, () => remote.UploadAsync("rmt-000", source, agentFile, null, CancellationToken.None)));
                down.Add(await TimeAsync(copyOnly ? "down" : null, () => remote.DownloadAsync("rmt-000", agentFile, back, null, CancellationToken.None)));
                var scpTarget = Path.Combine(dir, "scp-up.bin");
                File.Delete(scpTarget);
                scpUp.Add(await TimeAsync(copyOnly ? "scpUp" : null, () => SandboxEnvironment.RunAsync("scp", [.. scpBase, source, $"{bench.User}@127.0.0.1:{scpTarget}"])));
                var scpBack = Path.Combine(dir, "scp-down.bin");
                File.Delete(scpBack);
                scpDown.Add(await TimeAsync(copyOnly ? "scpDown" : null, () => SandboxEnvironment.RunAsync("scp", [.. scpBase, $"{bench.User}@127.0.0.1:{scpTarget}", scpBack])));
                Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"round {i + 1}: up {up[^1] / 1000:0.00} s vs scp {scpUp[^1] / 1000:0.00} s ({scpUp[^1] / up[^1]:0.00}×), down {down[^1] / 1000:0.00} s vs scp {scpDown[^1] / 1000:0.00} s ({scpDown[^1] / down[^1]:0.00}×)"));
            }

            string Row(string what, List<double> eph, List<double> scp)
            {
                var e = BenchSandbox.Median(eph);
                var s = BenchSandbox.Median(scp);
                return string.Create(CultureInfo.InvariantCulture,
                    $"| {mib} MiB {what} | {e / 1000:0.00} s ({mib / (e / 1000):0} MiB/s) | scp {s / 1000:0.00} s ({mib / (s / 1000):0} MiB/s); eph ÷ scp speed {s / e:0.00}× (goal ≥ 0.8×) |");
            }

            rows.Add(Row("upload", up, scpUp));
            rows.Add(Row("download", down, scpDown));
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## Operators over SSH ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {Environment.OSVersion}), median of {rounds}"));
        Console.WriteLine();
        Console.WriteLine("| measure | through the operator service | peer / goal |");
        Console.WriteLine("|---|---:|---|");
        rows.ForEach(Console.WriteLine);
        return 0;
    }

    private static Task<double> TimeAsync(Func<Task> action) => TimeAsync(null, action);

    /// <summary>Times <paramref name="action"/>; with a <paramref name="label"/>, prints when it started and ended (Unix seconds), for per-process CPU sampling.</summary>
    private static async Task<double> TimeAsync(string? label, Func<Task> action)
    {
        var start = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        var clock = Stopwatch.StartNew();
        await action();
        var elapsed = clock.Elapsed.TotalMilliseconds;
        if (label is not null)
        {
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{label} {start:0.000} {start + elapsed / 1000:0.000}"));
        }

        return elapsed;
    }
}
