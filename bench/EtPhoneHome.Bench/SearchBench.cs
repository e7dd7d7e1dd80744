using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench search [--clients N] [--runs N] [--keep DIR [--seed-only]] [--postgres file:PATH]: fills a temporary registry with a fleet of N clients (tags,
/// capabilities, purposes and an online share like a real fleet's, one transaction), then times the searches
/// of Get-EphClient and `eph-server clients` (ClientQueries.Search over the SQLite registry, or with --postgres over a
/// PostgreSQL registry in a schema of its own, dropped afterwards unless kept) and prints a markdown table with the
/// median and p95 of each.
/// </summary>
internal static class SearchBench
{
    /// <summary>The per-search target: 20 ms at 100,000 clients.</summary>
    private const double TargetMs = 20;

    private static readonly string[] Regions = ["eu-west", "eu-central", "us-east", "us-west", "ap-south", "ap-northeast", "sa-east", "af-south"];
    private static readonly string[] Cities = ["dublin", "frankfurt", "virginia", "oregon", "mumbai", "tokyo", "sao-paulo", "cape-town"];
    private static readonly string[] Roles =
    [
        "web", "api", "db", "cache", "queue", "build", "gpu-worker", "kiosk", "edge", "storage",
        "monitoring", "ci-runner", "batch", "proxy", "dns", "mail", "backup", "analytics", "vpn", "iot-gateway",
    ];

    private static readonly string[] Services = ["billing", "checkout", "search", "catalog", "identity", "payments", "reporting", "telemetry", "media", "support"];

    // Capability and the share of the fleet that has it.
    private static readonly (string Name, double Share)[] CapabilityShares =
    [
        ("ssh", 1.0), ("systemd", 0.9), ("git", 0.8), ("apt", 0.6), ("dnf", 0.25), ("python3.12", 0.5), ("python3.11", 0.2),
        ("docker", 0.4), ("podman", 0.1), ("make", 0.5), ("c-compiler", 0.35), ("cmake", 0.15), ("node", 0.3), ("npm", 0.3),
        ("go", 0.1), ("rust", 0.05), ("java", 0.15), ("kubectl", 0.2), ("helm", 0.1), ("aws-cli", 0.2), ("gcloud", 0.05),
        ("azure-cli", 0.05),
    ];

    public static int Run(string[] args)
    {
        var clients = 100_000;
        var runs = 25;
        string? keep = null;
        var seedOnly = false;
        string? postgres = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--clients" when i + 1 < args.Length:
                    clients = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--runs" when i + 1 < args.Length:
                    runs = int.Parse(args[++i], CultureInfo.InvariantCulture);
                    break;
                case "--keep" when i + 1 < args.Length:
                    keep = args[++i]; // reuse (or create and keep) a seeded registry in this directory
                    break;
                case "--postgres" when i + 1 < args.Length:
                    // file:PATH holding a PostgreSQL connection string (a password never goes on a command line); the
                    // bench takes a schema of its own in that database.
                    var given = args[++i];
                    if (!given.StartsWith("file:", StringComparison.Ordinal))
                    {
                        Console.Error.WriteLine("eph-bench search: --postgres takes file:PATH, a file holding the connection string (a password must not be on the command line)");
                        return 2;
                    }

                    postgres = File.ReadAllText(given["file:".Length..]).Trim();
                    break;
                case "--seed-only":
                    seedOnly = true; // with --keep: seed the registry and stop (measure in a later process)
                    break;
                default:
                    Console.Error.WriteLine($"eph-bench search: unknown argument '{args[i]}' (use --clients N, --runs N, --keep DIR, --seed-only, --postgres file:PATH)");
                    return 2;
            }
        }

        var root = keep ?? Path.Combine(Path.GetTempPath(), "eph-bench-search-" + Guid.NewGuid().ToString("N")[..12]);
        var schema = "eph_bench_" + Path.GetFileName(root).Replace('-', '_').ToLowerInvariant();
        try
        {
            var dir = new DataDirectory(Path.Combine(root, "data"));
            Directory.CreateDirectory(dir.Path);
            using var registry = postgres is null
                ? SqliteRegistry.Open(dir)
                : SqliteRegistry.Open(dir, RegistrySource.Postgres(new Npgsql.NpgsqlConnectionStringBuilder(postgres) { SearchPath = schema }.ConnectionString));
            // The seeded sessions must stay online for the whole run.
            registry.SetSetting(SqliteRegistry.HeartbeatSetting, "3600");
            var seeded = registry.QueryClients(new ClientQuery { Names = ["*-000000"] }).Count == 0;
            var seedClock = Stopwatch.StartNew();
            if (seeded)
            {
                registry.SeedClients(Fleet(clients));
            }

            var seedSeconds = seedClock.Elapsed.TotalSeconds;
            if (seedOnly)
            {
                // A kept fleet is reused, not seeded again: the line says which, and times only a real seeding.
                Console.WriteLine(seeded
                    ? string.Create(CultureInfo.InvariantCulture, $"Seeded {clients:N0} clients in {seedSeconds:0.0} s into {root}.")
                    : $"Reused the fleet already seeded in {root} (nothing written; --clients does not apply to it).");
                return 0;
            }

            var dbBytes = postgres is not null ? 0
                : new FileInfo(registry.DatabaseFile).Length + (File.Exists(registry.DatabaseFile + "-wal") ? new FileInfo(registry.DatabaseFile + "-wal").Length : 0);

            (string Name, ClientQuery Query)[] searches =
            [
                ("tag `gpu-worker`", new ClientQuery { Tags = ["gpu-worker"] }),
                ("tags `prod` + `eu-west` (both)", new ClientQuery { Tags = ["prod", "eu-west"] }),
                ("capability `nvidia-gpu`", new ClientQuery { Capabilities = ["nvidia-gpu"] }),
                ("capabilities `docker` + `kubectl` + tag `prod`", new ClientQuery { Capabilities = ["docker", "kubectl"], Tags = ["prod"] }),
                ("query `frankfurt` (name, purpose, hostname, tags)", new ClientQuery { Query = "frankfurt" }),
                ("query `billing-0042` (rare)", new ClientQuery { Query = "billing-0042" }),
                ("purpose `checkout`", new ClientQuery { Purpose = "checkout" }),
                ("online only", new ClientQuery { OnlineOnly = true }),
                ("name `web-eu-west-0001*` (wildcard)", new ClientQuery { Names = ["web-eu-west-0001*"] }),
                ("name `web-*` (wildcard)", new ClientQuery { Names = ["web-*"] }),
                ("all clients (no filter)", new ClientQuery()),
            ];

            // Warm up every search until the JIT has compiled the search loops with full optimization (tiered
            // compilation starts them unoptimized), so the table shows the steady state of a long-lived process.
            var warmUp = Stopwatch.StartNew();
            while (warmUp.Elapsed < TimeSpan.FromSeconds(3))
            {
                foreach (var (_, query) in searches)
                {
                    _ = ClientQueries.Search(registry, query);
                }
            }

            Console.WriteLine($"## Fleet registry search ({DateTime.UtcNow:yyyy-MM-dd}, {clients:N0} clients, {runs} runs each, {(postgres is null ? "SQLite" : "PostgreSQL")})");
            Console.WriteLine();
            Console.WriteLine(seeded
                ? string.Create(CultureInfo.InvariantCulture,
                    $"Seeded {clients:N0} clients (4 tags, ~8 capabilities each, 10 % online) in one transaction: {seedSeconds:0.0} s; registry {dbBytes / 1048576.0:0.0} MiB.")
                : string.Create(CultureInfo.InvariantCulture,
                    $"Reused a kept fleet ({root}, seeded by an earlier run; not timed here); registry {dbBytes / 1048576.0:0.0} MiB."));
            Console.WriteLine();
            Console.WriteLine(postgres is null
                ? "Wall = elapsed time; CPU = the searching thread's CPU time (unaffected by other processes on the machine)."
                : "Wall = elapsed time; CPU = the searching thread's CPU time (the database server's own CPU is not in it).");
            Console.WriteLine();
            Console.WriteLine("| search | results | wall median | wall p95 | CPU median | CPU p95 | target < 20 ms (wall median) |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|:---:|");
            foreach (var (name, query) in searches)
            {
                var results = 0;
                var (wall, cpu) = Time(runs, () => results = ClientQueries.Search(registry, query).Clients.Count);
                Row(name, results, wall, cpu, query == searches[^1].Query ? "(listing)" : Median(wall) < TargetMs ? "yes" : "**no**");
            }

            // The first search of a process reads every client into the in-memory copy; later ones read only what changed.
            Console.WriteLine();
            Console.WriteLine("| first search in a process, and searches after changes | results | wall median | wall p95 | CPU median | CPU p95 | |");
            Console.WriteLine("|---|---:|---:|---:|---:|---:|:---:|");
            var tagQuery = new ClientQuery { Tags = ["gpu-worker"] };
            var coldRuns = Math.Max(3, runs / 4);
            var coldResults = 0;
            var (coldWall, coldCpu) = Time(coldRuns, () =>
            {
                registry.ClientCopy.Forget();
                coldResults = ClientQueries.Search(registry, tagQuery).Clients.Count;
            });
            Row("first search (reads all clients), tag `gpu-worker`", coldResults, coldWall, coldCpu, "(once per process)");

            var random = new Random(7);
            var runId = Guid.NewGuid().ToString("N")[..8]; // every edit changes the row, also when the bench runs again on a kept registry
            var all = registry.QueryClients(new ClientQuery()).Select(c => c.Uuid).ToArray();
            foreach (var edits in new[] { 10, 1_000 })
            {
                var results = 0;
                var round = 0;
                var (wall, cpu) = Time(Math.Max(3, runs / 4), () => results = ClientQueries.Search(registry, tagQuery).Clients.Count, prepare: () =>
                {
                    round++;
                    for (var e = 0; e < edits; e++)
                    {
                        var purpose = string.Create(CultureInfo.InvariantCulture, $"edited in run {runId} round {round}");
                        registry.UpdateClient(all[random.Next(all.Length)], new ClientUpdate { Purpose = purpose }, "bench");
                    }
                });
                Row(string.Create(CultureInfo.InvariantCulture, $"tag `gpu-worker` after {edits:N0} client edits"), results, wall, cpu,
                    Median(wall) < TargetMs ? "yes" : "**no**");
            }

            // Heartbeats touch every online client's session and last_seen; they must not make searches read those clients again.
            var sessions = registry.ListOpenSessions();
            var heartbeatResults = 0;
            var (beatWall, beatCpu) = Time(3, () => heartbeatResults = ClientQueries.Search(registry, tagQuery).Clients.Count, prepare: () =>
            {
                foreach (var session in sessions)
                {
                    registry.TouchSession(session.Id);
                }
            });
            Row(string.Create(CultureInfo.InvariantCulture, $"tag `gpu-worker` after a heartbeat from each of {sessions.Count:N0} online clients"),
                heartbeatResults, beatWall, beatCpu, Median(beatWall) < TargetMs ? "yes" : "**no**");

            registry.ClientCopy.Forget();
            GC.Collect();
            GC.WaitForPendingFinalizers();
            var without = GC.GetTotalMemory(forceFullCollection: true);
            _ = registry.QueryClients(new ClientQuery { Tags = ["none"] });
            var with = GC.GetTotalMemory(forceFullCollection: true);
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"In-memory copy of {registry.ClientCopy.Count:N0} clients (records, search arrays, uuid map): {(with - without) / 1048576.0:0.0} MiB of managed heap."));
            return 0;
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            if (postgres is not null && keep is null)
            {
                using var c = new Npgsql.NpgsqlConnection(postgres);
                c.Open();
                using var drop = c.CreateCommand();
                drop.CommandText = $"DROP SCHEMA IF EXISTS {schema} CASCADE";
                drop.ExecuteNonQuery();
            }

            try
            {
                if (keep is null)
                {
                    Directory.Delete(root, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }

    private static void Row(string name, int results, List<double> wall, List<double> cpu, string verdict) =>
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {name} | {results:N0} | {Median(wall):0.0} ms | {P95(wall):0.0} ms | {Median(cpu):0.0} ms | {P95(cpu):0.0} ms | {verdict} |"));

    private static (List<double> Wall, List<double> Cpu) Time(int runs, Action action, Action? prepare = null)
    {
        prepare?.Invoke();
        action(); // warm-up: statement cache, page cache
        var wall = new List<double>(runs);
        var cpu = new List<double>(runs);
        for (var i = 0; i < runs; i++)
        {
            prepare?.Invoke();
            var cpuStart = ThreadCpuMs();
            var clock = Stopwatch.StartNew();
            action();
            wall.Add(clock.Elapsed.TotalMilliseconds);
            cpu.Add(ThreadCpuMs() - cpuStart);
        }

        wall.Sort();
        cpu.Sort();
        return (wall, cpu);
    }

    private static double Median(List<double> sorted) => sorted[sorted.Count / 2];

    private static double P95(List<double> sorted) => sorted[Math.Min(sorted.Count - 1, (int)Math.Ceiling(sorted.Count * 0.95) - 1)];

    private const int ClockThreadCpuTime = 3; // CLOCK_THREAD_CPUTIME_ID on Linux

    [System.Runtime.InteropServices.StructLayout(System.Runtime.InteropServices.LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "clock_gettime")]
    private static extern int ClockGetTime(int clock, out TimeSpec time);

    private static double ThreadCpuMs() =>
        ClockGetTime(ClockThreadCpuTime, out var t) == 0 ? (t.Seconds * 1000.0) + (t.Nanoseconds / 1e6) : double.NaN;

    /// <summary>A deterministic fleet: role, region, environment and team tags; capabilities by share; 10 % online.</summary>
    private static IEnumerable<ClientSeed> Fleet(int count)
    {
        var random = new Random(20250101);
        for (var i = 0; i < count; i++)
        {
            var role = Roles[random.Next(Roles.Length)];
            var r = random.Next(Regions.Length);
            var env = random.NextDouble() switch { < 0.5 => "prod", < 0.7 => "staging", _ => "dev" };
            var team = "team-" + random.Next(1, 51).ToString("00", CultureInfo.InvariantCulture);
            var service = Services[random.Next(Services.Length)];
            var host = string.Create(CultureInfo.InvariantCulture, $"{role}-{Regions[r]}-{i:000000}");
            var caps = CapabilityShares.Where(c => random.NextDouble() < c.Share).Select(c => c.Name).ToList();
            if (role == "gpu-worker" || random.NextDouble() < 0.01)
            {
                caps.Add("nvidia-gpu");
            }

            yield return new ClientSeed
            {
                Uuid = new Guid(random.Next(), (short)random.Next(), (short)random.Next(), BitConverter.GetBytes(random.NextInt64())).ToString(),
                DisplayName = host,
                Hostname = host + ".fleet.internal",
                Purpose = string.Create(CultureInfo.InvariantCulture, $"{role} for {service}-{random.Next(1, 200):0000} ({team}), {Cities[r]}"),
                Platform = random.NextDouble() < 0.85 ? "linux-x64" : random.NextDouble() < 0.5 ? "linux-arm64" : "windows-x64",
                Username = "svc-eph",
                Tags = [env, Regions[r], role, team],
                Capabilities = caps,
                Online = random.NextDouble() < 0.1,
            };
        }
    }
}
