using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench hubs [--agents N] [--timeout S] [--wave W] [--fanout-rounds R]: two sshd + hub pairs on one private PostgreSQL registry
/// (<see cref="MultiHubSandbox"/>), N agents with both servers, their first server alternating, on the production
/// reconnect backoff (5 s doubling to 300 s, ±20 %). Kills hub-1 and its sshd (SIGKILL, by PID) and measures the time
/// until 95 % and 100 % of hub-1's agents are online on hub-2; then checks that no client, key, tag or history row of
/// theirs is gone. Prints a markdown row with the load average before and after. With R &gt; 0 (default 3), first the
/// same N agents on one hub with SQLite and then the two hubs run a fan-out of `true` to all of them through (hub-1's)
/// operator service, as `eph-server --server … exec --all` does: on two hubs, hub-2's half is relayed.
/// </summary>
internal static class HubFailoverBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var agents = TransferBench.Arg(args, "--agents", 20);
        var timeout = TimeSpan.FromSeconds(TransferBench.Arg(args, "--timeout", 600));
        if (agents < 2)
        {
            Console.Error.WriteLine("eph-bench hubs: --agents must be at least 2");
            return 2;
        }

        var wave = TransferBench.Arg(args, "--wave", 25);
        var fanOutRounds = TransferBench.Arg(args, "--fanout-rounds", 3);
        var fanOuts = new List<string>();
        var names = Enumerable.Range(0, agents).Select(i => $"hb-{i:D3}").ToList();
        var options = new SandboxOptions
        {
            HeartbeatSeconds = 15,
            ReconnectInitialSeconds = 5,
            ReconnectMaxSeconds = 300,
            Log = TextWriter.Null, // a line per agent start would drown the progress lines
        };
        if (fanOutRounds > 0)
        {
            // The same fan-out on one hub with its SQLite registry first, in this run: the two-hub numbers beside it.
            await using var single = await SandboxEnvironment.CreateAsync(options);
            await single.StartSshdAsync();
            await single.StartHubAsync();
            using (var singleRegistry = single.OpenRegistry())
            {
                await FleetSteps.OnboardAsync(singleRegistry, names, wave, async (name, _, ct) => await single.AddAgentAsync(name, ["failover"], ct: ct));
            }

            var (_, server) = await single.AddOperatorAsync("bench-operator", "operator");
            var one = await FleetSteps.CliFanOutAsync(single.ServerExecutable, server, Path.Combine(single.WorkDirectory, "operator-profile"), fanOutRounds);
            fanOuts.Add(string.Create(CultureInfo.InvariantCulture, $"| one hub, SQLite | {agents} | {one.Median:0.000} s | {one.Ok}/{agents} ({one.Results} results) | {Load()} |"));
            Console.Error.WriteLine(fanOuts[^1]);
        }

        var loadBefore = Load();
        await using var sandbox = await MultiHubSandbox.CreateAsync(2, options);
        await sandbox.StartAsync();
        var hub1 = sandbox.Hubs[0];
        var hub2 = sandbox.Hubs[1];

        var onboard = Stopwatch.StartNew();
        using var registry = hub2.OpenRegistry();
        await FleetSteps.OnboardAsync(registry, names, wave, async (name, i, ct) => await sandbox.AddAgentAsync(name, i % 2, ["failover"], ct: ct));
        var online = registry.QueryClients(new ClientQuery { OnlineOnly = true }).Where(c => names.Contains(c.DisplayName)).ToList();
        Console.Error.WriteLine($"{agents} agents online in {onboard.Elapsed.TotalSeconds:0.0} s");
        if (fanOutRounds > 0)
        {
            // Through hub-1's operator service: its own clients through their tunnels, hub-2's in one relayed call.
            var (_, server) = await sandbox.AddOperatorAsync("bench-operator", "operator", hub: 0);
            var two = await FleetSteps.CliFanOutAsync(hub1.ServerExecutable, server, Path.Combine(sandbox.WorkDirectory, "operator-profile"), fanOutRounds);
            fanOuts.Add(string.Create(CultureInfo.InvariantCulture, $"| two hubs, PostgreSQL, through hub-1 (half relayed to hub-2) | {agents} | {two.Median:0.000} s | {two.Ok}/{agents} ({two.Results} results) | {Load()} |"));
            Console.Error.WriteLine(fanOuts[^1]);
        }

        var onHub1 = online.Where(c => registry.GetOpenSession(c.Uuid)?.HubId == "hub-1").Select(c => c.Uuid).ToList();
        var before = Snapshot(registry, online);
        var loadAtKill = Load();

        var clock = Stopwatch.StartNew();
        await sandbox.KillHubAsync(0);
        var back = new Dictionary<string, double>(StringComparer.Ordinal);
        while (back.Count < onHub1.Count && clock.Elapsed < timeout)
        {
            foreach (var uuid in onHub1.Where(u => !back.ContainsKey(u)))
            {
                if (registry.GetOpenSession(uuid) is { HubId: "hub-2", OnlineAt: not null })
                {
                    back[uuid] = clock.Elapsed.TotalSeconds;
                }
            }

            await Task.Delay(100);
        }

        var loadAfter = Load();
        var times = back.Values.Order().ToList();
        string At(double share)
        {
            var needed = (int)Math.Ceiling(share * onHub1.Count);
            return times.Count >= needed ? string.Create(CultureInfo.InvariantCulture, $"{times[needed - 1]:0.0} s") : $"not within {timeout.TotalSeconds:0} s";
        }

        var after = Snapshot(registry, online);
        var lost = before.Count(b => !after.TryGetValue(b.Key, out var now) || now.Key != b.Value.Key || now.Tags != b.Value.Tags || now.History < b.Value.History);

        if (fanOuts.Count > 0)
        {
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## Fan-out of `true` through the operator service: `eph-server --server … exec --all --throttle 1024 -- true`, median of {fanOutRounds}"));
            Console.WriteLine();
            Console.WriteLine("| set-up | agents | wall (own process, ssh to the operator service included) | succeeded | load |");
            Console.WriteLine("|---|---:|---:|---:|---:|");
            fanOuts.ForEach(Console.WriteLine);
            Console.WriteLine();
        }

        Console.WriteLine($"## Hub failover ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {Environment.OSVersion})");
        Console.WriteLine();
        Console.WriteLine("| agents | on the killed hub | first back | 95 % back | 100 % back | clients with a key, tag or history row lost | load (start / kill / end) |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|---|");
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {agents} | {onHub1.Count} | {(times.Count > 0 ? $"{times[0]:0.0} s" : "none")} | {At(0.95)} | {At(1.0)} | {lost} | {loadBefore} / {loadAtKill} / {loadAfter} |"));
        return back.Count == onHub1.Count && lost == 0 ? 0 : 1;
    }

    private sealed record Kept(string Key, string Tags, int History);

    private static Dictionary<string, Kept> Snapshot(SqliteRegistry registry, IEnumerable<ClientRecord> clients)
    {
        var keys = registry.ListKeys().ToDictionary(k => k.Fingerprint, k => k.Status.ToString());
        var result = new Dictionary<string, Kept>(StringComparer.Ordinal);
        foreach (var c in clients)
        {
            if (registry.GetClient(c.Uuid) is not { } now)
            {
                continue;
            }

            result[c.Uuid] = new Kept($"{now.KeyFingerprint} {(now.KeyFingerprint is { } f && keys.TryGetValue(f, out var s) ? s : "none")}",
                string.Join(',', now.Tags.Order(StringComparer.Ordinal)),
                registry.CountHistory(new HistoryQuery { Uuids = [c.Uuid] }));
        }

        return result;
    }

    private static string Load() => FleetSteps.Load();
}
