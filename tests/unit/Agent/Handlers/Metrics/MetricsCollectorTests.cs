using System.Text.Json;
using EtPhoneHome.Agent;
using EtPhoneHome.Agent.Metrics;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

public sealed class ProcParserTests
{
    [Fact]
    public void CpuPercent_FromTwoStatSamples_CountsIowaitAsIdle()
    {
        var first = ProcParser.ParseCpuTimes(ProcSamples.Stat1)!.Value;
        var second = ProcParser.ParseCpuTimes(ProcSamples.Stat2)!.Value;

        Assert.Equal(new CpuTimes(1000, 800), first);
        Assert.Equal(new CpuTimes(1500, 1150), second);
        Assert.Equal(30.0, ProcParser.CpuPercent(first, second));
    }

    [Fact]
    public void CpuPercent_WithoutElapsedTime_IsNull_AndMalformedStatIsNull()
    {
        var same = ProcParser.ParseCpuTimes(ProcSamples.Stat1)!.Value;
        Assert.Null(ProcParser.CpuPercent(same, same));
        Assert.Null(ProcParser.ParseCpuTimes("cpu  1 2 x 4 5\n"));
        Assert.Null(ProcParser.ParseCpuTimes("intr 1 2 3\n"));
    }

    [Fact]
    public void MemInfo_ConvertsKilobytes_AndPrefersMemAvailable()
    {
        var mem = ProcParser.ParseMemInfo(ProcSamples.MemInfo);
        Assert.Equal(16000000L * 1024, mem["MemTotal"]);
        Assert.Equal(4000000L * 1024, ProcParser.MemoryAvailable(mem));
        Assert.Equal(0, mem["HugePages_Total"]);
    }

    [Fact]
    public void MemInfo_OnOldKernels_EstimatesAvailableFromFreeBuffersAndCache()
    {
        var mem = ProcParser.ParseMemInfo("MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n");
        Assert.Equal(400L * 1024, ProcParser.MemoryAvailable(mem));
        Assert.Null(ProcParser.MemoryAvailable(ProcParser.ParseMemInfo("MemTotal: 1000 kB\n")));
    }

    [Fact]
    public void LoadAvg_And_Uptime_Parse_AndRejectGarbage()
    {
        Assert.Equal((0.52, 0.58, 0.59), ProcParser.ParseLoadAvg(ProcSamples.LoadAvg));
        Assert.Equal(86461, ProcParser.ParseUptime(ProcSamples.Uptime));
        Assert.Null(ProcParser.ParseLoadAvg("0.5 zero"));
        Assert.Null(ProcParser.ParseUptime(""));
    }

    [Fact]
    public void Mounts_KeepRealLocalFilesystems_RootOverlay_AndEachDeviceOnce()
    {
        var real = ProcParser.RealFilesystems(ProcParser.ParseMounts(ProcSamples.Mounts));

        // Pseudo, memory-backed, network, image and FUSE mounts are gone; /dev/sda1's bind mounts collapse to /boot.
        Assert.Equal(["/", "/boot", "/mnt/backup disk"], real.Select(m => m.MountPoint));
        Assert.Equal(["overlay", "ext4", "xfs"], real.Select(m => m.FsType));
    }

    [Fact]
    public void Mounts_AMountPointMountedOver_KeepsTheLastEntry()
    {
        var real = ProcParser.RealFilesystems(ProcParser.ParseMounts("/dev/sda2 /data ext4 rw 0 0\ntmpfs /data tmpfs rw 0 0\n/dev/sda3 /srv ext4 rw 0 0\n"));
        Assert.Equal(["/srv"], real.Select(m => m.MountPoint));
    }

    [Fact]
    public void NetDev_SumsEveryInterfaceButLoopback()
    {
        Assert.Equal((1500000L, 375000L), ProcParser.ParseNetDev(ProcSamples.NetDev));
        Assert.Null(ProcParser.ParseNetDev("Inter-| Receive\n face |bytes\n"));
    }

    [Theory]
    [InlineData(100, 100, 100, 0)]   // empty
    [InlineData(100, 0, 0, 100)]     // full
    [InlineData(100, 20, 15, 84.2)]  // 80 used of 95 usable: the reserved blocks count as used space, like df
    [InlineData(0, 0, 0, 0)]
    public void DiskPercent_MatchesDf(long total, long free, long available, double expected)
        => Assert.Equal(expected, ProcParser.DiskPercent(total, free, available));
}

public sealed class MetricsCollectorTests
{
    private static DiskSpace? FakeDisk(string mount) => mount switch
    {
        "/" => new DiskSpace(1000, 400, 350),              // 600 / 950 = 63.2 %
        "/boot" => new DiskSpace(100, 5, 5),               // 95 %
        "/mnt/backup disk" => null,                        // unreadable: left out
        _ => throw new InvalidOperationException($"unexpected mount {mount}"),
    };

    [Fact]
    public async Task FullForm_FromRecordedProcFiles()
    {
        using var proc = new ProcSamples();
        var delays = 0;
        var collector = new MetricsCollector(proc.Root, FakeDisk, (_, _) =>
        {
            delays++;
            proc.Write("stat", ProcSamples.Stat2);
            return Task.CompletedTask;
        }, linux: true);

        var m = await collector.CollectAsync(summary: false, CancellationToken.None);

        Assert.Equal(1, delays);
        Assert.Equal(30.0, m.CpuPercent);
        Assert.Equal((0.52, 0.58, 0.59), (m.Load1, m.Load5, m.Load15));
        Assert.Equal(16000000L * 1024, m.MemoryTotalBytes);
        Assert.Equal(4000000L * 1024, m.MemoryAvailableBytes);
        Assert.Equal(75.0, m.MemoryPercent);
        Assert.Equal((2000000L * 1024, 1500000L * 1024, 25.0), (m.SwapTotalBytes, m.SwapFreeBytes, m.SwapPercent));
        Assert.Equal(["/", "/boot"], m.Disks!.Select(d => d.Mount));
        Assert.Equal([63.2, 95.0], m.Disks!.Select(d => d.Percent));
        Assert.Equal(350, m.Disks![0].FreeBytes);
        Assert.Equal(95.0, m.DiskMaxPercent);
        Assert.Equal(86461, m.UptimeS);
        Assert.Equal(3, m.ProcessCount);
        Assert.Equal(1500000, m.Network!.RxBytes);
        Assert.Equal(375000, m.Network.TxBytes);
        Assert.False(string.IsNullOrEmpty(m.Hostname));
        Assert.NotNull(m.CollectedAt);
    }

    [Fact]
    public async Task SummaryForm_CarriesExactlyTheFiveSummaryFields()
    {
        using var proc = new ProcSamples();
        var collector = new MetricsCollector(proc.Root, FakeDisk, (_, _) =>
        {
            proc.Write("stat", ProcSamples.Stat2);
            return Task.CompletedTask;
        }, linux: true);

        var m = await collector.CollectAsync(summary: true, CancellationToken.None);
        var json = JsonSerializer.Serialize(m, MetricsJson.Default.MetricsResult);
        var names = JsonDocument.Parse(json).RootElement.EnumerateObject().Select(p => p.Name).Order().ToArray();

        Assert.Equal(["cpu_percent", "disk_max_percent", "load_1", "memory_percent", "uptime_s"], names);
        Assert.Equal(30.0, m.CpuPercent);
        Assert.Equal(95.0, m.DiskMaxPercent);
    }

    [Fact]
    public async Task MissingProcFiles_GiveNullsNotFaults()
    {
        var empty = Directory.CreateTempSubdirectory("eph-proc-empty-").FullName;
        try
        {
            var m = await new MetricsCollector(empty, _ => null, (_, _) => Task.CompletedTask, linux: true).CollectAsync(false, CancellationToken.None);
            Assert.Null(m.CpuPercent);
            Assert.Null(m.MemoryPercent);
            Assert.Null(m.DiskMaxPercent);
            Assert.Empty(m.Disks!);
            Assert.Equal(0, m.ProcessCount);
        }
        finally
        {
            Directory.Delete(empty, recursive: true);
        }
    }

    [Fact]
    public async Task LiveCollector_OnThisMachine_GivesValuesInRange()
    {
        var m = await MetricsCollector.Default.CollectAsync(summary: false, CancellationToken.None);

        Assert.InRange(m.CpuPercent!.Value, 0, 100);
        Assert.InRange(m.MemoryPercent!.Value, 0, 100);
        Assert.InRange(m.MemoryAvailableBytes!.Value, 1, m.MemoryTotalBytes!.Value);
        Assert.NotEmpty(m.Disks!);
        Assert.All(m.Disks!, d => Assert.InRange(d.Percent, 0, 100));
        Assert.Equal(m.Disks!.Max(d => d.Percent), m.DiskMaxPercent);
        Assert.True(m.UptimeS > 0);
        Assert.True(m.ProcessCount > 1);
        Assert.True(m.Load1 >= 0);
        Assert.NotNull(m.Network);
        Assert.Equal(HostIdentity.Platform(), m.Platform);
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("{}", false)]
    [InlineData("{\"summary\":true}", true)]
    [InlineData("{\"summary\":false}", false)]
    [InlineData("{\"summary\":null}", false)]
    public void SummaryParam_IsOptional(string? json, bool expected)
        => Assert.Equal(expected, MetricsRpc.ParseSummary(json is null ? null : JsonDocument.Parse(json).RootElement));

    [Theory]
    [InlineData("{\"summary\":\"yes\"}", "summary must be a boolean")]
    [InlineData("[true]", "params must be an object")]
    public void SummaryParam_OfTheWrongType_IsInvalidParams_NamingTheField(string json, string message)
    {
        var fault = Assert.Throws<RpcFault>(() => MetricsRpc.ParseSummary(JsonDocument.Parse(json).RootElement));
        Assert.Equal(RpcErrorCodes.InvalidParams, fault.Code);
        Assert.Contains(message, fault.Message, StringComparison.Ordinal);
    }
}
