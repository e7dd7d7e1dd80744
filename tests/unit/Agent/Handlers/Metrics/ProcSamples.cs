namespace EtPhoneHome.Tests.Unit.Health;

/// <summary>Recorded /proc files of a Linux machine (a container on a laptop), written into a temporary root.</summary>
internal sealed class ProcSamples : IDisposable
{
    public const string Stat1 = """
        cpu  100 0 100 700 100 0 0 0 0 0
        cpu0 50 0 50 350 50 0 0 0 0 0
        cpu1 50 0 50 350 50 0 0 0 0 0
        intr 12345 0 0
        ctxt 98765
        btime 1700000000
        processes 4242
        procs_running 2
        """;

    // 500 ticks later: 150 busy (100 user, 50 system), 350 idle (300 idle, 50 iowait) → 30 %.
    public const string Stat2 = """
        cpu  200 0 150 1000 150 0 0 0 0 0
        cpu0 100 0 75 500 75 0 0 0 0 0
        cpu1 100 0 75 500 75 0 0 0 0 0
        intr 12399 0 0
        """;

    public const string LoadAvg = "0.52 0.58 0.59 2/811 123456\n";

    public const string MemInfo = """
        MemTotal:       16000000 kB
        MemFree:         1000000 kB
        MemAvailable:    4000000 kB
        Buffers:          500000 kB
        Cached:          3000000 kB
        SwapCached:            0 kB
        SwapTotal:       2000000 kB
        SwapFree:        1500000 kB
        HugePages_Total:       0
        """;

    public const string Uptime = "86461.37 170000.12\n";

    public const string Mounts = """
        overlay / overlay rw,relatime,lowerdir=/var/lib/docker/overlay2/l/A:/var/lib/docker/overlay2/l/B 0 0
        proc /proc proc rw,nosuid,nodev,noexec,relatime 0 0
        tmpfs /dev tmpfs rw,nosuid,size=65536k,mode=755 0 0
        devpts /dev/pts devpts rw,nosuid,noexec,relatime 0 0
        sysfs /sys sysfs ro,nosuid,nodev,noexec,relatime 0 0
        cgroup /sys/fs/cgroup cgroup2 ro,nosuid,nodev,noexec,relatime 0 0
        /dev/sda1 /etc/hosts ext4 rw,relatime 0 0
        /dev/sda1 /etc/resolv.conf ext4 rw,relatime 0 0
        /dev/sda1 /boot ext4 rw,relatime 0 0
        /dev/sdb1 /mnt/backup\040disk xfs rw,relatime 0 0
        server:/export /mnt/nfs nfs4 rw,relatime 0 0
        /dev/loop3 /snap/core/123 squashfs ro,nodev,relatime 0 0
        lxcfs /proc/cpuinfo fuse.lxcfs rw,nosuid,nodev,relatime 0 0
        shm /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime,size=65536k 0 0
        """;

    public const string NetDev = """
        Inter-|   Receive                                                |  Transmit
         face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
            lo: 9999999   1000    0    0    0     0          0         0  9999999    1000    0    0    0     0       0          0
          eth0: 1000000    900    0    0    0     0          0         0   250000     800    0    0    0     0       0          0
         wlan0:  500000    400    0    0    0     0          0         0   125000     300    0    0    0     0       0          0
        """;

    public ProcSamples()
    {
        Root = Directory.CreateTempSubdirectory("eph-proc-").FullName;
        Write("stat", Stat1);
        Write("loadavg", LoadAvg);
        Write("meminfo", MemInfo);
        Write("uptime", Uptime);
        Write("mounts", Mounts);
        Directory.CreateDirectory(Path.Combine(Root, "net"));
        Write(Path.Combine("net", "dev"), NetDev);
        foreach (var pid in new[] { "1", "42", "4242" })
        {
            Directory.CreateDirectory(Path.Combine(Root, pid));
        }

        Directory.CreateDirectory(Path.Combine(Root, "sys"));
        Directory.CreateDirectory(Path.Combine(Root, "self1"));
    }

    public string Root { get; }

    public void Write(string relative, string text) => File.WriteAllText(Path.Combine(Root, relative), text);

    public void Dispose() => Directory.Delete(Root, recursive: true);
}
