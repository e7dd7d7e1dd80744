using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench exchange-peers [--size-mib N] [--rounds N] [--part-mib 16] [--parallel 4] [--warm]: the exchange
/// (<c>eph-server exchange upload/download</c>, one process per transfer) next to rclone and the aws cli, against
/// one strict s3rver on 127.0.0.1, the same random file, in one run. Every round runs the three tools one after the
/// other (the order rotates each round); each uploads the file to its own key and downloads it back. Before every
/// download the page cache is dropped (<c>/proc/sys/vm/drop_caches</c>, needs root) unless --warm; before every
/// upload the file is read once, so every upload starts from a warm source. Per transfer: wall time, the tool's
/// CPU-seconds (user+sys from <c>/usr/bin/time</c>) and s3rver's (from /proc/PID/stat). Prints the peers'
/// configuration, every round and the medians as markdown on stdout.
/// </summary>
internal static class ExchangePeersBench
{
    private sealed record Sample(string Tool, string Direction, int Round, double Wall, double ToolCpu, double ServerCpu);

    public static async Task<int> RunAsync(string[] args)
    {
        var sizeMib = 256;
        var rounds = 3;
        var partMib = 16;
        var parallel = 4;
        var cold = true;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--size-mib": sizeMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--part-mib": partMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--parallel": parallel = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--warm": cold = false; break;
                default: throw new ArgumentException($"unknown argument {args[i]}");
            }
        }

        var root = S3TestServer.RepositoryRoot();
        // The binaries under test: $EPH_BIN_DIR (as the sandbox takes it), else the build's out/bin.
        var binDir = Environment.GetEnvironmentVariable("EPH_BIN_DIR") is { Length: > 0 } fromEnvironment ? fromEnvironment : Path.Combine(root, "out", "bin");
        var ephServer = Path.Combine(binDir, "eph-server");
        if (!File.Exists(ephServer))
        {
            throw new InvalidOperationException($"{ephServer} is missing: run ./build.sh build first");
        }

        var aws = Which("aws") ?? throw new InvalidOperationException("aws is not on PATH");
        var rclone = Which("rclone") ?? throw new InvalidOperationException("rclone is not on PATH (apt-get install rclone)");
        await using var s3 = await S3TestServer.StartAsync(strict: true);
        var work = Directory.CreateTempSubdirectory("eph-bench-peers-");
        try
        {
            var source = Path.Combine(work.FullName, "payload.bin");
            await ExchangeBench.WriteRandomFileAsync(source, (long)sizeMib * 1024 * 1024);
            var bytes = new FileInfo(source).Length;
            var sha = await ShaAsync(source);
            var endpoint = s3.Endpoint.ToString().TrimEnd('/');

            // eph: the operator CLI, its own data directory, the exchange's defaults (the verbs have no tuning flags).
            var data = Path.Combine(work.FullName, "eph-data");
            var ephEnv = new Dictionary<string, string?>
            {
                ["ETPHONEHOME_R2_ENDPOINT"] = endpoint,
                ["ETPHONEHOME_R2_ACCESS_KEY"] = S3TestServer.AccessKey,
                ["ETPHONEHOME_R2_SECRET_KEY"] = S3TestServer.SecretKey,
                ["ETPHONEHOME_R2_BUCKET"] = S3TestServer.Bucket,
            };
            await RunAsync(ephServer, ["init", "--data", data], ephEnv);

            // rclone: same part size and parts in flight as the exchange; its own MD5 checks stay on.
            var rcloneConf = Path.Combine(work.FullName, "rclone.conf");
            await File.WriteAllTextAsync(rcloneConf,
                $"[bench]\ntype = s3\nprovider = Other\naccess_key_id = {S3TestServer.AccessKey}\nsecret_access_key = {S3TestServer.SecretKey}\nendpoint = {endpoint}\nregion = auto\n");
            var rcloneEnv = new Dictionary<string, string?> { ["AWS_CA_BUNDLE"] = null }; // rclone refuses a CA bundle with its own transport
            string[] rcloneUpFlags = ["--s3-chunk-size", $"{partMib}M", "--s3-upload-concurrency", $"{parallel}", "--s3-upload-cutoff", $"{partMib}M", "--s3-no-check-bucket"];
            string[] rcloneDownFlags = ["--multi-thread-streams", $"{parallel}"];

            // aws cli: same part size and requests in flight; checksums only when required (s3rver does not speak
            // the trailing checksums the newer SDK defaults send).
            var awsConfig = Path.Combine(work.FullName, "aws.config");
            await File.WriteAllTextAsync(awsConfig,
                $"[default]\nregion = us-east-1\nrequest_checksum_calculation = when_required\nresponse_checksum_validation = when_required\ns3 =\n  multipart_chunksize = {partMib}MB\n  multipart_threshold = {partMib}MB\n  max_concurrent_requests = {parallel}\n");
            var awsEnv = new Dictionary<string, string?>
            {
                ["AWS_ACCESS_KEY_ID"] = S3TestServer.AccessKey,
                ["AWS_SECRET_ACCESS_KEY"] = S3TestServer.SecretKey,
                ["AWS_CONFIG_FILE"] = awsConfig,
                ["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null",
            };

            Console.Error.WriteLine($"bench: {sizeMib} MiB, {rounds} round(s), s3rver pid {s3.ProcessId} on {endpoint}, {(cold ? "cold" : "warm")} cache for downloads");
            var loadBefore = File.ReadAllText("/proc/loadavg").Trim();
            var samples = new List<Sample>();
            string[] tools = ["eph", "rclone", "aws"];
            for (var round = 1; round <= rounds; round++)
            {
                for (var t = 0; t < tools.Length; t++)
                {
                    var tool = tools[(t + round - 1) % tools.Length];
                    var output = Path.Combine(work.FullName, $"{tool}.out");
                    var objectKey = $"peers/{tool}/payload.bin";
                    await WarmAsync(source);
                    string? transferId = null;
                    var up = tool switch
                    {
                        "eph" => await MeasureAsync(s3.ProcessId, ephServer, ["exchange", "upload", "--data", data, "--json", source], ephEnv, stdout =>
                            transferId = JsonDocument.Parse(stdout).RootElement.GetProperty("transfer_id").GetString()),
                        "rclone" => await MeasureAsync(s3.ProcessId, rclone, ["--config", rcloneConf, "copyto", source, $"bench:{S3TestServer.Bucket}/{objectKey}", .. rcloneUpFlags], rcloneEnv),
                        _ => await MeasureAsync(s3.ProcessId, aws, ["--endpoint-url", endpoint, "s3", "cp", "--no-progress", "--only-show-errors", source, $"s3://{S3TestServer.Bucket}/{objectKey}"], awsEnv),
                    };
                    samples.Add(new Sample(tool, "upload", round, up.Wall, up.ToolCpu, up.ServerCpu));

                    if (cold)
                    {
                        await DropCachesAsync();
                    }

                    var down = tool switch
                    {
                        "eph" => await MeasureAsync(s3.ProcessId, ephServer, ["exchange", "download", "--data", data, "--transfer-id", transferId!, output], ephEnv),
                        "rclone" => await MeasureAsync(s3.ProcessId, rclone, ["--config", rcloneConf, "copyto", $"bench:{S3TestServer.Bucket}/{objectKey}", output, .. rcloneDownFlags], rcloneEnv),
                        _ => await MeasureAsync(s3.ProcessId, aws, ["--endpoint-url", endpoint, "s3", "cp", "--no-progress", "--only-show-errors", $"s3://{S3TestServer.Bucket}/{objectKey}", output], awsEnv),
                    };
                    samples.Add(new Sample(tool, "download", round, down.Wall, down.ToolCpu, down.ServerCpu));
                    if (round == 1 && await ShaAsync(output) != sha)
                    {
                        throw new InvalidOperationException($"{tool} downloaded different bytes");
                    }

                    File.Delete(output);
                    Console.Error.WriteLine($"bench: round {round} {tool}: up {up.Wall:0.00} s, down {down.Wall:0.00} s");

                    // Keep s3rver's disk bounded: one object (and its manifest) at a time.
                    if (tool == "eph")
                    {
                        await RunAsync(ephServer, ["exchange", "delete", "--data", data, "--source-client", "server", transferId!], ephEnv);
                    }
                    else
                    {
                        await RunAsync(aws, ["--endpoint-url", endpoint, "s3", "rm", "--only-show-errors", $"s3://{S3TestServer.Bucket}/{objectKey}"], awsEnv);
                    }
                }
            }

            var loadAfter = File.ReadAllText("/proc/loadavg").Trim();
            Print(samples, sizeMib, bytes, partMib, parallel, cold, loadBefore, loadAfter, Version(aws, ["--version"], awsEnv), Version(rclone, ["version"], rcloneEnv));
            return 0;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    private static void Print(List<Sample> samples, int sizeMib, long bytes, int partMib, int parallel, bool cold, string loadBefore, string loadAfter, string awsVersion, string rcloneVersion)
    {
        static string F(double v) => v.ToString("0.00", CultureInfo.InvariantCulture);
        Console.WriteLine($"Load average before: {loadBefore}; after: {loadAfter}. Downloads from a {(cold ? "cold (dropped) page cache" : "warm page cache")}.");
        Console.WriteLine();
        Console.WriteLine("| tool | configuration |");
        Console.WriteLine("|---|---|");
        Console.WriteLine($"| eph | `eph-server exchange upload/download` (defaults): {partMib} MiB parts, {parallel} in flight, SHA-256 while reading (file read once), parts to presigned UploadPart URLs, manifest; download {parallel} ranges in flight of the upload's part size, SHA-256 verified in order, .partial + rename |");
        Console.WriteLine($"| rclone | {rcloneVersion}: `copyto --s3-chunk-size {partMib}M --s3-upload-concurrency {parallel} --s3-upload-cutoff {partMib}M`; download `--multi-thread-streams {parallel}` (cutoff 250M); MD5 checks on (default) |");
        Console.WriteLine($"| aws | {awsVersion}: `s3 cp`, multipart_chunksize {partMib}MB, multipart_threshold {partMib}MB, max_concurrent_requests {parallel}, checksums when_required |");
        Console.WriteLine();
        Console.WriteLine("| round | tool | direction | wall s | MiB/s | tool CPU s | s3rver CPU s |");
        Console.WriteLine("|---|---|---|---|---|---|---|");
        foreach (var s in samples)
        {
            Console.WriteLine($"| {s.Round} | {s.Tool} | {s.Direction} | {F(s.Wall)} | {(bytes / 1048576.0 / s.Wall).ToString("0.0", CultureInfo.InvariantCulture)} | {F(s.ToolCpu)} | {F(s.ServerCpu)} |");
        }

        Console.WriteLine();
        Console.WriteLine($"Medians, {sizeMib} MiB:");
        Console.WriteLine();
        Console.WriteLine("| direction | eph wall s (CPU s, s3rver CPU s) | rclone | aws | eph ÷ faster peer (speed) |");
        Console.WriteLine("|---|---|---|---|---|");
        foreach (var direction in new[] { "upload", "download" })
        {
            (double Wall, double Cpu, double Server) Median(string tool)
            {
                var own = samples.Where(s => s.Tool == tool && s.Direction == direction).ToList();
                return (Med(own.Select(s => s.Wall)), Med(own.Select(s => s.ToolCpu)), Med(own.Select(s => s.ServerCpu)));
            }

            var eph = Median("eph");
            var rc = Median("rclone");
            var aw = Median("aws");
            var faster = Math.Min(rc.Wall, aw.Wall);
            string Cell((double Wall, double Cpu, double Server) m) => $"{F(m.Wall)} ({F(m.Cpu)}, {F(m.Server)})";
            Console.WriteLine($"| {direction} | {Cell(eph)} | {Cell(rc)} | {Cell(aw)} | {(faster / eph.Wall).ToString("0.00", CultureInfo.InvariantCulture)}× |");
        }
    }

    private static double Med(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }

    /// <summary>Runs one transfer under /usr/bin/time: wall time, the tool's user+sys CPU, s3rver's CPU meanwhile.</summary>
    private static async Task<(double Wall, double ToolCpu, double ServerCpu)> MeasureAsync(int serverPid, string program, IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> env, Action<string>? onOutput = null)
    {
        var timeFile = Path.Combine(Path.GetTempPath(), $"eph-bench-time-{Environment.ProcessId}");
        var serverBefore = AgentMemoryBench.CpuSeconds(serverPid);
        var clock = Stopwatch.StartNew();
        var stdout = await RunAsync("/usr/bin/time", ["-o", timeFile, "-f", "%U %S", program, .. args], env);
        var wall = clock.Elapsed.TotalSeconds;
        var server = AgentMemoryBench.CpuSeconds(serverPid) - serverBefore;
        var times = (await File.ReadAllTextAsync(timeFile)).Trim().Split('\n')[^1].Split(' ');
        File.Delete(timeFile);
        onOutput?.Invoke(stdout);
        return (wall, double.Parse(times[0], CultureInfo.InvariantCulture) + double.Parse(times[1], CultureInfo.InvariantCulture), server);
    }

    private static async Task<string> RunAsync(string program, IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> env)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        foreach (var (name, value) in env)
        {
            if (value is null)
            {
                psi.Environment.Remove(name);
            }
            else
            {
                psi.Environment[name] = value;
            }
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {program}");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(program)} {string.Join(' ', args.Take(4))} exited {process.ExitCode}: {(await stderr).Trim()}");
        }

        return await stdout;
    }

    private static string Version(string program, IReadOnlyList<string> args, IReadOnlyDictionary<string, string?> env)
    {
        try
        {
            var text = RunAsync(program, args, env).GetAwaiter().GetResult();
            return text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault() ?? "?";
        }
        catch (InvalidOperationException)
        {
            return "?";
        }
    }

    /// <summary>The real executable behind a name on PATH (a pyenv shim resolves to its interpreter's script, so its start-up is not counted).</summary>
    private static string? Which(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (!File.Exists(candidate))
            {
                continue;
            }

            if (dir.Contains("/.pyenv/shims", StringComparison.Ordinal))
            {
                try
                {
                    var real = RunAsync("pyenv", ["which", name], new Dictionary<string, string?>()).GetAwaiter().GetResult().Trim();
                    if (File.Exists(real))
                    {
                        return real;
                    }
                }
                catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                }
            }

            return candidate;
        }

        return null;
    }

    private static async Task DropCachesAsync()
    {
        await RunAsync("sync", [], new Dictionary<string, string?>());
        await File.WriteAllTextAsync("/proc/sys/vm/drop_caches", "3");
    }

    private static async Task WarmAsync(string path)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20, FileOptions.SequentialScan);
        var buffer = new byte[1 << 20];
        while (await file.ReadAsync(buffer) > 0)
        {
        }
    }

    private static async Task<string> ShaAsync(string path)
    {
        await using var file = File.OpenRead(path);
        return Convert.ToHexString(await SHA256.HashDataAsync(file)).ToLowerInvariant();
    }
}
