using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>get_history's filters and paging over a real registry's history.</summary>
public sealed class McpHistoryToolTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly SqliteRegistry _registry;
    private readonly ClientRecord _web;
    private readonly ClientRecord _db;
    private readonly DateTimeOffset _t0 = DateTimeOffset.UtcNow.AddHours(-10);

    public McpHistoryToolTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        _web = Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01", host: "web"));
        _db = Keys.Admit(_registry, Keys.B, Keys.Identity(name: "db-01", host: "db"));
        // One entry an hour, oldest first: web run_command succeeded/failed alternating, db metrics.
        for (var i = 0; i < 6; i++)
        {
            _registry.RecordAudit(new AuditEntry
            {
                Operation = "run_command",
                Uuid = _web.Uuid,
                Actor = "alice",
                Surface = "mcp",
                Status = i % 2 == 0 ? "succeeded" : "failed",
                Detail = $"cmd {i}",
                At = _t0.AddHours(i),
            });
        }

        _registry.RecordAudit(new AuditEntry { Operation = "get_client_metrics", Uuid = _db.Uuid, Actor = "bob", Surface = "cli", Status = "succeeded", At = _t0.AddHours(7) });
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }

    private static List<string?> Details(System.Text.Json.JsonElement history) =>
        history.GetProperty("entries").EnumerateArray().Select(e => e.TryGetProperty("detail", out var d) ? d.GetString() : null).ToList();

    [Fact]
    public async Task GetHistory_FiltersByClientOperationStatusAndTime_NewestFirst()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var failed = (await client.CallAsync("get_history", new { client_id = "web-01", operation = "RUN_COMMAND", status = "failed" })).Ok();
        var window = (await client.CallAsync("get_history", new { client_id = _web.Uuid, since = _t0.AddHours(2).ToString("O"), until = _t0.AddHours(4).ToString("O") })).Ok();
        var metrics = (await client.CallAsync("get_history", new { operation = "get_client_metrics" })).Ok();

        Assert.Equal(["cmd 5", "cmd 3", "cmd 1"], Details(failed));
        Assert.Equal(["cmd 3", "cmd 2"], Details(window));
        var only = Assert.Single(metrics.GetProperty("entries").EnumerateArray());
        Assert.Equal(("db-01", "cli", "bob"), (only.GetProperty("display_name").GetString(), only.GetProperty("surface").GetString(), only.GetProperty("actor").GetString()));
    }

    [Fact]
    public async Task GetHistory_PagesWithLimitAndSkip_AndSaysWhenMoreMayExist()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var first = (await client.CallAsync("get_history", new { client_id = "web-01", limit = 4 })).Ok();
        var second = (await client.CallAsync("get_history", new { client_id = "web-01", limit = 4, skip = 4 })).Ok();

        Assert.Equal(["cmd 5", "cmd 4", "cmd 3", "cmd 2"], Details(first));
        Assert.True(first.GetProperty("more").GetBoolean());
        Assert.Equal(["cmd 1", "cmd 0"], Details(second));
        Assert.False(second.TryGetProperty("more", out _));
    }

    [Fact]
    public async Task GetHistory_AcceptsAgesForSinceAndUntil()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var recent = (await client.CallAsync("get_history", new { since = "330m", until = "1m" })).Ok();

        // t0 is 10 h ago: from 330 to 1 minutes ago lie cmd 5 (5 h ago) and the metrics entry (3 h ago, no detail);
        // the key approvals of the setup (just now) are after until.
        Assert.Equal([null, "cmd 5"], Details(recent));
    }

    [Theory]
    [InlineData("since", "yesterday-ish")]
    [InlineData("until", "12q")]
    public async Task GetHistory_BadTime_IsInvalidArgumentNamingTheParameter(string parameter, string value)
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("get_history", new Dictionary<string, object?> { [parameter] = value })).Error("INVALID_ARGUMENT");

        Assert.Equal(parameter, error.GetProperty("parameter").GetString());
    }

    [Fact]
    public async Task GetHistory_UntilBeforeSince_AndUnknownClient_AreRefused()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var order = (await client.CallAsync("get_history", new { since = "1h", until = "2h" })).Error("INVALID_ARGUMENT");
        (await client.CallAsync("get_history", new { client_id = "nope" })).Error("CLIENT_NOT_FOUND");
        (await client.CallAsync("get_history", new { skip = -1 })).Error("INVALID_ARGUMENT");

        Assert.Equal("until", order.GetProperty("parameter").GetString());
    }
}
