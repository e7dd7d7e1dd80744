using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>Registry edits through MCP against a real SQLite registry.</summary>
public sealed class McpRegistryToolTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly SqliteRegistry _registry;
    private readonly ClientRecord _client;

    public McpRegistryToolTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        _registry.RecordPendingKey(Keys.A, "ssh-ed25519 AAAA", Keys.Identity(name: "web-01"));
        _registry.ApproveKey(Keys.A, "test");
        _client = _registry.AdmitClient(Keys.A, Keys.Identity(name: "web-01"));
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }

    [Fact]
    public async Task UpdateClient_ChangesOperatorFields_AndRecordsTheMcpActor()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var result = (await client.CallAsync("update_client", new { uuid = _client.Uuid, display_name = "api-01", tags = new[] { "production", "critical" } })).Ok();

        Assert.Equal("api-01", result.GetProperty("updated").GetProperty("display_name").GetString());
        var stored = _registry.GetClient(_client.Uuid)!;
        Assert.Equal("api-01", stored.DisplayName);
        Assert.Equal(["production", "critical"], stored.Tags);
        // Recorded like every other surface's edit: the operator as the actor, mcp as the surface.
        Assert.Contains(_registry.ListAudit(_client.Uuid), a => a.Operation == "update_client" && a.Surface == "mcp" && a.Actor == Environment.UserName);
    }

    [Fact]
    public async Task UpdateClient_ToANameTakenAfterNormalisation_IsRefused_NamingTheClientThatHasIt()
    {
        var db = Keys.Admit(_registry, Keys.B, Keys.Identity(name: "db-01", host: "db"));
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("update_client", new { uuid = db.Uuid, display_name = "\uff37\uff25\uff22-01" })).Error("INVALID_ARGUMENT");

        Assert.Contains(_client.Uuid, error.GetProperty("message").GetString());
        Assert.Equal("db-01", _registry.GetClient(db.Uuid)!.DisplayName);
    }

    [Theory]
    [InlineData("WEB-01")]
    [InlineData("web\u200b-01")]
    [InlineData("\uff57\uff45\uff42-01")]
    public async Task AClientNamedByALookAlike_IsTheOneClient_AndAClaimOfTheSameNameIsAnother(string lookAlike)
    {
        var claimant = Keys.Admit(_registry, Keys.B, Keys.Identity(name: "Web-01", host: "claimant"));
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var described = (await client.CallAsync("describe_client", new { client_id = lookAlike })).Ok();

        Assert.Equal("Web-01 (2)", claimant.DisplayName);
        Assert.Contains(_client.Uuid, described.GetRawText());
        Assert.DoesNotContain(claimant.Uuid, described.GetRawText());
    }

    [Fact]
    public async Task UpdateClient_EmptyAllowedPaths_MakesClientUnrestricted()
    {
        _registry.UpdateClient(_client.Uuid, new ClientUpdate { AllowedPaths = ["/srv"] }, "test");
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        (await client.CallAsync("update_client", new { uuid = _client.Uuid, allowed_paths = Array.Empty<string>() })).Ok();

        Assert.Null(_registry.GetClient(_client.Uuid)!.AllowedPaths);
    }

    [Fact]
    public async Task ConfigureClient_OutOfRangeLimit_IsInvalidArgument_AndChangesNothing()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("configure_client", new { uuid = _client.Uuid, webhook_url = "https://hooks.example/x", rate_limit_rpm = 5000 })).Error("INVALID_ARGUMENT");

        Assert.Equal("rate_limit_rpm", error.GetProperty("parameter").GetString());
        var stored = _registry.GetClient(_client.Uuid)!;
        Assert.Null(stored.WebhookUrl);
        Assert.Null(stored.RateLimitRpm);
    }

    [Fact]
    public async Task ConfigureClient_SetsAndClearsWebhookAndLimits()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        (await client.CallAsync("configure_client", new { uuid = _client.Uuid, webhook_url = "https://hooks.example/x", rate_limit_rpm = 120, rate_limit_concurrent = 20 })).Ok();
        var set = _registry.GetClient(_client.Uuid)!;
        (await client.CallAsync("configure_client", new { uuid = _client.Uuid, webhook_url = "" })).Ok();

        Assert.Equal(("https://hooks.example/x", 120, 20), (set.WebhookUrl, set.RateLimitRpm, set.RateLimitConcurrent));
        Assert.Null(_registry.GetClient(_client.Uuid)!.WebhookUrl);
        (await client.CallAsync("configure_client", new { uuid = _client.Uuid, webhook_url = "ftp://x" })).Error("INVALID_ARGUMENT");
    }

    [Fact]
    public async Task AcceptKey_ClientWithoutMismatch_SaysSo_AndUnknownKeyIsKeyNotFound()
    {
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var answer = (await client.CallAsync("accept_key", new { uuid = _client.Uuid })).Ok();

        Assert.Equal($"Client {_client.Uuid} had no key mismatch to clear", answer.GetProperty("message").GetString());
        (await client.CallAsync("accept_key", new { uuid = Keys.C })).Error("KEY_NOT_FOUND");
    }

    [Fact]
    public async Task PendingKey_IsListed_ThenAcceptedByFingerprint()
    {
        _registry.RecordPendingKey(Keys.B, "ssh-ed25519 BBBB", Keys.Identity(host: "new-box", name: "new-box"));
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var pending = (await client.CallAsync("list_pending_keys")).Ok();
        (await client.CallAsync("accept_key", new { uuid = Keys.B })).Ok();

        Assert.Equal("new-box", pending.GetProperty("keys")[0].GetProperty("agent_claimed").GetProperty("hostname").GetString());
        Assert.Equal(KeyStatus.Approved, _registry.GetKey(Keys.B)!.Status);
        // The decision is in the history as MCP's, by the operator — not as an anonymous registry edit.
        Assert.Contains(_registry.QueryHistory(new HistoryQuery()), h => h.Operation == "accept_key" && h.Surface == "mcp" && h.Actor == Environment.UserName);
    }

    [Fact]
    public async Task GetHistory_ShowsRecentOperationsForAClient()
    {
        _registry.UpdateClient(_client.Uuid, new ClientUpdate { Purpose = "api" }, "alice");
        await using var harness = new McpHarness(_registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var history = (await client.CallAsync("get_history", new { client_id = "web-01", limit = 5 })).Ok();

        var first = history.GetProperty("entries")[0];
        Assert.Equal("update_client", first.GetProperty("operation").GetString());
        Assert.Equal("alice", first.GetProperty("actor").GetString());
        Assert.Equal("web-01", first.GetProperty("display_name").GetString());
        (await client.CallAsync("get_history", new { limit = 501 })).Error("INVALID_ARGUMENT");
    }
}
