using System.Diagnostics;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent.Metrics;

/// <summary>Size of one filesystem as statvfs reports it, in bytes.</summary>
public readonly record struct DiskSpace(long Total, long Free, long Available);

/// <summary>
/// Collects <c>get_metrics</c> answers. On Linux everything comes from /proc (under a configurable root, so tests
/// feed recorded files) plus statvfs for each real filesystem; Windows and macOS get best-effort equivalents
/// (<see cref="PortableMetrics"/>).
/// </summary>
public sealed class MetricsCollector
{
    /// <summary>Gap between the two /proc/stat samples the CPU share is computed from.</summary>
    public static readonly TimeSpan DefaultCpuSample = TimeSpan.FromMilliseconds(200);

    private readonly string _procRoot;
    private readonly Func<string, DiskSpace?> _diskSpace;
    private readonly Func<TimeSpan, CancellationToken, Task> _delay;
    private readonly TimeSpan _cpuSample;
    private readonly bool _linux;

    /// <param name="procRoot">Where /proc is (tests pass a directory of recorded files).</param>
    /// <param name="diskSpace">statvfs of a mount point; null when it cannot be read. Default: <see cref="DriveInfo"/>.</param>
    /// <param name="delay">Waits between the two CPU samples (tests swap the stat file here).</param>
    /// <param name="cpuSample">Gap between the CPU samples.</param>
    /// <param name="linux">Read /proc even when not on Linux (tests); default: the running OS.</param>
    public MetricsCollector(
        string procRoot = "/proc",
        Func<string, DiskSpace?>? diskSpace = null,
        Func<TimeSpan, CancellationToken, Task>? delay = null,
        TimeSpan? cpuSample = null,
        bool? linux = null)
    {
        _procRoot = procRoot;
        _diskSpace = diskSpace ?? StatDisk;
        _delay = delay ?? ((span, ct) => Task.Delay(span, ct));
        _cpuSample = cpuSample ?? DefaultCpuSample;
        _linux = linux ?? OperatingSystem.IsLinux();
    }

    /// <summary>The default collector of this machine.</summary>
    public static MetricsCollector Default { get; } = new();

    /// <summary>Collects the full form, or only what the summary form needs.</summary>
    public async Task<MetricsResult> CollectAsync(bool summary, CancellationToken ct)
    {
        var full = _linux
            ? await CollectLinuxAsync(summary, ct).ConfigureAwait(false)
            : await PortableMetrics.CollectAsync(summary, _diskSpace, _cpuSample, ct).ConfigureAwait(false);
        return summary ? full.ToSummary() : full;
    }

    private async Task<MetricsResult> CollectLinuxAsync(bool summary, CancellationToken ct)
    {
        var first = Read("stat") is { } s1 ? ProcParser.ParseCpuTimes(s1) : null;
        await _delay(_cpuSample, ct).ConfigureAwait(false);
        var second = Read("stat") is { } s2 ? ProcParser.ParseCpuTimes(s2) : null;
        var cpu = first is { } a && second is { } b ? ProcParser.CpuPercent(a, b) : null;

        var load = Read("loadavg") is { } l ? ProcParser.ParseLoadAvg(l) : null;
        var meminfo = Read("meminfo") is { } m ? ProcParser.ParseMemInfo(m) : [];
        long? memTotal = meminfo.TryGetValue("MemTotal", out var mt) ? mt : null;
        var memAvailable = ProcParser.MemoryAvailable(meminfo);
        long? swapTotal = meminfo.TryGetValue("SwapTotal", out var st) ? st : null;
        long? swapFree = meminfo.TryGetValue("SwapFree", out var sf) ? sf : null;
        var uptime = Read("uptime") is { } u ? ProcParser.ParseUptime(u) : null;

        var mounts = Read("mounts") is { } text ? ProcParser.RealFilesystems(ProcParser.ParseMounts(text)) : [];
        var disks = Disks(mounts.Select(x => (x.MountPoint, (string?)x.FsType)));

        var result = new MetricsResult
        {
            CpuPercent = cpu,
            Load1 = load?.Load1,
            Load5 = load?.Load5,
            Load15 = load?.Load15,
            MemoryTotalBytes = memTotal,
            MemoryAvailableBytes = memAvailable,
            MemoryPercent = memTotal is { } total && memAvailable is { } available ? ProcParser.Percent(total - available, total) : null,
            SwapTotalBytes = swapTotal,
            SwapFreeBytes = swapFree,
            SwapPercent = swapTotal is > 0 && swapFree is { } free ? ProcParser.Percent(swapTotal.Value - free, swapTotal.Value) : swapTotal == 0 ? 0 : null,
            Disks = disks,
            DiskMaxPercent = disks.Length == 0 ? null : disks.Max(d => d.Percent),
            UptimeS = uptime,
            Hostname = HostIdentity.Hostname(),
            Platform = HostIdentity.Platform(),
            CollectedAt = DateTimeOffset.UtcNow,
        };

        if (summary)
        {
            return result;
        }

        var net = Read(Path.Combine("net", "dev")) is { } n ? ProcParser.ParseNetDev(n) : null;
        return result with
        {
            ProcessCount = CountProcesses(),
            Network = net is { } totals ? new NetworkTotals { RxBytes = totals.Rx, TxBytes = totals.Tx } : null,
        };
    }

    /// <summary>statvfs of each mount; a mount that cannot be read (permissions, vanished) is left out.</summary>
    internal DiskMetrics[] Disks(IEnumerable<(string Mount, string? FsType)> mounts)
    {
        var disks = new List<DiskMetrics>();
        foreach (var (mount, fsType) in mounts)
        {
            if (_diskSpace(mount) is not { Total: > 0 } space)
            {
                continue;
            }

            disks.Add(new DiskMetrics
            {
                Mount = mount,
                FsType = fsType,
                TotalBytes = space.Total,
                FreeBytes = space.Available,
                Percent = ProcParser.DiskPercent(space.Total, space.Free, space.Available),
            });
        }

        return [.. disks];
    }

    private int? CountProcesses()
    {
        try
        {
            return Directory.EnumerateDirectories(_procRoot)
                .Count(path => Path.GetFileName(path) is { Length: > 0 } name && name.All(char.IsAsciiDigit));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private string? Read(string relative)
    {
        try
        {
            return File.ReadAllText(Path.Combine(_procRoot, relative));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>statvfs through DriveInfo (AOT-safe; the runtime calls statvfs on Unix, GetDiskFreeSpaceEx on Windows).</summary>
    internal static DiskSpace? StatDisk(string mount)
    {
        try
        {
            var drive = new DriveInfo(mount);
            return new DiskSpace(drive.TotalSize, drive.TotalFreeSpace, drive.AvailableFreeSpace);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Seconds since boot from the monotonic clock (used where /proc/uptime does not exist).</summary>
    internal static long UptimeFromTickCount() => Environment.TickCount64 / 1000;

    internal static int? CountProcessesPortable()
    {
        try
        {
            var processes = Process.GetProcesses();
            foreach (var p in processes)
            {
                p.Dispose();
            }

            return processes.Length;
        }
        catch (Exception ex) when (ex is InvalidOperationException or PlatformNotSupportedException or System.ComponentModel.Win32Exception)
        {
            return null;
        }
    }
}
