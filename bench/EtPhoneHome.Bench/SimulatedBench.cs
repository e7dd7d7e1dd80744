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
/// eph-bench simulated [--agents N] [--processes P] [--rounds R] [--throttles 32,128,N]: N agent RPC servers on
/// loopback (no ssh), each with a session, and a fan-out of `run_command true` and of `heartbeat` to all of them.
/// Measures the operator side and the agent's request handling alone (the `true` run still forks a shell per target).
/// With <c>--processes 0</c> (the default) every agent lives in this process; with P &gt; 0 they are spread over P
/// host processes (<c>eph-bench simulated-host</c>), so a command's fork is the fork of a process holding N/P agents,
/// not all N, and the descriptors are spread too — closer to a fleet, where each agent is its own process.
/// </summary>
internal static class SimulatedBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = TransferBench.Arg(args, "--agents", 1000);
        var rounds = TransferBench.Arg(args, "--rounds", 5);
        var processes = TransferBench.Arg(args, "--processes", 0);
        var throttles = ThrottlesArg(args, count);
        if (count < 1 || rounds < 1 || processes < 0 || processes > count || throttles.Count == 0)
        {
            Console.Error.WriteLine("usage: eph-bench simulated [--agents N>=1] [--processes 0..N] [--rounds R>=1] [--throttles T1,T2,...]");
            return 2;
        }

        var servers = new List<RpcServer>();
        var hosts = new List<Process>();
        var targets = new List<FleetTarget>(count);
        try
        {
            var clock = Stopwatch.StartNew();
            if (processes == 0)
            {
                for (var i = 0; i < count; i++)
                {
                    var (server, secret, uuid) = StartAgent();
                    servers.Add(server);
                    targets.Add(Target(i, server.Port, secret, uuid));
                }
            }
            else
            {
                await StartHostsAsync(count, processes, hosts, targets);
            }

            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{count} agents listening in {(processes == 0 ? "this process" : $"{processes} host processes")} after {clock.Elapsed.TotalSeconds:0.0} s (load {FleetSteps.Load()})"));

            var executor = new FleetExecutor(new TunnelCommandTransport());
            var lines = new List<string>();
            foreach (var throttle in throttles)
            {
                var commands = await TimeAsync(rounds, hosts, async () =>
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
                var heartbeats = await TimeAsync(rounds, hosts, async () =>
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
                    $"| {count} | {processes} | {throttle} | {commands.Median / 1000:0.000} s ({commands.Ok}/{count}) | {commands.Cpu} | {heartbeats.Median / 1000:0.000} s ({heartbeats.Ok}/{count}) | {heartbeats.Cpu} | {commands.Load} |"));
                Console.Error.WriteLine(lines[^1]);
            }

            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"## {count} agents simulated on loopback, no ssh, {(processes == 0 ? "all in the bench process" : $"in {processes} host processes")} ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores), median of {rounds}"));
            Console.WriteLine();
            Console.WriteLine("CPU-seconds of the last round: operator (this process) / agents (the host processes) + the processes they started and reaped.");
            Console.WriteLine();
            Console.WriteLine("| agents | host processes | throttle | `run_command true` to all | CPU operator / agents + children | `heartbeat` to all | CPU operator / agents + children | load |");
            Console.WriteLine("|---:|---:|---:|---:|---:|---:|---:|---:|");
            lines.ForEach(Console.WriteLine);
            return 0;
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }

            await StopHostsAsync(hosts);
        }
    }

    /// <summary>
    /// eph-bench simulated-host --agents K: starts K agent RPC servers on loopback, prints one line per agent
    /// (<c>port secret-base64 uuid</c>) and then <c>ready</c> on stdout, and serves until its stdin is closed.
    /// The secrets travel over the pipe from the parent, never in arguments.
    /// </summary>
    public static async Task<int> HostAsync(string[] args)
    {
        var count = TransferBench.Arg(args, "--agents", 0);
        if (count < 1)
        {
            Console.Error.WriteLine("usage: eph-bench simulated-host --agents K (K >= 1); serves until stdin closes");
            return 2;
        }

        var servers = new List<RpcServer>(count);
        try
        {
            var output = new StreamWriter(Console.OpenStandardOutput()) { AutoFlush = false };
            for (var i = 0; i < count; i++)
            {
                var (server, secret, uuid) = StartAgent();
                servers.Add(server);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{server.Port} {Convert.ToBase64String(secret)} {uuid}"));
            }

            output.WriteLine("ready");
            output.Flush();
            await Console.In.ReadToEndAsync();
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"simulated-host {Environment.ProcessId}: {count} agents, CPU {Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds:0.00} s, GC pauses {GC.GetTotalPauseDuration().TotalSeconds:0.00} s, collections {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, allocated {GC.GetTotalAllocatedBytes() / (1024 * 1024)} MiB, JIT {System.Runtime.JitInfo.GetCompilationTime().TotalSeconds:0.00} s"));
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

    private static (RpcServer Server, byte[] Secret, string Uuid) StartAgent()
    {
        var server = new RpcServer();
        server.Start();
        var secret = TunnelHandshake.NewSecret();
        var uuid = Guid.NewGuid().ToString();
        server.SetSession(secret, uuid, null);
        return (server, secret, uuid);
    }

    private static FleetTarget Target(int i, int port, byte[] secret, string uuid) => new(uuid, $"sim-{i:D5}", new SessionRecord
    {
        Id = i,
        Uuid = uuid,
        Fingerprint = "SHA256:sim",
        Host = "localhost",
        TunnelPort = port,
        Secret = secret,
        ConnectedAt = DateTimeOffset.UtcNow,
        LastHeartbeat = DateTimeOffset.UtcNow,
    });

    internal static async Task StartHostsAsync(int count, int processes, List<Process> hosts, List<FleetTarget> targets)
    {
        var bench = typeof(SimulatedBench).Assembly.Location;
        var readers = new List<Task<List<(int Port, byte[] Secret, string Uuid)>>>();
        for (var p = 0; p < processes; p++)
        {
            var share = count / processes + (p < count % processes ? 1 : 0);
            var psi = new ProcessStartInfo(Environment.ProcessPath!) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };

            // The agent's own runtime setting (eph-agent's runtimeconfig): idle thread-pool workers sleep instead of
            // spinning for work, which on a shared machine takes CPU from the shells the commands start.
            psi.Environment["DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"] = "0";
            foreach (var a in new[] { bench, "simulated-host", "--agents", share.ToString(CultureInfo.InvariantCulture) })
            {
                psi.ArgumentList.Add(a);
            }

            var host = Process.Start(psi) ?? throw new InvalidOperationException("could not start a simulated-host process");
            hosts.Add(host);
            readers.Add(ReadAgentsAsync(host, share));
        }

        var i = 0;
        foreach (var agents in await Task.WhenAll(readers))
        {
            foreach (var (port, secret, uuid) in agents)
            {
                targets.Add(Target(i++, port, secret, uuid));
            }
        }
    }

    private static async Task<List<(int Port, byte[] Secret, string Uuid)>> ReadAgentsAsync(Process host, int expected)
    {
        var agents = new List<(int, byte[], string)>(expected);
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(5));
        while (await host.StandardOutput.ReadLineAsync(timeout.Token) is { } line && line != "ready")
        {
            var parts = line.Split(' ');
            if (parts.Length != 3)
            {
                throw new InvalidOperationException($"simulated-host {host.Id} printed an unexpected line");
            }

            agents.Add((int.Parse(parts[0], CultureInfo.InvariantCulture), Convert.FromBase64String(parts[1]), parts[2]));
        }

        if (agents.Count != expected)
        {
            throw new InvalidOperationException($"simulated-host {host.Id} started {agents.Count} of {expected} agents");
        }

        return agents;
    }

    internal static async Task StopHostsAsync(List<Process> hosts)
    {
        foreach (var host in hosts)
        {
            try
            {
                host.StandardInput.Close();
            }
            catch (IOException)
            {
                // already gone
            }
        }

        foreach (var host in hosts)
        {
            using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await host.WaitForExitAsync(wait.Token);
            }
            catch (OperationCanceledException)
            {
                host.Kill(entireProcessTree: true);
                await host.WaitForExitAsync();
            }

            host.Dispose();
        }
    }

    private static List<int> ThrottlesArg(string[] args, int count)
    {
        var i = Array.IndexOf(args, "--throttles");
        if (i < 0 || i + 1 >= args.Length)
        {
            return [32, 128, count];
        }

        return args[i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries)
            .Select(t => int.Parse(t, CultureInfo.InvariantCulture)).Where(t => t >= 1).ToList();
    }

    /// <summary>A warm-up, then <paramref name="rounds"/> timed runs: the median wall time, the last run's successes,
    /// its CPU-seconds (this process / the host processes with the children they reaped) and the load after it.</summary>
    private static async Task<(double Median, int Ok, string Cpu, string Load)> TimeAsync(int rounds, List<Process> hosts, Func<Task<int>> action)
    {
        await action(); // warm-up
        var samples = new List<double>();
        var ok = 0;
        var cpu = "";
        for (var i = 0; i < rounds; i++)
        {
            var self = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
            var own = hosts.Sum(h => AgentMemoryBench.CpuSeconds(h.Id));
            var all = hosts.Sum(h => AgentMemoryBench.CpuSeconds(h.Id, withReapedChildren: true));
            var clock = Stopwatch.StartNew();
            ok = await action();
            samples.Add(clock.Elapsed.TotalMilliseconds);
            self = Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds - self;
            own = hosts.Sum(h => AgentMemoryBench.CpuSeconds(h.Id)) - own;
            all = hosts.Sum(h => AgentMemoryBench.CpuSeconds(h.Id, withReapedChildren: true)) - all;
            cpu = hosts.Count == 0
                ? string.Create(CultureInfo.InvariantCulture, $"{self:0.00} s (agents in it)")
                : string.Create(CultureInfo.InvariantCulture, $"{self:0.00} / {own:0.00} + {all - own:0.00} s");
        }

        return (BenchSandbox.Median(samples), ok, cpu, FleetSteps.Load());
    }
}
