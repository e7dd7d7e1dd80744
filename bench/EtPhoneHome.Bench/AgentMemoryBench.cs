using System.Globalization;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench agent-memory [--commands N] [--mib M] [--idle S] [--cpu-mib C] [--files-kib K1,K2] [--smaps FILE] [--agent-log FILE]: one real agent behind the sandbox sshd and
/// hub; a burst of work (N `run_command`s, half on new tunnel connections and half on one warm connection; file reads
/// and writes through read_file/write_file (--files-kib, default 64,1024); list_files; get_metrics; an M MiB upload and download), then
/// S seconds idle. Prints VmRSS and, from smaps_rollup, Pss, Private and Anonymous memory fresh, during the idle period
/// and at its end, and where the resident memory is (per mapping, from smaps; --smaps keeps a copy of it, --agent-log one of the agent's log). With --cpu-mib, a C MiB upload and
/// download after that, each with the agent's CPU-seconds (utime + stime from /proc/PID/stat).
/// </summary>
internal static class AgentMemoryBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var commands = TransferBench.Arg(args, "--commands", 200);
        var mib = TransferBench.Arg(args, "--mib", 64);
        var idleSeconds = TransferBench.Arg(args, "--idle", 60);
        var cpuMib = TransferBench.Arg(args, "--cpu-mib", 0);
        var fileIndex = Array.IndexOf(args, "--files-kib");
        var fileKib = (fileIndex >= 0 && fileIndex + 1 < args.Length ? args[fileIndex + 1] : "64,1024").Split(',').Select(k => int.Parse(k, CultureInfo.InvariantCulture)).ToArray();
        await using var bench = await BenchSandbox.CreateAsync();
        var client = (await bench.AddOnlineAgentsAsync("mem", 1, TimeSpan.FromSeconds(60)))[0];
        var pid = bench.Env.Agents.Single().Process!.Pid;
        using var registry = bench.Env.OpenRegistry();
        var target = FleetTargets.FromClients(registry, registry, [client]).Single();
        var session = registry.GetOpenSession(client.Uuid)!;
        var dir = Path.Combine(bench.Env.WorkDirectory, "mem");
        Directory.CreateDirectory(dir);

        var rows = new List<string>();
        await Task.Delay(TimeSpan.FromSeconds(10));
        rows.Add(Row("fresh, 10 s after online", pid));

        // The burst.
        var run = new RunCommandParams { Cmd = "true" };
        for (var i = 0; i < commands / 2; i++)
        {
            await using var tunnel = await Connect(session);
            await tunnel.InvokeAsync(RpcMethods.RunCommand, run, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        }

        await using (var warm = await Connect(session))
        {
            for (var i = 0; i < commands - commands / 2; i++)
            {
                await warm.InvokeAsync(RpcMethods.RunCommand, run, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
            }

            // A command with some output, and files through read_file / write_file (base64 of random bytes).
            await warm.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "seq 1 100000" }, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
            foreach (var size in fileKib)
            {
                var bytes = new byte[size * 1024];
                Random.Shared.NextBytes(bytes);
                var path = Path.Combine(dir, $"written-{size}.bin");
                await warm.InvokeAsync(FileMethods.WriteFile, new WriteFileParams { Path = path, Content = Convert.ToBase64String(bytes), Encoding = FileEncodings.Base64 },
                    FileJson.Default.WriteFileParams, FileJson.Default.WriteFileResult, CancellationToken.None);
                var read = await warm.InvokeAsync(FileMethods.ReadFile, new ReadFileParams { Path = path }, FileJson.Default.ReadFileParams, FileJson.Default.ReadFileResult, CancellationToken.None);
                if (read.Size != bytes.Length)
                {
                    throw new InvalidOperationException($"read_file returned {read.Size} bytes, wrote {bytes.Length}");
                }
            }

            await warm.InvokeAsync(FileMethods.ListFiles, new ListFilesParams { Path = "/usr/lib", Recursive = true }, FileJson.Default.ListFilesParams, FileJson.Default.ListFilesResult, CancellationToken.None);
            await warm.InvokeAsync(MetricsMethods.GetMetrics, new GetMetricsParams(), MetricsJson.Default.GetMetricsParams, MetricsJson.Default.MetricsResult, CancellationToken.None);
        }

        var transfers = new FileTransferClient();
        var source = Path.Combine(dir, "source.bin");
        await TransferBench.WriteRandomAsync(source, mib);
        await transfers.UploadAsync(target, source, Path.Combine(dir, "up.bin"), null, CancellationToken.None);
        await transfers.DownloadAsync(target, Path.Combine(dir, "up.bin"), Path.Combine(dir, "down.bin"), null, CancellationToken.None);
        rows.Add(Row("right after the burst", pid));

        // Idle.
        var elapsed = 0;
        foreach (var mark in new[] { 2, 10, 30, 45, 60, 75, 90, 120, idleSeconds }.Where(m => m <= idleSeconds).Distinct())
        {
            await Task.Delay(TimeSpan.FromSeconds(mark - elapsed));
            elapsed = mark;
            rows.Add(Row($"idle {mark} s after the burst", pid));
        }

        var where = Mappings(pid);
        if (Array.IndexOf(args, "--smaps") is var smaps and >= 0 && smaps + 1 < args.Length)
        {
            File.Copy($"/proc/{pid}/smaps", args[smaps + 1], overwrite: true);
        }

        if (Array.IndexOf(args, "--agent-log") is var log and >= 0 && log + 1 < args.Length)
        {
            File.Copy(bench.Env.Agents.Single().LogFile, args[log + 1], overwrite: true);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"## eph-agent memory after a burst ({DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, {Environment.ProcessorCount} cores, load {Load()}): {commands} commands, files {string.Join(" + ", fileKib)} KiB, list_files, get_metrics, {mib} MiB up + down"));
        Console.WriteLine();
        Console.WriteLine("| agent | VmRSS KiB | Pss KiB | Private KiB | Anonymous KiB |");
        Console.WriteLine("|---|---:|---:|---:|---:|");
        rows.ForEach(Console.WriteLine);
        Console.WriteLine();
        Console.WriteLine($"Resident memory by mapping at the end ({where.Sum(w => w.Rss)} KiB):");
        Console.WriteLine();
        Console.WriteLine("| mapping | Rss KiB | Pss KiB | Anonymous KiB |");
        Console.WriteLine("|---|---:|---:|---:|");
        foreach (var (name, rss, pss, anon) in where.OrderByDescending(w => w.Rss).Take(12))
        {
            Console.WriteLine($"| {name} | {rss} | {pss} | {anon} |");
        }

        if (cpuMib > 0)
        {
            var big = Path.Combine(dir, "cpu.bin");
            await TransferBench.WriteRandomAsync(big, cpuMib);
            var before = CpuSeconds(pid);
            await transfers.UploadAsync(target, big, Path.Combine(dir, "cpu-up.bin"), null, CancellationToken.None);
            var afterUp = CpuSeconds(pid);
            await transfers.DownloadAsync(target, Path.Combine(dir, "cpu-up.bin"), Path.Combine(dir, "cpu-down.bin"), null, CancellationToken.None);
            var afterDown = CpuSeconds(pid);
            Console.WriteLine();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"Agent CPU for {cpuMib} MiB (load {Load()}): upload {afterUp - before:0.00} s, download {afterDown - afterUp:0.00} s; VmHWM {BenchSandbox.Memory(pid)?.Hwm} KiB"));
        }

        return 0;
    }

    private static Task<TunnelClient> Connect(SessionRecord session) =>
        TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None);

    private static string Row(string label, int pid)
    {
        var rss = BenchSandbox.Memory(pid)?.Rss;
        var rollup = Rollup(pid);
        return $"| {label} | {rss} | {rollup.GetValueOrDefault("Pss")} | {rollup.GetValueOrDefault("Private_Clean") + rollup.GetValueOrDefault("Private_Dirty")} | {rollup.GetValueOrDefault("Anonymous")} |";
    }

    /// <summary>The fields of /proc/PID/smaps_rollup in KiB (empty when the process is gone).</summary>
    internal static Dictionary<string, long> Rollup(int pid)
    {
        var fields = new Dictionary<string, long>(StringComparer.Ordinal);
        try
        {
            foreach (var line in File.ReadLines($"/proc/{pid}/smaps_rollup").Skip(1))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length >= 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var kib))
                {
                    fields[parts[0].TrimEnd(':')] = kib;
                }
            }
        }
        catch (IOException)
        {
            // exited meanwhile
        }

        return fields;
    }

    /// <summary>Rss, Pss and Anonymous per mapping name from smaps; anonymous mappings are grouped as "[anon]".</summary>
    private static List<(string Name, long Rss, long Pss, long Anon)> Mappings(int pid)
    {
        var totals = new Dictionary<string, (long Rss, long Pss, long Anon)>(StringComparer.Ordinal);
        var current = "[anon]";
        foreach (var line in File.ReadLines($"/proc/{pid}/smaps"))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 5 && parts[0].Contains('-', StringComparison.Ordinal) && !parts[0].EndsWith(':'))
            {
                current = parts.Length >= 6 ? Path.GetFileName(parts[5]) is { Length: > 0 } n ? n : parts[5] : "[anon]";
                continue;
            }

            if (parts.Length >= 2 && long.TryParse(parts[1], CultureInfo.InvariantCulture, out var kib))
            {
                var t = totals.GetValueOrDefault(current);
                totals[current] = parts[0] switch
                {
                    "Rss:" => (t.Rss + kib, t.Pss, t.Anon),
                    "Pss:" => (t.Rss, t.Pss + kib, t.Anon),
                    "Anonymous:" => (t.Rss, t.Pss, t.Anon + kib),
                    _ => t,
                };
            }
        }

        return totals.Select(kv => (kv.Key, kv.Value.Rss, kv.Value.Pss, kv.Value.Anon)).ToList();
    }

    /// <summary>utime + stime of a process in seconds (with <paramref name="withReapedChildren"/>, also cutime +
    /// cstime: the children it has waited for).</summary>
    internal static double CpuSeconds(int pid, bool withReapedChildren = false)
    {
        // Fields after the command name in parentheses: utime, stime, cutime, cstime are the 12th to 15th.
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        if (withReapedChildren)
        {
            ticks += long.Parse(fields[13], CultureInfo.InvariantCulture) + long.Parse(fields[14], CultureInfo.InvariantCulture);
        }

        return ticks / 100.0;
    }

    private static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];
}
