using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>Tool behaviour through the SDK's client over in-memory pipes, with a scripted command transport.</summary>
public sealed class McpToolBehaviourTests
{
    private static (FakeFleet Registry, FakeTransport Transport) Fleet()
    {
        var registry = new FakeFleet();
        registry.AddClient("11111111-aaaa", "web-01", true, 40001, "web", "prod");
        registry.AddClient("22222222-bbbb", "web-02", true, 40002, "web");
        registry.AddClient("33333333-cccc", "db-01", false, 0, "db");
        return (registry, new FakeTransport());
    }

    [Fact]
    public async Task RunCommand_WithoutClientIdOrSelection_IsNoClientSelected_AndRunsNothing()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_command", new { cmd = "uptime" })).Error("NO_CLIENT_SELECTED");

        Assert.Equal(0, transport.Calls);
        Assert.Equal(3, error.GetProperty("available_clients").GetArrayLength());
    }

    [Fact]
    public async Task UnknownClient_IsClientNotFound_ListingAtMostFiveClientsWithUuids()
    {
        var registry = new FakeFleet();
        for (var i = 0; i < 8; i++)
        {
            registry.AddClient($"uuid-{i}", $"node-{i}", i % 2 == 0, 40000 + i);
        }

        await using var harness = new McpHarness(registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_command", new { cmd = "uptime", client_id = "nod-3" })).Error("CLIENT_NOT_FOUND");

        var suggested = error.GetProperty("available_clients").EnumerateArray().ToList();
        Assert.Equal(5, suggested.Count);
        Assert.All(suggested, s => Assert.StartsWith("uuid-", s.GetProperty("uuid").GetString()));
        Assert.True(suggested[0].GetProperty("online").GetBoolean(), "online clients come first");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3601)]
    public async Task RunCommand_TimeoutOutOfRange_IsInvalidArgumentNamingTheLimit_AndRunsNothing(int timeout)
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_command", new { cmd = "uptime", client_id = "web-01", timeout })).Error("INVALID_ARGUMENT");

        Assert.Equal("timeout", error.GetProperty("parameter").GetString());
        Assert.Contains("between 1 and 3600", error.GetProperty("message").GetString());
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task RunCommand_ARelativeCwd_IsRefusedWithCoresWords_AndRunsNothing()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_command", new { cmd = "ls", cwd = "srv/app", client_id = "web-01" })).Error("INVALID_ARGUMENT");

        Assert.Equal("cwd", error.GetProperty("parameter").GetString());
        Assert.Contains("the working directory must be an absolute path", error.GetProperty("message").GetString());
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task RunCommand_OfflineClient_IsClientOffline()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        (await client.CallAsync("run_command", new { cmd = "uptime", client_id = "db-01" })).Error("CLIENT_OFFLINE");
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task RunCommand_ByNameOrUuid_ReturnsExitCodeAndOutput()
    {
        var (registry, transport) = Fleet();
        transport.Answer("web-01", FakeTransport.Exit(3, "hello\n"));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var byName = (await client.CallAsync("run_command", new { cmd = "x", client_id = "WEB-01" })).Ok();
        var byUuid = (await client.CallAsync("run_command", new { cmd = "x", client_id = "11111111-aaaa" })).Ok();

        Assert.Equal(3, byName.GetProperty("exit_code").GetInt32());
        Assert.Equal("hello\n", byName.GetProperty("stdout").GetString());
        Assert.Equal("boom", byName.GetProperty("stderr").GetString());
        Assert.Equal("11111111-aaaa", byUuid.GetProperty("client").GetProperty("uuid").GetString());
    }

    [Fact]
    public async Task RunCommand_OutputOverBudget_IsCutWithMarkerAndFullSize()
    {
        var (registry, transport) = Fleet();
        var big = new string('x', 5000);
        transport.Answer("web-01", FakeTransport.Exit(0, big));
        await using var harness = new McpHarness(registry, transport, new() { MaxOutputBytes = 1024 });
        var client = await harness.ConnectAsync();

        var result = (await client.CallAsync("run_command", new { cmd = "x", client_id = "web-01" })).Ok();

        var stdout = result.GetProperty("stdout").GetString()!;
        Assert.StartsWith(new string('x', 1024), stdout);
        Assert.EndsWith("[truncated: showed the first 1024 of 5000 bytes]", stdout);
        Assert.True(result.GetProperty("stdout_truncated").GetBoolean());
        Assert.Equal(5000, result.GetProperty("stdout_bytes").GetInt64());
    }

    [Fact]
    public async Task RunCommand_TimedOutOnAgent_IsTimeoutWithPartialOutput()
    {
        var (registry, transport) = Fleet();
        transport.Answer("web-01", FakeTransport.Exit(-1, "partial", timedOut: true));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_command", new { cmd = "sleep 9", client_id = "web-01", timeout = 1 })).Error("TIMEOUT");

        Assert.Equal("partial", error.GetProperty("partial").GetProperty("stdout").GetString());
    }

    [Fact]
    public async Task RunCommand_PathDeniedByAgent_IsPathDenied()
    {
        var (registry, transport) = Fleet();
        transport.Throw("web-01", new EtPhoneHome.Core.Tunnel.RpcException(RpcErrorCodes.PathDenied, "cwd /etc is outside the allowed paths"));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        (await client.CallAsync("run_command", new { cmd = "ls", cwd = "/etc", client_id = "web-01" })).Error("PATH_DENIED");
    }

    [Fact]
    public async Task UnexpectedFault_IsInternal_WithoutItsText()
    {
        var (registry, transport) = Fleet();
        transport.Throw("web-01", new InvalidOperationException("secret internals at line 42"));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("run_command", new { cmd = "ls", client_id = "web-01" });

        result.Error("INTERNAL");
        Assert.DoesNotContain("secret internals", ToolCalls.Text(result));
    }

    [Fact]
    public async Task Selection_IsPerSession()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var first = await harness.ConnectAsync();
        var second = await harness.ConnectAsync();

        (await first.CallAsync("select_client", new { client_id = "web-01" })).Ok();
        (await second.CallAsync("select_client", new { client_id = "22222222-bbbb" })).Ok();
        var a = (await first.CallAsync("run_command", new { cmd = "hostname" })).Ok();
        var b = (await second.CallAsync("run_command", new { cmd = "hostname" })).Ok();
        var third = await harness.ConnectAsync();

        Assert.Equal("web-01", a.GetProperty("client").GetProperty("display_name").GetString());
        Assert.Equal("web-02", b.GetProperty("client").GetProperty("display_name").GetString());
        Assert.Equal("11111111-aaaa", (await first.CallAsync("list_clients")).Ok().GetProperty("active_client").GetString());
        (await third.CallAsync("run_command", new { cmd = "hostname" })).Error("NO_CLIENT_SELECTED");
    }

    [Fact]
    public async Task StartCommand_ReturnsAtOnce_ThenGetCommandResultCompletes()
    {
        var (registry, transport) = Fleet();
        var release = new TaskCompletionSource();
        transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "done\n"));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var started = (await client.CallAsync("start_command", new { cmd = "sleep 3; echo done", client_id = "web-01" })).Ok();
        var id = started.GetProperty("command_id").GetString()!;
        var running = (await client.CallAsync("get_command_result", new { command_id = id })).Ok();
        release.SetResult();
        var finished = (await client.CallAsync("get_command_result", new { command_id = id, wait_seconds = 30 })).Ok();

        Assert.Equal("running", started.GetProperty("status").GetString());
        Assert.Equal("running", running.GetProperty("status").GetString());
        Assert.Equal("completed", finished.GetProperty("status").GetString());
        Assert.Equal("done\n", finished.GetProperty("result").GetProperty("stdout").GetString());
        (await client.CallAsync("get_command_result", new { command_id = "cmd_unknown" })).Error("COMMAND_NOT_FOUND");
    }

    [Fact]
    public async Task RunFleetCommand_ByTag_GivesOneCompactResultPerTarget()
    {
        var (registry, transport) = Fleet();
        registry.AddClient("44444444-dddd", "web-03", false, 0, "web");
        transport.Answer("web-02", FakeTransport.Exit(1, "nope"));
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var result = (await client.CallAsync("run_fleet_command", new { cmd = "uptime", tags = new[] { "web" }, throttle = 2 })).Ok();

        var statuses = result.GetProperty("results").EnumerateArray()
            .ToDictionary(r => r.GetProperty("display_name").GetString()!, r => r.GetProperty("status").GetString());
        Assert.Equal(new Dictionary<string, string?> { ["web-01"] = "succeeded", ["web-02"] = "failed", ["web-03"] = "offline" }, statuses);
        Assert.Equal("3 targets: 1 succeeded, 1 failed, 1 offline", result.GetProperty("summary").GetString());
        // The failure kind, spelled as in exec --json: only a target that was not reached has one.
        var failures = result.GetProperty("results").EnumerateArray()
            .ToDictionary(r => r.GetProperty("display_name").GetString()!, r => r.TryGetProperty("failure", out var f) && f.ValueKind == JsonValueKind.String ? f.GetString() : null);
        Assert.Equal(new Dictionary<string, string?> { ["web-01"] = null, ["web-02"] = null, ["web-03"] = "offline" }, failures);
        Assert.False(result.GetProperty("all_succeeded").GetBoolean());
    }

    [Fact]
    public async Task RunFleetCommand_UnknownClientName_RunsNothing()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_fleet_command", new { cmd = "uptime", client_ids = new[] { "web-01", "ghost" } })).Error("CLIENT_NOT_FOUND");

        Assert.Equal(0, transport.Calls);
        Assert.Equal("ghost", error.GetProperty("not_found")[0].GetString());
    }

    [Fact]
    public async Task RunFleetCommand_SeveralUnknownClientNames_RunsNothing_AndNamesEveryOne_WithTheSharedRule()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_fleet_command", new { cmd = "reboot", client_ids = new[] { "web-01", "web-2", "ghost" } })).Error("CLIENT_NOT_FOUND");

        Assert.Equal(0, transport.Calls);
        Assert.Equal(["web-2", "ghost"], error.GetProperty("not_found").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal(UnknownClientsException.Describe(["web-2", "ghost"]), error.GetProperty("message").GetString());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1025)]
    public async Task RunFleetCommand_ThrottleOutOfRange_IsInvalidArgument(int throttle)
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("run_fleet_command", new { cmd = "uptime", tags = new[] { "web" }, throttle })).Error("INVALID_ARGUMENT");

        Assert.Equal("throttle", error.GetProperty("parameter").GetString());
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task FindClient_FiltersByTagAndOnline()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var found = (await client.CallAsync("find_client", new { tags = new[] { "web" }, online_only = true })).Ok();

        Assert.Equal(2, found.GetProperty("count").GetInt32());
        Assert.All(found.GetProperty("clients").EnumerateArray(), c => Assert.True(c.GetProperty("online").GetBoolean()));
    }

    [Fact]
    public async Task DescribeClient_NeverShowsSessionSecrets()
    {
        var (registry, transport) = Fleet();
        await using var harness = new McpHarness(registry, transport);
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("describe_client", new { uuid = "11111111-aaaa" });
        var details = result.Ok();

        Assert.Equal("web-01", details.GetProperty("display_name").GetString());
        Assert.DoesNotContain("secret", ToolCalls.Text(result), StringComparison.OrdinalIgnoreCase);
    }
}
