using System.Net.NetworkInformation;
using System.Runtime.InteropServices;
using System.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent.Metrics;

/// <summary>
/// Best-effort metrics where there is no /proc.
/// <list type="bullet">
/// <item>Windows: CPU share from two GetSystemTimes samples, memory from GlobalMemoryStatusEx, fixed drives,
/// uptime, process count, network totals. No load averages (Windows has none) and no swap figures.</item>
/// <item>macOS: load averages (getloadavg), total memory (sysctl hw.memsize), local volumes, uptime, process count,
/// network totals. No CPU share, available memory or swap: those need Mach host statistics calls.</item>
/// </list>
/// </summary>
internal static class PortableMetrics
{
    public static async Task<MetricsResult> CollectAsync(bool summary, Func<string, DiskSpace?> diskSpace, TimeSpan cpuSample, CancellationToken ct)
    {
        double? cpu = null;
        if (OperatingSystem.IsWindows() && WindowsCpuTimes() is { } first)
        {
            await Task.Delay(cpuSample, ct).ConfigureAwait(false);
            if (WindowsCpuTimes() is { } second)
            {
                cpu = ProcParser.CpuPercent(first, second);
            }
        }

        long? memTotal = null, memAvailable = null;
        if (OperatingSystem.IsWindows() && WindowsMemory() is { } memory)
        {
            (memTotal, memAvailable) = memory;
        }
        else if (OperatingSystem.IsMacOS())
        {
            memTotal = SysctlInt64("hw.memsize");
        }

        (double, double, double)? load = OperatingSystem.IsWindows() ? null : LoadAverages();
        var disks = new MetricsCollector(diskSpace: diskSpace, linux: false).Disks(LocalVolumes());
        var result = new MetricsResult
        {
            CpuPercent = cpu,
            Load1 = load?.Item1,
            Load5 = load?.Item2,
            Load15 = load?.Item3,
            MemoryTotalBytes = memTotal,
            MemoryAvailableBytes = memAvailable,
            MemoryPercent = memTotal is { } total && memAvailable is { } available ? ProcParser.Percent(total - available, total) : null,
            Disks = disks,
            DiskMaxPercent = disks.Length == 0 ? null : disks.Max(d => d.Percent),
            UptimeS = MetricsCollector.UptimeFromTickCount(),
            Hostname = HostIdentity.Hostname(),
            Platform = HostIdentity.Platform(),
            CollectedAt = DateTimeOffset.UtcNow,
        };

        return summary ? result : result with
        {
            ProcessCount = MetricsCollector.CountProcessesPortable(),
            Network = NetworkTotals(),
        };
    }

    private static IEnumerable<(string Mount, string? FsType)> LocalVolumes()
    {
        DriveInfo[] drives;
        try
        {
            drives = DriveInfo.GetDrives();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            yield break;
        }

        foreach (var drive in drives)
        {
            string? format;
            try
            {
                if (drive.DriveType != DriveType.Fixed || !drive.IsReady)
                {
                    continue;
                }

                format = drive.DriveFormat;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }

            // macOS lists its sealed system snapshot and firmware volumes too; the data volume is what fills up.
            if (OperatingSystem.IsMacOS() && drive.Name.StartsWith("/System/Volumes/", StringComparison.Ordinal)
                && drive.Name != "/System/Volumes/Data")
            {
                continue;
            }

            yield return (drive.Name, format);
        }
    }

    private static NetworkTotals? NetworkTotals()
    {
        try
        {
            long rx = 0, tx = 0;
            foreach (var nic in NetworkInterface.GetAllNetworkInterfaces())
            {
                if (nic.NetworkInterfaceType == NetworkInterfaceType.Loopback)
                {
                    continue;
                }

                var stats = nic.GetIPStatistics();
                rx += stats.BytesReceived;
                tx += stats.BytesSent;
            }

            return new NetworkTotals { RxBytes = rx, TxBytes = tx };
        }
        catch (Exception ex) when (ex is NetworkInformationException or PlatformNotSupportedException)
        {
            return null;
        }
    }

    // ------------------------------------------------------------------ Unix (macOS)

    [DllImport("libc", EntryPoint = "getloadavg")]
    private static extern int GetLoadAvg([Out] double[] loadavg, int nelem);

    [DllImport("libc", EntryPoint = "sysctlbyname")]
    private static extern int SysctlByName(byte[] name, ref long oldp, ref nint oldlenp, nint newp, nint newlen);

    private static (double, double, double)? LoadAverages()
    {
        try
        {
            var values = new double[3];
            return GetLoadAvg(values, 3) == 3 ? (Math.Round(values[0], 2), Math.Round(values[1], 2), Math.Round(values[2], 2)) : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    private static long? SysctlInt64(string name)
    {
        try
        {
            var value = 0L;
            nint size = sizeof(long);
            var bytes = Encoding.ASCII.GetBytes(name + "\0");
            return SysctlByName(bytes, ref value, ref size, 0, 0) == 0 ? value : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    // ------------------------------------------------------------------ Windows

    [StructLayout(LayoutKind.Sequential)]
    private struct MemoryStatusEx
    {
        public uint Length;
        public uint MemoryLoad;
        public ulong TotalPhys;
        public ulong AvailPhys;
        public ulong TotalPageFile;
        public ulong AvailPageFile;
        public ulong TotalVirtual;
        public ulong AvailVirtual;
        public ulong AvailExtendedVirtual;
    }

    [DllImport("kernel32.dll", EntryPoint = "GlobalMemoryStatusEx")]
    private static extern int GlobalMemoryStatusEx(ref MemoryStatusEx buffer);

    // FILETIME is two 32-bit halves, little-endian: the same bytes as one 64-bit count of 100 ns ticks.
    [DllImport("kernel32.dll", EntryPoint = "GetSystemTimes")]
    private static extern int GetSystemTimes(out long idle, out long kernel, out long user);

    private static (long Total, long Available)? WindowsMemory()
    {
        try
        {
            var status = new MemoryStatusEx { Length = (uint)Marshal.SizeOf<MemoryStatusEx>() };
            return GlobalMemoryStatusEx(ref status) != 0 ? ((long)status.TotalPhys, (long)status.AvailPhys) : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    private static CpuTimes? WindowsCpuTimes()
    {
        try
        {
            // Kernel time includes idle time.
            return GetSystemTimes(out var idle, out var kernel, out var user) != 0 ? new CpuTimes((ulong)(kernel + user), (ulong)idle) : null;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }
}
