using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench hubs-simulated [--agents N] [--processes P] [--rounds R]: N simulated agents (agent RPC servers on
/// loopback in P host processes, no ssh between them and the hubs, as <c>eph-bench simulated</c>) registered as online
/// clients of, first, one hub on SQLite and then two hubs on one private PostgreSQL, half held by each. Through hub-1's
/// operator service (<c>eph-server --server … exec</c>, its own process, ssh to the real sshd and gate), a fan-out of
/// `true` to hub-1's half (no relay), to hub-2's half (all of it relayed to hub-2 in one call) and to all N. The same
/// agents answer both set-ups, so the difference between them is the second hub, the relay and PostgreSQL.
/// </summary>
internal static class HubsSimulatedBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var count = TransferBench.Arg(args, "--agents", 1000);
        var processes = TransferBench.Arg(args, "--processes", 4);
        var rounds = TransferBench.Arg(args, "--rounds", 3);
        if (count < 2 || processes < 1 || processes > count || rounds < 1)
        {
            Console.Error.WriteLine("usage: eph-bench hubs-simulated [--agents N>=2] [--processes 1..N] [--rounds R>=1]");
            return 2;
        }

        var options = new SandboxOptions
        {
            // The seeded sessions have no agent behind a gate sending heartbeats: readers must not see them go stale
            // during the run, and the hubs' health checks (a heartbeat through each tunnel) are not what is measured.
            HeartbeatSeconds = 3600,
            ExtraHubArguments = ["--health-interval", "3600"],
            Log = TextWriter.Null,
        };
        var hosts = new List<Process>();
        var rows = new List<(string Text, bool Ok)>();
        var loadStart = FleetSteps.Load();
        try
        {
            var agents = new List<FleetTarget>(count);
            var clock = Stopwatch.StartNew();
            await SimulatedBench.StartHostsAsync(count, processes, hosts, agents);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{count} simulated agents in {processes} host processes after {clock.Elapsed.TotalSeconds:0.0} s (load {FleetSteps.Load()})"));

            await using (var single = await SandboxEnvironment.CreateAsync(options))
            {
                await single.StartSshdAsync();
                await single.StartHubAsync();
                using (var registry = single.OpenRegistry())
                {
                    Seed(registry, agents, _ => null);
                }

                var (_, server) = await single.AddOperatorAsync("bench-operator", "operator");
                var profile = Path.Combine(single.WorkDirectory, "operator-profile");
                await FleetSteps.CliFanOutAsync(single.ServerExecutable, server, profile, 1); // warm-up: ssh host key, JIT, page cache
                rows.Add(await RowAsync("one hub, SQLite", "all", count, single.ServerExecutable, server, profile, rounds, ["--all"], [single.Hub!.Pid], hosts));
            }

            await using var sandbox = await MultiHubSandbox.CreateAsync(2, options);
            await sandbox.StartAsync();
            using (var registry = sandbox.Hubs[1].OpenRegistry())
            {
                Seed(registry, agents, i => MultiHubSandbox.HubId(i % 2 + 1));
            }

            var (_, servers) = await sandbox.AddOperatorAsync("bench-operator", "operator", hub: 0);
            var hub1 = sandbox.Hubs[0];
            var profile2 = Path.Combine(sandbox.WorkDirectory, "operator-profile");
            await FleetSteps.CliFanOutAsync(hub1.ServerExecutable, servers, profile2, 1); // warm-up, also opens hub-1's relay connection to hub-2
            var half1 = (count + 1) / 2;
            int[] hubPids = [sandbox.Hubs[0].Hub!.Pid, sandbox.Hubs[1].Hub!.Pid];
            rows.Add(await RowAsync("two hubs, PostgreSQL, through hub-1", "hub-1's half (its own tunnels)", half1, hub1.ServerExecutable, servers, profile2, rounds,
                ["--tag", "on-hub-1"], hubPids, hosts));
            rows.Add(await RowAsync("two hubs, PostgreSQL, through hub-1", "hub-2's half (one relayed call)", count - half1, hub1.ServerExecutable, servers, profile2, rounds,
                ["--tag", "on-hub-2"], hubPids, hosts));
            rows.Add(await RowAsync("two hubs, PostgreSQL, through hub-1", "all", count, hub1.ServerExecutable, servers, profile2, rounds, ["--all"], hubPids, hosts));
        }
        finally
        {
            await SimulatedBench.StopHostsAsync(hosts);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"## {count} simulated agents over one and over two hubs ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores; agents in {processes} host processes on loopback, no ssh to them; load at the start {loadStart})"));
        Console.WriteLine();
        Console.WriteLine($"`eph-server --server … exec <selection> --throttle 1024 --timeout 60 --json -- true` (its own process, ssh to hub-1's operator service), median of {rounds} after one warm-up.");
        Console.WriteLine();
        Console.WriteLine("CPU per round: the hubs (both, on two) / the operator's `eph-server` process and its ssh / the simulated agents and the shells they ran. PostgreSQL's own CPU is not in it.");
        Console.WriteLine();
        Console.WriteLine("| set-up | targets | n | wall | succeeded | CPU hubs / operator CLI / agents | load after |");
        Console.WriteLine("|---|---|---:|---:|---:|---:|---:|");
        rows.ForEach(r => Console.WriteLine(r.Text));
        return rows.All(r => r.Ok) ? 0 : 1;
    }

    /// <summary>Writes one online client per simulated agent: its uuid, its listener as the tunnel port, its secret, and the hub <paramref name="hubOf"/> names.</summary>
    private static void Seed(SqliteRegistry registry, IReadOnlyList<FleetTarget> agents, Func<int, string?> hubOf)
    {
        var clock = Stopwatch.StartNew();
        var seeded = registry.SeedClients(agents.Select((a, i) => new ClientSeed
        {
            Uuid = a.Uuid,
            DisplayName = a.DisplayName,
            Tags = ["simulated", "on-" + (hubOf(i) ?? "hub")],
            Online = true,
            TunnelPort = a.Session!.TunnelPort,
            Secret = a.Session.Secret,
            HubId = hubOf(i),
        }));
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"seeded {seeded} online clients ({registry.Engine}) in {clock.Elapsed.TotalSeconds:0.0} s"));
    }

    /// <summary>One fan-out row, and whether every target succeeded.</summary>
    private static async Task<(string Text, bool Ok)> RowAsync(string setUp, string targets, int expected, string executable, string[] server, string profile, int rounds, string[] selection,
        int[] hubs, List<Process> hosts)
    {
        // CPU per round: the hubs; this process's reaped children (the eph-server CLI and the ssh it starts); the
        // simulated agents with the shells they ran.
        double Hubs() => hubs.Sum(pid => AgentMemoryBench.CpuSeconds(pid));
        double Cli() => AgentMemoryBench.CpuSeconds(Environment.ProcessId, withReapedChildren: true) - AgentMemoryBench.CpuSeconds(Environment.ProcessId);
        double Agents() => hosts.Sum(h => AgentMemoryBench.CpuSeconds(h.Id, withReapedChildren: true));
        var (hub0, cli0, agents0) = (Hubs(), Cli(), Agents());
        var (median, ok, results) = await FleetSteps.CliFanOutAsync(executable, server, profile, rounds, selection);
        var cpu = string.Create(CultureInfo.InvariantCulture, $"{(Hubs() - hub0) / rounds:0.00} / {(Cli() - cli0) / rounds:0.00} / {(Agents() - agents0) / rounds:0.00} s");
        var row = string.Create(CultureInfo.InvariantCulture,
            $"| {setUp} | {targets} | {expected} | {median:0.000} s | {ok}/{expected}{(results != expected ? $" ({results} results)" : "")} | {cpu} | {FleetSteps.Load()} |");
        Console.Error.WriteLine(row);
        return (row, ok == expected);
    }
}
