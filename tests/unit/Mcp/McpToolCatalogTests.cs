using EtPhoneHome.Core.Registry;
using System.Text.Json;
using EtPhoneHome.Tests.Unit.Operations;
using ModelContextProtocol.Client;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>What a model sees in tools/list: names, descriptions, limits and honest hints.</summary>
public sealed class McpToolCatalogTests
{
    // name → (readOnly, destructive, idempotent, openWorld)
    public static readonly Dictionary<string, (bool ReadOnly, bool Destructive, bool Idempotent, bool OpenWorld)> ExpectedHints = new()
    {
        ["list_clients"] = (true, false, true, false),
        ["select_client"] = (false, false, true, false),
        ["find_client"] = (true, false, true, false),
        ["describe_client"] = (true, false, true, false),
        ["update_client"] = (false, true, true, false),
        ["configure_client"] = (false, true, true, false),
        ["accept_key"] = (false, true, true, false),
        ["list_pending_keys"] = (true, false, true, false),
        ["run_command"] = (false, true, false, true),
        ["run_fleet_command"] = (false, true, false, true),
        ["start_command"] = (false, true, false, true),
        ["get_command_result"] = (true, false, true, false),
        ["get_history"] = (true, false, true, false),
        ["get_rate_limit_stats"] = (true, false, true, false),
        ["get_client_metrics"] = (true, false, true, true),
        ["exchange_upload"] = (false, false, false, true),
        ["exchange_download"] = (false, true, true, true),
        ["exchange_list"] = (true, false, true, true),
        ["exchange_delete"] = (false, true, true, true),
        ["read_file"] = (true, false, true, true),
        ["list_files"] = (true, false, true, true),
        ["write_file"] = (false, true, true, true),
        ["upload_file"] = (false, true, true, true),
        ["download_file"] = (false, true, true, true),
    };

    [Fact]
    public async Task ToolsList_HasEveryToolWithHonestHints()
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();

        var tools = await client.ListToolsAsync();

        Assert.Equal(ExpectedHints.Keys.Order(), tools.Select(t => t.Name).Order());
        foreach (var tool in tools)
        {
            var expected = ExpectedHints[tool.Name];
            var hints = tool.ProtocolTool.Annotations;
            Assert.NotNull(hints);
            Assert.Equal((tool.Name, expected.ReadOnly, expected.Destructive, expected.Idempotent, expected.OpenWorld),
                (tool.Name, hints.ReadOnlyHint, hints.DestructiveHint, hints.IdempotentHint, hints.OpenWorldHint));
        }
    }

    [Fact]
    public async Task EveryTool_HasAnObjectOutputSchema_InSnakeCase()
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();

        var tools = await client.ListToolsAsync();

        foreach (var tool in tools)
        {
            var schema = tool.ProtocolTool.OutputSchema;
            Assert.True(schema is { ValueKind: JsonValueKind.Object }, $"{tool.Name} has no output schema");
            Assert.Equal((tool.Name, "object"), (tool.Name, schema.Value.GetProperty("type").GetString()));
            var properties = schema.Value.GetProperty("properties").EnumerateObject().Select(p => p.Name).ToList();
            Assert.NotEmpty(properties);
            Assert.All(properties, name => Assert.Matches("^[a-z0-9_]+$", name));
        }

        var listClients = tools.Single(t => t.Name == "list_clients").ProtocolTool.OutputSchema!.Value.GetProperty("properties");
        Assert.Equal(["active_client", "clients", "message", "note", "online_count", "total_count", "truncated"],
            listClients.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal));
        var runCommand = tools.Single(t => t.Name == "run_command").ProtocolTool.OutputSchema!.Value.GetProperty("properties");
        Assert.True(runCommand.TryGetProperty("exit_code", out _));
        Assert.True(runCommand.TryGetProperty("stdout_bytes", out _));
    }

    [Fact]
    public async Task AnAnswer_IsStructuredContent_AndTheSameJsonAsText()
    {
        var registry = new FakeFleet();
        registry.AddClient("11111111-1111-1111-1111-111111111111", "web-01", online: true);
        await using var harness = new McpHarness(registry, new FakeTransport());
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("list_clients");

        var text = result.Ok();
        Assert.True(result.StructuredContent is { ValueKind: JsonValueKind.Object }, "no structured content");
        Assert.Equal(text.GetRawText(), result.StructuredContent.Value.GetRawText());
        Assert.Equal("web-01", result.StructuredContent.Value.GetProperty("clients")[0].GetProperty("display_name").GetString());
        Assert.False(result.StructuredContent.Value.TryGetProperty("active_client", out _)); // nulls are left out, as in the text
    }

    [Fact]
    public async Task AToolError_HasNoStructuredContent_OnlyTheErrorObject()
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("describe_client", new { client_id = "web-9" });

        result.Error("CLIENT_NOT_FOUND");
        Assert.Null(result.StructuredContent);
    }

    [Fact]
    public async Task EveryToolAndParameter_HasADescription()
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();

        foreach (var tool in await client.ListToolsAsync())
        {
            Assert.False(string.IsNullOrWhiteSpace(tool.Description), $"{tool.Name} has no description");
            foreach (var property in tool.JsonSchema.GetProperty("properties").EnumerateObject())
            {
                Assert.True(property.Value.TryGetProperty("description", out var d) && d.GetString()!.Length > 10,
                    $"{tool.Name}.{property.Name} has no description");
            }
        }
    }

    [Theory]
    [InlineData("run_command", "timeout", 1, 3600)]
    [InlineData("start_command", "timeout", 1, 3600)]
    [InlineData("run_fleet_command", "throttle", 1, 1024)]
    [InlineData("run_fleet_command", "timeout", 1, 3600)]
    [InlineData("get_command_result", "wait_seconds", 0, 30)]
    [InlineData("configure_client", "rate_limit_rpm", 1, 1000)]
    [InlineData("get_history", "limit", 1, 500)]
    [InlineData("get_history", "skip", 0, 100000)]
    [InlineData("exchange_upload", "expires_hours", 1, 12)]
    [InlineData("exchange_list", "limit", 1, 1000)]
    public async Task Schemas_CarryNumericLimits(string toolName, string parameter, int minimum, int maximum)
    {
        var property = await PropertyAsync(toolName, parameter);

        Assert.Equal(minimum, property.GetProperty("minimum").GetInt32());
        Assert.Equal(maximum, property.GetProperty("maximum").GetInt32());
    }

    [Theory]
    [InlineData("run_command", "cmd", 65536)]
    [InlineData("run_command", "cwd", 4096)]
    [InlineData("update_client", "display_name", 100)]
    [InlineData("update_client", "purpose", 200)]
    [InlineData("exchange_upload", "local_path", 4096)]
    [InlineData("exchange_download", "download_url", 8192)]
    [InlineData("exchange_delete", "transfer_id", 400)]
    [InlineData("get_rate_limit_stats", "uuid", 200)]
    [InlineData("read_file", "path", 4096)]
    [InlineData("write_file", "content", 1048576)]
    [InlineData("upload_file", "local_path", 4096)]
    [InlineData("download_file", "local_path", 4096)]
    public async Task Schemas_CarryLengthLimits(string toolName, string parameter, int maxLength)
    {
        var property = await PropertyAsync(toolName, parameter);

        Assert.Equal(maxLength, property.GetProperty("maxLength").GetInt32());
    }

    [Fact]
    public async Task ParameterNames_AreTheReferenceNames()
    {
        Assert.Equal(["client_id", "cmd", "cwd", "timeout"], (await PropertyNamesAsync("run_command")).Order());
        Assert.Equal(["capabilities", "limit", "online_only", "purpose", "query", "tags"], (await PropertyNamesAsync("find_client")).Order());
        Assert.Equal(["allowed_paths", "display_name", "purpose", "tags", "uuid"], (await PropertyNamesAsync("update_client")).Order());
        Assert.Equal(["rate_limit_concurrent", "rate_limit_rpm", "uuid", "webhook_url"], (await PropertyNamesAsync("configure_client")).Order());
        Assert.Equal(["uuid"], await PropertyNamesAsync("get_rate_limit_stats"));
        Assert.Equal(["client_id", "summary"], (await PropertyNamesAsync("get_client_metrics")).Order());
        Assert.Equal(["dest_client", "expires_hours", "local_path"], (await PropertyNamesAsync("exchange_upload")).Order());
        Assert.Equal(["download_url", "local_path"], (await PropertyNamesAsync("exchange_download")).Order());
        Assert.Equal(["client_id", "dest_client", "limit"], (await PropertyNamesAsync("exchange_list")).Order());
        Assert.Equal(["source_client", "transfer_id"], (await PropertyNamesAsync("exchange_delete")).Order());
        Assert.Equal(["client_id", "limit", "operation", "since", "skip", "status", "until"], (await PropertyNamesAsync("get_history")).Order());
        Assert.Equal(["client_id", "path"], (await PropertyNamesAsync("read_file")).Order());
        Assert.Equal(["client_id", "content", "path"], (await PropertyNamesAsync("write_file")).Order());
        Assert.Equal(["client_id", "path"], (await PropertyNamesAsync("list_files")).Order());
        Assert.Equal(["client_id", "local_path", "remote_path"], (await PropertyNamesAsync("upload_file")).Order());
        Assert.Equal(["client_id", "local_path", "remote_path"], (await PropertyNamesAsync("download_file")).Order());
    }

    private static async Task<IEnumerable<string>> PropertyNamesAsync(string toolName)
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();
        var tool = (await client.ListToolsAsync()).Single(t => t.Name == toolName);
        return tool.JsonSchema.GetProperty("properties").EnumerateObject().Select(p => p.Name).ToList();
    }

    private static async Task<JsonElement> PropertyAsync(string toolName, string parameter)
    {
        await using var harness = new McpHarness(new FakeFleet(), new FakeTransport());
        var client = await harness.ConnectAsync();
        var tool = (await client.ListToolsAsync()).Single(t => t.Name == toolName);
        return tool.JsonSchema.GetProperty("properties").GetProperty(parameter).Clone();
    }
}
