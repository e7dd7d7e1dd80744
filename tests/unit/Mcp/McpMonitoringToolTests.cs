using System.Net.Sockets;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Health;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>get_rate_limit_stats and get_client_metrics through the SDK client, against a real registry and a real in-process agent.</summary>
public sealed class McpMonitoringToolTests : IAsyncLifetime
{
    private readonly TempData _data = new();
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly RpcServer _agent = new();
    private SqliteRegistry _registry = null!;
    private ClientRecord _client = null!;

    public Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        _client = Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01"));
        _agent.Start();
        _agent.SetSession(_secret, _client.Uuid, null);
        var session = _registry.OpenSession(_client.Uuid, Keys.A, "gw", _agent.Port, _secret, Environment.ProcessId, Environment.ProcessId);
        _registry.MarkSessionOnline(session.Id);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _agent.DisposeAsync();
        _registry.Dispose();
        _data.Dispose();
    }

    [Fact]
    public async Task GetRateLimitStats_HasTheReferenceShape_WithTheClientsLimitsCountsAndMode()
    {
        _registry.UpdateClient(_client.Uuid, new ClientUpdate { RateLimitRpm = 30 }, "test");
        var guard = new OperationGuard(_registry, new OperatorContext("alice", Surfaces.Cli));
        for (var i = 0; i < 2; i++)
        {
            using var lease = guard.Begin(_client.Uuid, "run_command", "uptime");
            lease.Complete(OperationStatus.Succeeded);
        }

        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var result = (await client.CallAsync("get_rate_limit_stats", new { uuid = "web-01" })).Ok();

        Assert.Equal(_client.Uuid, result.GetProperty("uuid").GetString());
        Assert.Equal("warn", result.GetProperty("mode").GetString());
        var stats = result.GetProperty("stats");
        Assert.Equal(["concurrent_limit", "concurrent_warnings", "current_concurrent", "requests_per_minute", "rpm_limit", "rpm_warnings"],
            stats.EnumerateObject().Select(p => p.Name).Order());
        Assert.Equal((2, 0, 30, RateLimitPolicy.DefaultConcurrent, 0L, 0L),
            (stats.GetProperty("requests_per_minute").GetInt32(), stats.GetProperty("current_concurrent").GetInt32(),
             stats.GetProperty("rpm_limit").GetInt32(), stats.GetProperty("concurrent_limit").GetInt32(),
             stats.GetProperty("rpm_warnings").GetInt64(), stats.GetProperty("concurrent_warnings").GetInt64()));
    }

    [Fact]
    public async Task GetRateLimitStats_WithoutUuid_UsesTheSessionsSelection_AndNeverGuesses()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        (await client.CallAsync("get_rate_limit_stats")).Error("NO_CLIENT_SELECTED");
        (await client.CallAsync("select_client", new { client_id = "web-01" })).Ok();
        var result = (await client.CallAsync("get_rate_limit_stats")).Ok();

        Assert.Equal(_client.Uuid, result.GetProperty("uuid").GetString());
        (await client.CallAsync("get_rate_limit_stats", new { uuid = "nope" })).Error("CLIENT_NOT_FOUND");
    }

    [Fact]
    public async Task GetClientMetrics_AsksTheAgentThroughItsTunnel_AndRecordsItWithTheMcpSurface()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var summary = (await client.CallAsync("get_client_metrics", new { client_id = "web-01", summary = true })).Ok();
        var full = (await client.CallAsync("get_client_metrics", new { client_id = _client.Uuid })).Ok();

        var figures = summary.GetProperty("metrics");
        Assert.InRange(figures.GetProperty("cpu_percent").GetDouble(), 0, 100);
        Assert.True(figures.GetProperty("uptime_s").GetInt64() > 0);
        Assert.False(figures.TryGetProperty("disks", out _), "the summary form has no disk list");
        Assert.NotEqual(0, full.GetProperty("metrics").GetProperty("disks").GetArrayLength());
        Assert.Equal(_client.Uuid, full.GetProperty("client").GetProperty("uuid").GetString());
        var recorded = _registry.QueryHistory(new HistoryQuery { Operations = ["get_client_metrics"] });
        Assert.Equal(2, recorded.Count);
        Assert.All(recorded, e => Assert.Equal((Surfaces.Mcp, "succeeded", _client.Uuid), (e.Surface, e.Status, e.Uuid)));
    }

    [Fact]
    public async Task GetClientMetrics_OfflineClient_IsClientOffline_WithoutAskingAnything()
    {
        var registry = new FakeFleet();
        registry.AddClient("33333333-cccc", "db-01", false, 0, "db");
        var source = new ScriptedMetrics();
        await using var harness = new McpHarness(registry, new FakeTransport(), metrics: source);
        var client = await harness.ConnectAsync();

        (await client.CallAsync("get_client_metrics", new { client_id = "db-01" })).Error("CLIENT_OFFLINE");
        (await client.CallAsync("get_client_metrics")).Error("NO_CLIENT_SELECTED");

        Assert.Empty(source.Asked);
    }

    [Fact]
    public async Task GetClientMetrics_BrokenTunnel_IsClientUnreachable_WithoutTheExceptionText()
    {
        var registry = new FakeFleet();
        registry.AddClient("11111111-aaaa", "web-01", true, 40001, "web");
        var source = new ScriptedMetrics();
        source.Faults["web-01"] = new SocketException((int)SocketError.ConnectionRefused, "secret-internal-detail");
        await using var harness = new McpHarness(registry, new FakeTransport(), metrics: source);
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("get_client_metrics", new { client_id = "web-01" });

        result.Error("CLIENT_UNREACHABLE");
        Assert.DoesNotContain("secret-internal-detail", ToolCalls.Text(result));
        Assert.Equal([("web-01", false)], source.Asked);
    }
}
