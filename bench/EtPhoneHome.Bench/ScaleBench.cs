using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench scale [--agents N] [--wave W] [--rounds R] [--storm-timeout S] [--skip-storms] [--work DIR]: N real tunnelled agents
/// behind one sshd and one hub (SQLite), on the production heartbeat (30 s) and reconnect backoff (5 s doubling to
/// 300 s, ±20 %). Measures, in order:
/// <list type="number">
/// <item>onboarding: agents started W at a time, each wave's keys approved as they arrive, until all N are online;</item>
/// <item>where one target's time goes (sequential, median over 20 targets): TCP connect to the tunnel port, the
/// mutual handshake, a <c>heartbeat</c> round trip (no process), <c>run_command true</c> (a fork on the agent), and the
/// history write the guard adds;</item>
/// <item>fan-out of <c>true</c> to 100 and to all N (FleetExecutor, history recorded as the cmdlets do);</item>
/// <item>server-side memory per client: RSS and PSS of sshd (listener and per-session processes), the gate relays
/// and the hub, summed and divided by N;</item>
/// <item>two reconnect storms: sshd and all its sessions killed and restarted; the hub killed and restarted. Time until
/// 95 % and 100 % of the agents have a new online session, while <c>eph-server clients</c> runs as its own process
/// every second (how long each call took, how many over 1 s).</item>
/// </list>
/// Prints markdown on stdout; progress on stderr.
/// </summary>
internal static class ScaleBench
{
    private const int BreakdownTargets = 20;

    public static async Task<int> RunAsync(string[] args)
    {
        var count = TransferBench.Arg(args, "--agents", 500);
        var wave = TransferBench.Arg(args, "--wave", 50);
        var rounds = TransferBench.Arg(args, "--rounds", 3);
        var stormTimeout = TimeSpan.FromSeconds(TransferBench.Arg(args, "--storm-timeout", 300));
        var storms = Array.IndexOf(args, "--skip-storms") < 0;
        if (count < BreakdownTargets || wave < 1)
        {
            Console.Error.WriteLine($"eph-bench scale: --agents must be at least {BreakdownTargets} and --wave at least 1");
            return 2;
        }

        var loads = new List<string> { $"start {Load()}" };
        await using var env = await SandboxEnvironment.CreateAsync(new SandboxOptions
        {
            HeartbeatSeconds = 30,
            ReconnectInitialSeconds = 5,
            ReconnectMaxSeconds = 300,
            Log = TextWriter.Null, // one line per agent start would drown the progress lines
            WorkDirectory = Array.IndexOf(args, "--work") is var w and >= 0 && w + 1 < args.Length ? args[w + 1] : null, // kept, with every log
        });
        await env.StartSshdAsync();
        await env.StartHubAsync();

        // 1. Onboarding in waves.
        var names = Enumerable.Range(0, count).Select(i => $"sc-{i:D4}").ToList();
        var onboarding = Stopwatch.StartNew();
        List<double> waveTimes;
        using (var registry = env.OpenRegistry())
        {
            waveTimes = await FleetSteps.OnboardAsync(registry, names, wave, async (name, _, ct) => await env.AddAgentAsync(name, ["scale"], ct: ct));
        }

        var onboardSeconds = onboarding.Elapsed.TotalSeconds;
        loads.Add($"after onboarding {Load()}");
        await Task.Delay(TimeSpan.FromSeconds(20)); // let the last admissions and their first heartbeats settle

        var report = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"## Scale: {count} real tunnelled agents ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, {Environment.OSVersion})"),
            "",
            string.Create(CultureInfo.InvariantCulture, $"Onboarding: {count} agents in waves of {wave}, all online after **{onboardSeconds:0.0} s** ({count / onboardSeconds:0.0} agents/s; waves {waveTimes.Min():0.0}–{waveTimes.Max():0.0} s)."),
            "",
        };

        using (var registry = env.OpenRegistry())
        {
            var clients = registry.QueryClients(new ClientQuery { OnlineOnly = true }).Where(c => names.Contains(c.DisplayName)).ToList();
            var targets = FleetTargets.FromClients(registry, registry, clients);

            // 2. Per-target breakdown, one target at a time.
            report.AddRange(await BreakdownAsync(registry, targets.Take(BreakdownTargets).ToList()));

            // 3. Fan-out.
            var guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.Cli));
            var executor = new FleetExecutor(new TunnelCommandTransport { Guard = guard });
            report.Add("| fan-out of `true` | median of " + rounds.ToString(CultureInfo.InvariantCulture) + " | succeeded | load |");
            report.Add("|---|---:|---:|---:|");
            foreach (var size in new[] { 100, count }.Distinct().Where(s => s <= targets.Count))
            {
                var samples = new List<double>();
                var ok = 0;
                for (var r = 0; r < rounds; r++)
                {
                    var clock = Stopwatch.StartNew();
                    ok = 0;
                    await foreach (var result in executor.RunAsync(targets.Take(size).ToList(), new RunCommandParams { Cmd = "true", TimeoutS = 60 }, new FleetOptions { ThrottleLimit = size }))
                    {
                        ok += result.Status == CommandStatus.Succeeded ? 1 : 0;
                    }

                    samples.Add(clock.Elapsed.TotalSeconds);
                }

                report.Add(string.Create(CultureInfo.InvariantCulture, $"| {size} targets, throttle {size} | {BenchSandbox.Median(samples):0.000} s | {ok}/{size} | {Load()} |"));
                Console.Error.WriteLine(report[^1]);
            }

            report.Add("");

            // 4. Memory, and what the idle fleet costs in CPU.
            report.AddRange(ServerMemory(env, count));
            report.AddRange(await IdleCpuAsync(env, count, TimeSpan.FromSeconds(30)));
        }

        // 5. Storms.
        if (storms)
        {
            report.Add("| reconnect storm (production backoff) | first back | 95 % back | 100 % back | `eph-server clients` during it: calls, median, max, over 1 s | load at start / end |");
            report.Add("|---|---:|---:|---:|---|---|");
            report.Add(await StormAsync(env, names, "sshd and its sessions killed (SIGKILL), sshd restarted", stormTimeout, async () =>
            {
                await env.KillSshdAsync();
                await env.StartSshdAsync();
            }));
            await Task.Delay(TimeSpan.FromSeconds(20));
            report.Add(await StormAsync(env, names, "hub killed (SIGKILL), hub restarted", stormTimeout, async () =>
            {
                await env.KillHubAsync();
                await env.StartHubAsync();
            }));
        }

        loads.Add($"end {Load()}");
        report.Add("");
        report.Add("Load average: " + string.Join(", ", loads) + ".");
        report.ForEach(Console.WriteLine);
        return 0;
    }

    /// <summary>One target at a time: what a fan-out pays per target, split into its steps (medians, ms).</summary>
    private static async Task<List<string>> BreakdownAsync(SqliteRegistry registry, List<FleetTarget> targets)
    {
        var tcp = new List<double>();
        var handshake = new List<double>();
        var heartbeat = new List<double>();
        var command = new List<double>();
        var history = new List<double>();
        var whole = new List<double>();
        var guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.Cli));
        var transport = new TunnelCommandTransport { Guard = guard };
        var run = new RunCommandParams { Cmd = "true", TimeoutS = 60 };
        for (var pass = 0; pass < 2; pass++) // the first pass warms the JIT and the agents; the second is kept
        {
            foreach (var list in new[] { tcp, handshake, heartbeat, command, history, whole })
            {
                list.Clear();
            }

            foreach (var target in targets)
            {
                var session = target.Session!;
                var clock = Stopwatch.StartNew();
                using (var socket = new System.Net.Sockets.TcpClient())
                {
                    await socket.ConnectAsync("127.0.0.1", session.TunnelPort);
                }

                tcp.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                await using (var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None, target.Policy))
                {
                    handshake.Add(clock.Elapsed.TotalMilliseconds);
                    clock.Restart();
                    await tunnel.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, CancellationToken.None);
                    heartbeat.Add(clock.Elapsed.TotalMilliseconds);
                    clock.Restart();
                    await tunnel.InvokeAsync(RpcMethods.RunCommand, run, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
                    command.Add(clock.Elapsed.TotalMilliseconds);
                }

                clock.Restart();
                using (var lease = guard.Begin(target.Uuid, OperationNames.RunCommand, "true"))
                {
                    lease.Complete(OperationStatus.Succeeded, "exit 0", 0);
                }

                history.Add(clock.Elapsed.TotalMilliseconds);
                clock.Restart();
                await transport.RunAsync(target, run, CancellationToken.None);
                whole.Add(clock.Elapsed.TotalMilliseconds);
            }
        }

        string Ms(List<double> samples) => string.Create(CultureInfo.InvariantCulture, $"{BenchSandbox.Median([.. samples]):0.00} ms");
        return
        [
            string.Create(CultureInfo.InvariantCulture, $"Where one target's time goes (one target at a time, median over {targets.Count} targets, second pass; load {Load()}):"),
            "",
            "| step | median |",
            "|---|---:|",
            $"| TCP connect to the tunnel port (sshd's listener) | {Ms(tcp)} |",
            $"| connect + mutual handshake (a new channel through sshd to the agent and back) | {Ms(handshake)} |",
            $"| `heartbeat` round trip on the open tunnel (no process) | {Ms(heartbeat)} |",
            $"| `run_command true` on the open tunnel (fork + exec of `sh -c true` on the agent) | {Ms(command)} |",
            $"| history: the guard's begin + complete (two registry writes) | {Ms(history)} |",
            $"| all of it through `TunnelCommandTransport` (what a fan-out does per target) | {Ms(whole)} |",
            "",
        ];
    }

    /// <summary>RSS and PSS (smaps_rollup) of every server-side process, by kind, and per client.</summary>
    private static List<string> ServerMemory(SandboxEnvironment env, int clients)
    {
        var sshd = env.Sshd!.Pid;
        var hub = env.Hub!.Pid;
        var kinds = new Dictionary<string, (int Count, long Rss, long Pss)>(StringComparer.Ordinal);
        foreach (var pid in Descendants(sshd).Prepend(sshd).Append(hub))
        {
            var comm = Comm(pid);
            var kind = pid == hub ? "hub (eph-server run)" : pid == sshd ? "sshd listener" : comm.StartsWith("eph-gate", StringComparison.Ordinal) ? "gate relays (eph-gate session)" : comm.StartsWith("sshd", StringComparison.Ordinal) ? "sshd session processes" : $"other ({comm})";
            var rollup = AgentMemoryBench.Rollup(pid);
            var now = kinds.GetValueOrDefault(kind);
            kinds[kind] = (now.Count + 1, now.Rss + rollup.GetValueOrDefault("Rss"), now.Pss + rollup.GetValueOrDefault("Pss"));
        }

        var lines = new List<string>
        {
            $"Server-side memory with {clients} agents online:",
            "",
            "| processes | count | RSS | PSS | PSS per client |",
            "|---|---:|---:|---:|---:|",
        };
        foreach (var (kind, v) in kinds.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"| {kind} | {v.Count} | {v.Rss / 1024.0:0.0} MiB | {v.Pss / 1024.0:0.0} MiB | {v.Pss / (double)clients:0} KiB |"));
        }

        var total = (Rss: kinds.Values.Sum(v => v.Rss), Pss: kinds.Values.Sum(v => v.Pss));
        lines.Add(string.Create(CultureInfo.InvariantCulture, $"| **all** | {kinds.Values.Sum(v => v.Count)} | {total.Rss / 1024.0:0.0} MiB | {total.Pss / 1024.0:0.0} MiB | **{total.Pss / 1024.0 / clients:0.00} MiB** |"));
        lines.Add("");
        return lines;
    }

    /// <summary>CPU-seconds every process of the fleet used over <paramref name="window"/> while nothing was asked of it, by kind.</summary>
    private static async Task<List<string>> IdleCpuAsync(SandboxEnvironment env, int clients, TimeSpan window)
    {
        static Dictionary<int, (string Kind, long Ticks)> Sample(SandboxEnvironment env)
        {
            var sample = new Dictionary<int, (string, long)>();
            foreach (var p in ProcessTable())
            {
                var kind = p.Pid == env.Hub?.Pid ? "hub" : p.Comm switch
                {
                    "eph-agent" => "agents (eph-agent)",
                    "ssh" => "agents' ssh",
                    "sshd" => "sshd",
                    "eph-gate" => "gate relays",
                    _ => null,
                };
                if (kind is not null)
                {
                    sample[p.Pid] = (kind, p.Ticks);
                }
            }

            return sample;
        }

        var before = Sample(env);
        await Task.Delay(window);
        var after = Sample(env);
        var hz = 100.0; // USER_HZ on Linux
        var byKind = after.Where(a => before.ContainsKey(a.Key)).GroupBy(a => a.Value.Kind)
            .ToDictionary(g => g.Key, g => g.Sum(a => a.Value.Ticks - before[a.Key].Ticks) / hz, StringComparer.Ordinal);
        var lines = new List<string>
        {
            string.Create(CultureInfo.InvariantCulture, $"CPU of the idle fleet over {window.TotalSeconds:0} s (nothing asked of it; heartbeats every 30 s; load {Load()}):"),
            "",
            "| processes | CPU-s | share of one core | per client per minute |",
            "|---|---:|---:|---:|",
        };
        foreach (var (kind, seconds) in byKind.OrderBy(k => k.Key, StringComparer.Ordinal))
        {
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"| {kind} | {seconds:0.00} | {seconds / window.TotalSeconds * 100:0.0} % | {seconds / clients * 60 / window.TotalSeconds * 1000:0.0} ms |"));
        }

        lines.Add("");
        return lines;
    }

    /// <summary>
    /// Breaks the fleet's connections with <paramref name="breakIt"/>, then polls the registry every 250 ms until every
    /// agent has an online session it did not have before; meanwhile runs `eph-server clients` once a second.
    /// </summary>
    private static async Task<string> StormAsync(SandboxEnvironment env, List<string> names, string what, TimeSpan timeout, Func<Task> breakIt)
    {
        using var registry = env.OpenRegistry();
        var before = registry.QueryClients(new ClientQuery()).Where(c => names.Contains(c.DisplayName)).ToDictionary(c => c.Uuid, c => c.SessionId, StringComparer.Ordinal);
        var loadStart = Load();
        Console.Error.WriteLine($"storm: {what}");
        var broken = DateTimeOffset.UtcNow;
        var clock = Stopwatch.StartNew();
        await breakIt();
        var restarted = clock.Elapsed.TotalSeconds;
        var back = new List<double>();
        var seen = new HashSet<string>(StringComparer.Ordinal);
        using var stop = new CancellationTokenSource();
        var listing = ListLoopAsync(env, stop.Token);
        while (seen.Count < before.Count && clock.Elapsed < timeout)
        {
            // Back: a new online session (the agent reconnected), or its old session re-attached by its gate to the
            // restarted hub, which stamps the session's heartbeat when it takes it back.
            foreach (var s in registry.ListOpenSessions())
            {
                if (before.TryGetValue(s.Uuid, out var old) && !seen.Contains(s.Uuid)
                    && ((s.Id != old && s.OnlineAt is not null) || (s.Id == old && s.LastHeartbeat > broken)))
                {
                    seen.Add(s.Uuid);
                    back.Add(clock.Elapsed.TotalSeconds);
                }
            }

            await Task.Delay(250);
        }

        await stop.CancelAsync();
        var calls = await listing;
        string At(double share)
        {
            var needed = (int)Math.Ceiling(share * before.Count);
            return back.Count >= needed ? string.Create(CultureInfo.InvariantCulture, $"{back[needed - 1]:0.0} s") : $"not within {timeout.TotalSeconds:0} s ({back.Count}/{before.Count})";
        }

        var hubAnswers = calls.Where(c => !double.IsNaN(c.HubSeconds)).Select(c => c.HubSeconds).ToList();
        var listed = calls.Count == 0 ? "none ran" : string.Create(CultureInfo.InvariantCulture,
            $"{calls.Count} calls, wall median {BenchSandbox.Median([.. calls.Select(c => c.Seconds)]):0.00} s, max {calls.Max(c => c.Seconds):0.00} s, {calls.Count(c => c.Seconds > 1)} over 1 s, {calls.Count(c => !c.Ok)} failed; CPU median {BenchSandbox.Median([.. calls.Select(c => c.Cpu)]):0.00} s; the hub's own answer median {(hubAnswers.Count > 0 ? BenchSandbox.Median(hubAnswers) : double.NaN):0.000} s, max {(hubAnswers.Count > 0 ? hubAnswers.Max() : double.NaN):0.000} s, {calls.Count - hubAnswers.Count} unanswered");
        var row = $"| {what} (restarted after {restarted:0.0} s) | {(back.Count > 0 ? back[0].ToString("0.0", CultureInfo.InvariantCulture) + " s" : "none")} | {At(0.95)} | {At(1.0)} | {listed} | {loadStart} / {Load()} |";
        Console.Error.WriteLine(row);
        return row;
    }

    /// <summary>
    /// `eph-server clients --data DIR` as its own process (under /usr/bin/time: wall and CPU), then the same search asked of
    /// the hub directly (how long the hub takes to answer), once a second until cancelled.
    /// </summary>
    private static async Task<List<Listing>> ListLoopAsync(SandboxEnvironment env, CancellationToken ct)
    {
        var calls = new List<Listing>();
        while (!ct.IsCancellationRequested && calls.Count < 600)
        {
            var clock = Stopwatch.StartNew();
            var result = await SandboxEnvironment.RunForResultAsync("/usr/bin/time", ["-f", "cpu %U %S", env.ServerExecutable, "clients", "--data", env.Data.Path, "--tag", "scale"]);
            var wall = clock.Elapsed.TotalSeconds;
            var cpu = result.Stderr.Split('\n').LastOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal))?.Split(' ') is [_, var user, var sys]
                ? double.Parse(user, CultureInfo.InvariantCulture) + double.Parse(sys, CultureInfo.InvariantCulture)
                : double.NaN;
            clock.Restart();
            var hub = await HubClientSearch.TryAsync(env.Data, new ClientQuery { Tags = ["scale"] }, TimeSpan.FromSeconds(30), CancellationToken.None);
            calls.Add(new Listing(wall, result.ExitCode == 0, cpu, hub is null ? double.NaN : clock.Elapsed.TotalSeconds));
            try
            {
                await Task.Delay(1000, ct);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        return calls;
    }

    private sealed record Listing(double Seconds, bool Ok, double Cpu, double HubSeconds);

    private static IEnumerable<int> Descendants(int root)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var p in ProcessTable())
        {
            (children.TryGetValue(p.Parent, out var list) ? list : children[p.Parent] = []).Add(p.Pid);
        }

        var queue = new Queue<int>([root]);
        while (queue.Count > 0)
        {
            foreach (var child in children.GetValueOrDefault(queue.Dequeue()) ?? [])
            {
                yield return child;
                queue.Enqueue(child);
            }
        }
    }

    /// <summary>Every process now: pid, name, parent and CPU ticks (utime + stime) from /proc/PID/stat.</summary>
    private static List<(int Pid, string Comm, int Parent, long Ticks)> ProcessTable()
    {
        var table = new List<(int, string, int, long)>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }

            try
            {
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                table.Add((pid, stat[(stat.IndexOf('(') + 1)..stat.LastIndexOf(')')], int.Parse(fields[1], CultureInfo.InvariantCulture),
                    long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)));
            }
            catch (Exception ex) when (ex is IOException or FormatException or ArgumentOutOfRangeException)
            {
                // exited meanwhile
            }
        }

        return table;
    }

    private static string Comm(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return "?";
        }
    }


    private static string Load() => FleetSteps.Load();
}
