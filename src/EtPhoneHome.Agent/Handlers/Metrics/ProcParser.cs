using System.Globalization;
using System.Text;

namespace EtPhoneHome.Agent.Metrics;

/// <summary>Cumulative CPU time of all CPUs from the first line of /proc/stat, in clock ticks.</summary>
public readonly record struct CpuTimes(ulong Total, ulong Idle);

/// <summary>One line of /proc/mounts.</summary>
public sealed record MountEntry(string Device, string MountPoint, string FsType);

/// <summary>
/// Pure parsers of the Linux /proc text files the metrics come from. They take the file's text, so tests feed
/// recorded samples; malformed input gives null (or nothing), never an exception.
/// </summary>
public static class ProcParser
{
    /// <summary>
    /// Filesystems that are not storage a person fills: kernel pseudo filesystems, memory-backed ones, read-only
    /// images (always 100 %) and network filesystems (statvfs on an unreachable server can block for minutes).
    /// </summary>
    private static readonly HashSet<string> SkippedFsTypes = new(StringComparer.Ordinal)
    {
        "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "pstore", "debugfs",
        "tracefs", "configfs", "fusectl", "mqueue", "hugetlbfs", "bpf", "autofs", "binfmt_misc", "rpc_pipefs",
        "nsfs", "efivarfs", "ramfs", "squashfs", "iso9660", "selinuxfs", "overlay", "aufs", "nfs", "nfs4",
        "cifs", "smb3", "smbfs", "9p", "ceph", "glusterfs", "afs", "sshfs", "fuse.sshfs", "fuse.lxcfs",
        "fuse.gvfsd-fuse", "fuse.portal", "fuse.snapfuse", "zram",
    };

    /// <summary>Reads the aggregate "cpu" line; idle includes iowait, total sums the eight standard fields.</summary>
    public static CpuTimes? ParseCpuTimes(string stat)
    {
        ArgumentNullException.ThrowIfNull(stat);
        foreach (var line in stat.AsSpan().EnumerateLines())
        {
            if (!line.StartsWith("cpu ", StringComparison.Ordinal))
            {
                continue;
            }

            var fields = line.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 5)
            {
                return null;
            }

            ulong total = 0;
            // user nice system idle iowait irq softirq steal; guest time is already counted in user.
            var values = new ulong[8];
            for (var i = 1; i < fields.Length && i <= 8; i++)
            {
                if (!ulong.TryParse(fields[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i - 1]))
                {
                    return null;
                }

                total += values[i - 1];
            }

            return new CpuTimes(total, values[3] + values[4]);
        }

        return null;
    }

    /// <summary>Busy share between two samples (0–100, one decimal); null when no time passed.</summary>
    public static double? CpuPercent(CpuTimes first, CpuTimes second)
    {
        if (second.Total <= first.Total)
        {
            return null;
        }

        var total = (double)(second.Total - first.Total);
        var idle = second.Idle >= first.Idle ? (double)(second.Idle - first.Idle) : 0;
        return Percent(Math.Max(0, total - idle), total);
    }

    /// <summary>The three load averages of /proc/loadavg.</summary>
    public static (double Load1, double Load5, double Load15)? ParseLoadAvg(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var fields = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length >= 3
            && double.TryParse(fields[0], NumberStyles.Float, CultureInfo.InvariantCulture, out var one)
            && double.TryParse(fields[1], NumberStyles.Float, CultureInfo.InvariantCulture, out var five)
            && double.TryParse(fields[2], NumberStyles.Float, CultureInfo.InvariantCulture, out var fifteen))
        {
            return (one, five, fifteen);
        }

        return null;
    }

    /// <summary>/proc/meminfo as bytes per key ("MemTotal" → bytes); values in kB are converted.</summary>
    public static Dictionary<string, long> ParseMemInfo(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var values = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                continue;
            }

            var key = line[..colon].Trim().ToString();
            var rest = line[(colon + 1)..].Trim();
            var unit = 1L;
            if (rest.EndsWith(" kB", StringComparison.Ordinal))
            {
                unit = 1024;
                rest = rest[..^3].Trim();
            }

            if (long.TryParse(rest, NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                values[key] = value * unit;
            }
        }

        return values;
    }

    /// <summary>Memory that new work can use: MemAvailable, or free + buffers + page cache on kernels before 3.14.</summary>
    public static long? MemoryAvailable(IReadOnlyDictionary<string, long> meminfo)
    {
        ArgumentNullException.ThrowIfNull(meminfo);
        if (meminfo.TryGetValue("MemAvailable", out var available))
        {
            return available;
        }

        if (meminfo.TryGetValue("MemFree", out var free))
        {
            return free + meminfo.GetValueOrDefault("Buffers") + meminfo.GetValueOrDefault("Cached");
        }

        return null;
    }

    /// <summary>Whole seconds of the first number of /proc/uptime.</summary>
    public static long? ParseUptime(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var first = text.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return first is not null && double.TryParse(first, NumberStyles.Float, CultureInfo.InvariantCulture, out var seconds) && seconds >= 0
            ? (long)seconds
            : null;
    }

    /// <summary>All entries of /proc/mounts, with octal escapes (\040 for a space) decoded.</summary>
    public static IReadOnlyList<MountEntry> ParseMounts(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var entries = new List<MountEntry>();
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            var fields = line.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length >= 3)
            {
                entries.Add(new MountEntry(Unescape(fields[0]), Unescape(fields[1]), fields[2]));
            }
        }

        return entries;
    }

    /// <summary>
    /// The mounts worth reporting: real, local filesystems. The root overlay of a container is kept (it is the
    /// container's disk); a device mounted in several places (bind mounts) is reported once, at its shortest path;
    /// a mount point mounted over keeps only its last entry.
    /// </summary>
    public static IReadOnlyList<MountEntry> RealFilesystems(IEnumerable<MountEntry> mounts)
    {
        ArgumentNullException.ThrowIfNull(mounts);
        var byMountPoint = new Dictionary<string, MountEntry>(StringComparer.Ordinal);
        var order = new List<string>();
        foreach (var mount in mounts)
        {
            var isRootOverlay = mount.MountPoint == "/" && mount.FsType is "overlay" or "aufs";
            if (!isRootOverlay && (SkippedFsTypes.Contains(mount.FsType) || (mount.FsType.StartsWith("fuse.", StringComparison.Ordinal) && mount.FsType != "fuse.ntfs-3g")))
            {
                // Later mounts over the same point hide earlier ones.
                if (byMountPoint.Remove(mount.MountPoint))
                {
                    order.Remove(mount.MountPoint);
                }

                continue;
            }

            if (!byMountPoint.ContainsKey(mount.MountPoint))
            {
                order.Add(mount.MountPoint);
            }

            byMountPoint[mount.MountPoint] = mount;
        }

        var byDevice = new Dictionary<string, MountEntry>(StringComparer.Ordinal);
        foreach (var mountPoint in order)
        {
            var mount = byMountPoint[mountPoint];
            if (!byDevice.TryGetValue(mount.Device, out var seen) || mount.MountPoint.Length < seen.MountPoint.Length)
            {
                byDevice[mount.Device] = mount;
            }
        }

        return [.. byDevice.Values.OrderBy(m => m.MountPoint, StringComparer.Ordinal)];
    }

    /// <summary>Received and sent bytes from /proc/net/dev, summed over every interface except lo.</summary>
    public static (long Rx, long Tx)? ParseNetDev(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        long rx = 0, tx = 0;
        var any = false;
        foreach (var line in text.AsSpan().EnumerateLines())
        {
            var colon = line.IndexOf(':');
            if (colon <= 0)
            {
                continue; // the two header lines
            }

            var name = line[..colon].Trim();
            if (name.SequenceEqual("lo"))
            {
                continue;
            }

            var fields = line[(colon + 1)..].ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // 8 receive fields (bytes first), then 8 transmit fields (bytes first).
            if (fields.Length >= 9
                && long.TryParse(fields[0], NumberStyles.None, CultureInfo.InvariantCulture, out var r)
                && long.TryParse(fields[8], NumberStyles.None, CultureInfo.InvariantCulture, out var t))
            {
                rx += r;
                tx += t;
                any = true;
            }
        }

        return any ? (rx, tx) : null;
    }

    /// <summary>part / whole as a percentage with one decimal, clamped to 0–100; null when whole is not positive.</summary>
    public static double? Percent(double part, double whole)
        => whole > 0 ? Math.Round(Math.Clamp(part / whole * 100.0, 0, 100), 1) : null;

    /// <summary>Used share as df reports it: used / (used + available to users).</summary>
    public static double DiskPercent(long total, long free, long available)
    {
        var used = Math.Max(0, total - free);
        var denominator = used + Math.Max(0, available);
        return Percent(used, denominator) ?? 0;
    }

    private static string Unescape(string field)
    {
        if (!field.Contains('\\', StringComparison.Ordinal))
        {
            return field;
        }

        var sb = new StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length
                && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                sb.Append((char)(((field[i + 1] - '0') * 64) + ((field[i + 2] - '0') * 8) + (field[i + 3] - '0')));
                i += 3;
            }
            else
            {
                sb.Append(field[i]);
            }
        }

        return sb.ToString();
    }

    private static bool IsOctal(char c) => c is >= '0' and <= '7';
}
