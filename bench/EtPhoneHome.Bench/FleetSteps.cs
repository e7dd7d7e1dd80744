using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>Steps the fleet-sized benches share: onboarding agents in waves, and a fan-out through the operator service.</summary>
internal static class FleetSteps
{
    /// <summary>
    /// Starts the agents <paramref name="wave"/> at a time (<paramref name="add"/> makes and starts one), approves each
    /// wave's keys as they arrive and waits until the wave is online before the next: a whole fleet's first connections at
    /// once would measure this machine's two cores running every agent, ssh and sshd, not the server. Returns each wave's time.
    /// </summary>
    public static async Task<List<double>> OnboardAsync(SqliteRegistry registry, IReadOnlyList<string> names, int wave, Func<string, int, CancellationToken, Task> add)
    {
        var waves = new List<double>();
        var online = new List<string>();
        var clock = Stopwatch.StartNew();
        for (var first = 0; first < names.Count; first += wave)
        {
            var waveClock = Stopwatch.StartNew();
            var batch = names.Skip(first).Take(wave).ToList();
            var pending = new HashSet<string>(batch, StringComparer.Ordinal);
            await Parallel.ForEachAsync(batch.Select((n, i) => (n, i: first + i)), new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (a, ct) => await add(a.n, a.i, ct));
            var patience = TimeSpan.FromSeconds(120 + (2 * batch.Count));
            await SandboxEnvironment.WaitUntilAsync(() =>
            {
                foreach (var key in registry.ListKeys(KeyStatus.Pending).Where(k => k.ClaimedDisplayName is { } n && pending.Contains(n)))
                {
                    registry.ApproveKey(key.Fingerprint, "bench");
                    pending.Remove(key.ClaimedDisplayName!);
                }

                return pending.Count == 0 ? (object)true : null;
            }, patience, $"the pending keys of agents {batch[0]}…{batch[^1]}");
            online.AddRange(batch);
            var wanted = new HashSet<string>(online, StringComparer.Ordinal);
            try
            {
                await SandboxEnvironment.WaitUntilAsync(() =>
                    registry.QueryClients(new ClientQuery { OnlineOnly = true }).Count(c => wanted.Contains(c.DisplayName)) == wanted.Count ? (object)true : null,
                    patience, $"{wanted.Count} agents online");
            }
            catch (TimeoutException)
            {
                var now = registry.QueryClients(new ClientQuery { OnlineOnly = true }).Count(c => wanted.Contains(c.DisplayName));
                throw new TimeoutException($"{now} of {wanted.Count} agents online after {patience.TotalSeconds:0} s");
            }

            waves.Add(waveClock.Elapsed.TotalSeconds);
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{online.Count} agents online after {clock.Elapsed.TotalSeconds:0.0} s (wave {waves[^1]:0.0} s, load {Load()})"));
        }

        return waves;
    }

    /// <summary>
    /// `eph-server --server … exec --all --throttle 1024 --json -- true` as an operator on a workstation runs it (its own
    /// process, ssh to the operator service), <paramref name="rounds"/> times: the median wall time and the succeeded
    /// count of the last round. <paramref name="selection"/> replaces <c>--all</c> (e.g. <c>--tag x</c>).
    /// </summary>
    public static async Task<(double Median, int Ok, int Results)> CliFanOutAsync(string serverExecutable, string[] serverArguments, string profileDirectory, int rounds,
        string[]? selection = null)
    {
        var samples = new List<double>();
        var ok = 0;
        var results = 0;
        for (var r = 0; r < rounds; r++)
        {
            var clock = Stopwatch.StartNew();
            var (_, stdout, stderr) = await SandboxEnvironment.RunForResultAsync("env",
                ["-u", "SSH_AUTH_SOCK", "ETPHONEHOME_CONFIG_DIR=" + profileDirectory, serverExecutable, .. serverArguments, "exec", .. selection ?? ["--all"], "--throttle", "1024", "--timeout", "60", "--json", "--", "true"]);
            samples.Add(clock.Elapsed.TotalSeconds);
            var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            results = lines.Length;
            ok = lines.Count(l => l.Contains("\"status\":\"succeeded\"", StringComparison.OrdinalIgnoreCase) || l.Contains("\"status\":\"Succeeded\"", StringComparison.Ordinal));
            if (ok < results)
            {
                Console.Error.WriteLine($"fan-out round {r + 1}: {ok}/{results} succeeded; {stderr.Trim().Split('\n').FirstOrDefault()}; e.g. {lines.FirstOrDefault(l => !l.Contains("ucceeded", StringComparison.Ordinal))}");
            }
        }

        return (BenchSandbox.Median(samples), ok, results);
    }

    public static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];
}
