using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

/// <summary>Answers per display name: metrics, a fault, or never.</summary>
internal sealed class ScriptedMetrics : IMetricsSource
{
    public Dictionary<string, MetricsResult> Answers { get; } = new(StringComparer.OrdinalIgnoreCase);
    public Dictionary<string, Exception> Faults { get; } = new(StringComparer.OrdinalIgnoreCase);
    public HashSet<string> Silent { get; } = new(StringComparer.OrdinalIgnoreCase);
    public List<(string Name, bool Summary)> Asked { get; } = [];
    private int _inFlight;

    public int MaxInFlight { get; private set; }

    public async Task<MetricsResult> GetAsync(FleetTarget target, bool summary, CancellationToken ct)
    {
        lock (Asked)
        {
            Asked.Add((target.DisplayName, summary));
            MaxInFlight = Math.Max(MaxInFlight, ++_inFlight);
        }

        try
        {
            await Task.Delay(10, ct);
            if (Silent.Contains(target.DisplayName))
            {
                await Task.Delay(Timeout.Infinite, ct);
            }

            if (Faults.TryGetValue(target.DisplayName, out var fault))
            {
                throw fault;
            }

            return Answers.TryGetValue(target.DisplayName, out var answer) ? answer : new MetricsResult { CpuPercent = 1, MemoryPercent = 1, DiskMaxPercent = 1 };
        }
        finally
        {
            lock (Asked)
            {
                _inFlight--;
            }
        }
    }

    public static MetricsResult Summary(double cpu, double memory, double disk) =>
        new() { CpuPercent = cpu, MemoryPercent = memory, DiskMaxPercent = disk, Load1 = 0.5, UptimeS = 3600 };
}

public sealed class FleetMetricsTests
{
    private static async Task<List<ClientMetricsResult>> Collect(ScriptedMetrics source, IReadOnlyList<FleetTarget> targets, FleetMetricsOptions? options = null, CancellationToken ct = default)
    {
        var results = new List<ClientMetricsResult>();
        await foreach (var r in new FleetMetrics(source).CollectAsync(targets, summary: true, options, ct))
        {
            results.Add(r);
        }

        return results;
    }

    [Fact]
    public async Task EveryTarget_GetsExactlyOneResult_WithTheRightStatus()
    {
        var source = new ScriptedMetrics();
        source.Answers["a"] = ScriptedMetrics.Summary(10, 20, 30);
        source.Faults["b"] = new EtPhoneHome.Core.Tunnel.RpcException(RpcErrorCodes.Internal, "internal error");
        source.Silent.Add("c");
        var denied = FakeFleet.Online("d") with { DeniedReason = "key revoked: the client's key is not approved" };
        var targets = new[] { FakeFleet.Online("a"), FakeFleet.Online("b"), FakeFleet.Online("c"), denied, FakeFleet.Offline("e") };

        var results = (await Collect(source, targets, new FleetMetricsOptions { Timeout = TimeSpan.FromMilliseconds(300) })).ToDictionary(r => r.DisplayName);

        Assert.Equal(5, results.Count);
        Assert.Equal(MetricsStatus.Succeeded, results["a"].Status);
        Assert.Equal(10, results["a"].Metrics!.CpuPercent);
        Assert.Equal((MetricsStatus.Unreachable, "INTERNAL: internal error"), (results["b"].Status, results["b"].Error));
        Assert.Equal(MetricsStatus.TimedOut, results["c"].Status);
        Assert.Equal("no answer within 0.3 s", results["c"].Error);
        Assert.Equal(MetricsStatus.Denied, results["d"].Status);
        Assert.Equal(MetricsStatus.Offline, results["e"].Status);
        Assert.DoesNotContain(source.Asked, a => a.Name is "d" or "e");
        Assert.All(source.Asked, a => Assert.True(a.Summary));
    }

    [Fact]
    public async Task Throttle_BoundsTheRequestsInFlight()
    {
        var source = new ScriptedMetrics();
        var targets = Enumerable.Range(0, 40).Select(i => FakeFleet.Online($"n{i}")).ToList();

        var results = await Collect(source, targets, new FleetMetricsOptions { ThrottleLimit = 4 });

        Assert.Equal(40, results.Count);
        Assert.InRange(source.MaxInFlight, 1, 4);
    }

    [Fact]
    public async Task Cancellation_StillReportsEveryTarget()
    {
        var source = new ScriptedMetrics();
        var targets = Enumerable.Range(0, 10).Select(i => FakeFleet.Online($"n{i}")).ToList();
        foreach (var t in targets)
        {
            source.Silent.Add(t.DisplayName);
        }

        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        var results = await Collect(source, targets, new FleetMetricsOptions { ThrottleLimit = 2 }, cancel.Token);

        Assert.Equal(10, results.Count);
        Assert.Equal(10, results.Select(r => r.Uuid).Distinct().Count());
        Assert.All(results, r => Assert.Equal(MetricsStatus.Cancelled, r.Status));
    }
}

public sealed class FleetStatusTests
{
    private static readonly DateTimeOffset Now = new(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);

    [Fact]
    public void Aggregate_CountsTheRegistry_AndListsClientsStrictlyOverEachThreshold()
    {
        var registry = new FakeFleet();
        var hot = registry.AddClient("u-hot", "hot", online: true, port: 1);
        var full = registry.AddClient("u-full", "full", online: true, port: 2);
        var calm = registry.AddClient("u-calm", "calm", online: true, port: 3);
        var edge = registry.AddClient("u-edge", "edge", online: true, port: 4);
        var silent = registry.AddClient("u-silent", "silent", online: true, port: 5);
        registry.AddClient("u-off", "off", online: false);
        registry.Clients.Add(registry.Clients[^1] with { Uuid = "u-quarantined", DisplayName = "quarantined", KeyMismatch = true });
        var pending = new List<KeyRecord>
        {
            new() { Fingerprint = "SHA256:p1", Status = KeyStatus.Pending, FirstSeen = Now, LastSeen = Now },
            new() { Fingerprint = "SHA256:p2", Status = KeyStatus.Pending, FirstSeen = Now, LastSeen = Now, IsMismatch = true },
        };
        var health = new List<ClientHealth>
        {
            new() { Uuid = "u-off", ConsecutiveFailures = 3, LastError = "no answer through the tunnel within 10 s", UnhealthySince = Now },
            new() { Uuid = "u-calm", ConsecutiveFailures = 1, LastError = "blip" },
            new() { Uuid = "u-removed", UnhealthySince = Now },
        };
        var metrics = new List<ClientMetricsResult>
        {
            Ok(hot, ScriptedMetrics.Summary(95.5, 40, 50)),
            Ok(full, ScriptedMetrics.Summary(10, 90, 99.1)),
            Ok(calm, ScriptedMetrics.Summary(5, 10, 20)),
            Ok(edge, ScriptedMetrics.Summary(80, 85, 85)), // equal to the thresholds: not over
            new() { Uuid = silent.Uuid, DisplayName = silent.DisplayName, Status = MetricsStatus.TimedOut, Error = "no answer within 15 s" },
        };

        var status = FleetStatus.Aggregate(registry.Clients, pending, health, metrics, new FleetThresholds(), Now);

        Assert.Equal((7, 5, 2, 1, 1), (status.Total, status.Online, status.Offline, status.PendingKeys, status.KeyMismatches));
        var unhealthy = Assert.Single(status.Unhealthy);
        Assert.Equal(("off", "no answer through the tunnel within 10 s"), (unhealthy.DisplayName, unhealthy.Detail));
        Assert.Equal([("hot", 95.5)], status.OverCpu.Select(e => (e.DisplayName, e.Value!.Value)));
        Assert.Equal([("full", 90.0)], status.OverMemory.Select(e => (e.DisplayName, e.Value!.Value)));
        Assert.Equal([("full", 99.1)], status.OverDisk.Select(e => (e.DisplayName, e.Value!.Value)));
        var unreachable = Assert.Single(status.Unreachable);
        Assert.Equal(("silent", "TimedOut: no answer within 15 s"), (unreachable.DisplayName, unreachable.Detail));
        Assert.Equal(Now, status.CollectedAt);
    }

    [Fact]
    public void Aggregate_HonoursCustomThresholds_HighestFirst()
    {
        var registry = new FakeFleet();
        var a = registry.AddClient("u-a", "a", online: true, port: 1);
        var b = registry.AddClient("u-b", "b", online: true, port: 2);
        var metrics = new List<ClientMetricsResult> { Ok(a, ScriptedMetrics.Summary(55, 0, 0)), Ok(b, ScriptedMetrics.Summary(65, 0, 0)) };

        var status = FleetStatus.Aggregate(registry.Clients, [], [], metrics, new FleetThresholds { CpuPercent = 50 }, Now);

        Assert.Equal(["b", "a"], status.OverCpu.Select(e => e.DisplayName));
    }

    [Theory]
    [InlineData(-1, 85, 85, "cpu_threshold")]
    [InlineData(80, 101, 85, "memory_threshold")]
    [InlineData(80, 85, double.NaN, "disk_threshold")]
    public void Thresholds_OutsidePercentRange_AreRefusedNamingTheField(double cpu, double memory, double disk, string field)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new FleetThresholds { CpuPercent = cpu, MemoryPercent = memory, DiskPercent = disk }.Validate());
        Assert.Equal(field, ex.ParamName);
        Assert.Contains("between 0 and 100", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Compute_AsksOnlyTheOnlineClients_ForTheSummary_AndListsTheSilentOnes()
    {
        var registry = new FakeFleet();
        registry.AddClient("u-a", "a", online: true, port: 1);
        registry.AddClient("u-b", "b", online: true, port: 2);
        registry.AddClient("u-c", "c", online: false);
        var source = new ScriptedMetrics();
        source.Answers["a"] = ScriptedMetrics.Summary(99, 10, 10);
        source.Silent.Add("b");

        var status = await FleetStatus.ComputeAsync(registry.Stores(), new FleetMetrics(source), options: new FleetMetricsOptions { Timeout = TimeSpan.FromMilliseconds(200) });

        Assert.Equal(["a", "b"], source.Asked.Select(x => x.Name).Order());
        Assert.All(source.Asked, x => Assert.True(x.Summary));
        Assert.Equal("a", Assert.Single(status.OverCpu).DisplayName);
        Assert.Equal("b", Assert.Single(status.Unreachable).DisplayName);
        Assert.Equal((3, 2, 1), (status.Total, status.Online, status.Offline));
    }

    private static ClientMetricsResult Ok(ClientRecord client, MetricsResult metrics) =>
        new() { Uuid = client.Uuid, DisplayName = client.DisplayName, Status = MetricsStatus.Succeeded, Metrics = metrics };
}
