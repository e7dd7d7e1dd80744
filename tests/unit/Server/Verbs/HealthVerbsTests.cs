using EtPhoneHome.Hub;
using EtPhoneHome.Core.Operations;
using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Verbs;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

public sealed class HealthVerbsTests : IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;
    private Func<OperationGuard, IMetricsSource> _createSource = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli)) { MetricsSource = g => _createSource(g) };

    private readonly FakeFleet _registry = new();
    private readonly ScriptedMetrics _source = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public HealthVerbsTests()
    {
        _openRegistry = _ => _registry.Stores();
        _createSource = _ => _source;
        _registry.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _registry.AddClient("3f2a9c1e-0002", "web-02", false, 0, "web");
        _registry.AddClient("9b1c0000-0003", "db-01", true, 40003, "db");
        _source.Answers["web-01"] = new EtPhoneHome.Protocol.MetricsResult
        {
            CpuPercent = 91.5,
            Load1 = 2.5,
            MemoryPercent = 40,
            DiskMaxPercent = 88,
            UptimeS = 7200,
            Disks = [new() { Mount = "/", FsType = "ext4", TotalBytes = 100, FreeBytes = 12, Percent = 88 }],
            Network = new() { RxBytes = 5, TxBytes = 6 },
        };
        _source.Answers["db-01"] = ScriptedMetrics.Summary(5, 10, 20);
    }

    public void Dispose()
    {
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot(Services).Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    private List<JsonElement> JsonLines() => _out.ToString()
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public async Task Metrics_Json_OneSnakeCaseLinePerClient_WithTheRpcFieldNames()
    {
        var code = await RunAsync("metrics", "--tag", "web", "--json");

        Assert.Equal(1, code); // web-02 is offline
        var lines = JsonLines().ToDictionary(l => l.GetProperty("display_name").GetString()!);
        Assert.Equal(["web-01", "web-02"], lines.Keys.Order());
        var web = lines["web-01"];
        Assert.Equal("succeeded", web.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, web.GetProperty("error").ValueKind);
        Assert.Equal(91.5, web.GetProperty("cpu_percent").GetDouble());
        Assert.Equal(2.5, web.GetProperty("load_1").GetDouble());
        Assert.Equal(7200, web.GetProperty("uptime_s").GetInt64());
        Assert.Equal("/", web.GetProperty("disks")[0].GetProperty("mount").GetString());
        Assert.Equal(12, web.GetProperty("disks")[0].GetProperty("free_bytes").GetInt64());
        Assert.Equal(5, web.GetProperty("network").GetProperty("rx_bytes").GetInt64());
        Assert.Equal("3f2a9c1e-0001", web.GetProperty("uuid").GetString());

        var offline = lines["web-02"];
        Assert.Equal("offline", offline.GetProperty("status").GetString());
        Assert.Equal("the client is offline", offline.GetProperty("error").GetString());
        Assert.False(offline.TryGetProperty("cpu_percent", out _));
        Assert.Contains("2 client(s): 1 answered, 1 did not", _err.ToString(), StringComparison.Ordinal);
        Assert.All(_source.Asked, a => Assert.False(a.Summary));
    }

    [Fact]
    public async Task Metrics_Summary_AsksForTheSummaryForm_AndPrintsATable()
    {
        var code = await RunAsync("metrics", "--client", "db-01", "--summary");

        Assert.Equal(0, code);
        Assert.Equal([("db-01", true)], _source.Asked);
        var text = _out.ToString();
        Assert.Contains("CPU%", text, StringComparison.Ordinal);
        Assert.Contains("db-01", text, StringComparison.Ordinal);
        Assert.Contains("01:00:00", text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Metrics_UnknownClient_IsAUsageError_AndAsksNobody()
    {
        Assert.Equal(2, await RunAsync("metrics", "--client", "nope", "--client", "web-01"));
        Assert.Contains("no client named 'nope'", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_source.Asked);
    }

    [Fact]
    public async Task Metrics_WithoutOrWithTwoSelections_IsRefused()
    {
        Assert.NotEqual(0, await RunAsync("metrics"));
        Assert.NotEqual(0, await RunAsync("metrics", "--all", "--tag", "web"));
        Assert.Contains("exactly one of --all, --client or --tag", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_source.Asked);
    }

    [Fact]
    public async Task Status_Json_IsOneObject_WithCountsListsAndThresholds()
    {
        _registry.Health.Add(new ClientHealth { Uuid = "3f2a9c1e-0002", ConsecutiveFailures = 3, LastError = "no answer", UnhealthySince = DateTimeOffset.UnixEpoch });
        _registry.Keys.Add(new KeyRecord { Fingerprint = "SHA256:new", Status = KeyStatus.Pending, FirstSeen = DateTimeOffset.UnixEpoch, LastSeen = DateTimeOffset.UnixEpoch });

        var code = await RunAsync("status", "--json", "--disk-threshold", "80");

        Assert.Equal(0, code);
        var status = Assert.Single(JsonLines());
        Assert.Equal(
            ["total", "online", "offline", "pending_keys", "key_mismatches", "unhealthy", "over_cpu", "over_memory", "over_disk", "unreachable", "thresholds", "collected_at"],
            status.EnumerateObject().Select(p => p.Name));
        Assert.Equal((3, 2, 1, 1, 0), (status.GetProperty("total").GetInt32(), status.GetProperty("online").GetInt32(), status.GetProperty("offline").GetInt32(),
            status.GetProperty("pending_keys").GetInt32(), status.GetProperty("key_mismatches").GetInt32()));
        var hot = Assert.Single(status.GetProperty("over_cpu").EnumerateArray());
        Assert.Equal(["uuid", "display_name", "value", "detail"], hot.EnumerateObject().Select(p => p.Name));
        Assert.Equal(("web-01", 91.5), (hot.GetProperty("display_name").GetString(), hot.GetProperty("value").GetDouble()));
        Assert.Equal("web-01", Assert.Single(status.GetProperty("over_disk").EnumerateArray()).GetProperty("display_name").GetString());
        Assert.Equal("no answer", Assert.Single(status.GetProperty("unhealthy").EnumerateArray()).GetProperty("detail").GetString());
        Assert.Equal(80, status.GetProperty("thresholds").GetProperty("disk_percent").GetDouble());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", status.GetProperty("collected_at").GetString());
    }

    [Fact]
    public async Task Status_Text_NamesEverySection()
    {
        Assert.Equal(0, await RunAsync("status"));
        var text = _out.ToString();
        foreach (var section in new[] { "clients        3 (2 online, 1 offline)", "unhealthy: 0", "cpu > 80%: 1", "memory > 85%: 0", "disk > 85%: 1", "unreachable: 0" })
        {
            Assert.Contains(section, text, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("--cpu-threshold", "101")]
    [InlineData("--memory-threshold", "-5")]
    public async Task Status_ThresholdOutOfRange_IsRefusedNamingTheOption(string option, string value)
    {
        Assert.NotEqual(0, await RunAsync("status", option, value));
        Assert.Contains($"{option} must be a percentage between 0 and 100", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_source.Asked);
    }

    [Fact]
    public void Run_HasTheHealthOptions_WithTheDefaults()
    {
        var run = Program.BuildRoot().Subcommands.Single(c => c.Name == "run");
        Assert.Contains(run.Options, o => o.Name == "--health-interval");
        Assert.Contains(run.Options, o => o.Name == "--health-timeout");
        Assert.Contains(run.Options, o => o.Name == "--health-threshold");

        var parsed = Program.BuildRoot().Parse(["run"]);
        Assert.Equal(30.0, parsed.GetValue<double>("--health-interval"));
        Assert.Equal(10.0, parsed.GetValue<double>("--health-timeout"));
        Assert.Equal(3, parsed.GetValue<int>("--health-threshold"));
    }

    [Theory]
    [InlineData(0, 10, 3, "--health-interval")]
    [InlineData(30, 601, 3, "--health-timeout")]
    [InlineData(30, 10, 0, "--health-threshold")]
    public void Run_HealthSettingsOutOfRange_NameTheOption(double interval, double timeout, int threshold, string option)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => HubVerbs.HealthSettings(interval, timeout, threshold));
        Assert.StartsWith($"{option} must be between", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_HealthSettings_BecomeTheMonitorOptions()
    {
        var options = HubVerbs.HealthSettings(0.5, 1.5, 2);
        Assert.Equal((TimeSpan.FromMilliseconds(500), TimeSpan.FromMilliseconds(1500), 2), (options.Interval, options.Timeout, options.Threshold));
    }
}
