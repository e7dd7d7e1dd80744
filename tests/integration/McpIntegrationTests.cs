using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Sandbox;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// The MCP server as an AI agent meets it: the SDK's own client drives the built <c>eph-server mcp</c>
/// (stdio) and the HTTP endpoint, against agents tunnelled through a real sshd.
/// </summary>
public sealed class McpIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private const string ApiKey = "mcp-test-key-0123456789abcdef";

    private SandboxEnvironment Env => fixture.Env;

    [Fact]
    public async Task Stdio_ToolsDriveRealAgents_WithErrorsTruncationAndBackgroundCommands()
    {
        var (_, alpha) = await fixture.AddOnlineAgentAsync("mcp-alpha", "mcpgroup");
        var (bravoAgent, bravo) = await fixture.AddOnlineAgentAsync("mcp-bravo", "mcpgroup");
        await using var client = await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "eph-server",
            Command = Env.ServerExecutable,
            Arguments = ["mcp", "--data", Env.Data.Path, "--max-output-bytes", "1024"],
        }));

        var tools = await client.ListToolsAsync();
        Assert.Contains(tools, t => t.Name == "run_fleet_command");
        Assert.All(tools, t => Assert.False(string.IsNullOrWhiteSpace(t.Description)));

        var listed = Ok(await Call(client, "list_clients"));
        Assert.Contains(listed.GetProperty("clients").EnumerateArray(), c => c.GetProperty("uuid").GetString() == alpha.Uuid && c.GetProperty("online").GetBoolean());
        var found = Ok(await Call(client, "find_client", new { tags = new[] { "mcpgroup" }, online_only = true }));
        Assert.Equal(2, found.GetProperty("count").GetInt32());
        var described = Ok(await Call(client, "describe_client", new { uuid = bravo.Uuid }));
        Assert.Equal("mcp-bravo", described.GetProperty("display_name").GetString());

        Error(await Call(client, "run_command", new { cmd = "echo hi" }), "NO_CLIENT_SELECTED");
        var notFound = Error(await Call(client, "run_command", new { cmd = "echo hi", client_id = "mcp-charlie" }), "CLIENT_NOT_FOUND");
        Assert.InRange(notFound.GetProperty("available_clients").GetArrayLength(), 2, 5);
        Error(await Call(client, "run_command", new { cmd = "echo hi", client_id = "mcp-alpha", timeout = 0 }), "INVALID_ARGUMENT");

        Ok(await Call(client, "select_client", new { client_id = "mcp-alpha" }));
        var ran = Ok(await Call(client, "run_command", new { cmd = "echo hi; echo oops >&2; exit 3" }));
        Assert.Equal(3, ran.GetProperty("exit_code").GetInt32());
        Assert.Equal("hi\n", ran.GetProperty("stdout").GetString());
        Assert.Equal("oops\n", ran.GetProperty("stderr").GetString());

        var big = Ok(await Call(client, "run_command", new { cmd = "head -c 5000 /dev/zero | tr '\\0' x" }));
        Assert.EndsWith("[truncated: showed the first 1024 of 5000 bytes]", big.GetProperty("stdout").GetString());
        Assert.Equal(5000, big.GetProperty("stdout_bytes").GetInt64());

        var fleet = Ok(await Call(client, "run_fleet_command", new { cmd = "echo ok", tags = new[] { "mcpgroup" }, throttle = 2, timeout = 30 }));
        Assert.Equal("2 targets: 2 succeeded", fleet.GetProperty("summary").GetString());

        var started = Ok(await Call(client, "start_command", new { cmd = "sleep 3; echo done" }));
        var id = started.GetProperty("command_id").GetString();
        JsonElement polled;
        var polls = 0;
        do
        {
            polled = Ok(await Call(client, "get_command_result", new { command_id = id, wait_seconds = 2 }));
            polls++;
        }
        while (polled.GetProperty("status").GetString() == "running" && polls < 15);
        Assert.True(polls > 1, "a 3 s command cannot be complete at the first 2 s poll");
        Assert.Equal("completed", polled.GetProperty("status").GetString());
        Assert.Equal("done\n", polled.GetProperty("result").GetProperty("stdout").GetString());

        var history = Ok(await Call(client, "get_history", new { client_id = alpha.Uuid, limit = 20 }));
        Assert.Contains(history.GetProperty("entries").EnumerateArray(), e => e.GetProperty("surface").GetString() == "mcp" && e.GetProperty("operation").GetString() == "run_command");

        await bravoAgent.StopAsync();
        await Env.WaitOfflineAsync("mcp-bravo", SandboxFixture.Patience);
        Error(await Call(client, "run_command", new { cmd = "echo hi", client_id = bravo.Uuid }), "CLIENT_OFFLINE");
    }

    [Fact]
    public async Task Http_NeedsTheKey_KeepsSelectionPerSession_AndAnswersHealth()
    {
        await fixture.AddOnlineAgentAsync("http-one", "httpgroup");
        await fixture.AddOnlineAgentAsync("http-two", "httpgroup");
        var keyFile = WriteKeyFile();
        var port = FreePort();
        await using var server = ManagedProcess.Start("mcp-http", Env.ServerExecutable,
            ["mcp", "--data", Env.Data.Path, "--http", $"127.0.0.1:{port}", "--api-key-file", keyFile],
            Path.Combine(Env.WorkDirectory, "mcp-http.log"));
        var baseUri = new Uri($"http://127.0.0.1:{port}");
        using var http = new HttpClient { BaseAddress = baseUri };
        await WaitForHealthAsync(http, server);

        Assert.Equal(HttpStatusCode.Unauthorized, (await PostInitialize(http, null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await PostInitialize(http, "wrong-key-0123456789abcdef")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await PostInitialize(http, ApiKey)).StatusCode);

        var health = JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement;
        Assert.Equal("ok", health.GetProperty("status").GetString());
        Assert.True(health.GetProperty("online_clients").GetInt32() >= 2);
        Assert.True(health.GetProperty("total_clients").GetInt32() >= health.GetProperty("online_clients").GetInt32());
        Assert.False(string.IsNullOrEmpty(health.GetProperty("version").GetString()));

        await using var first = await HttpClientAsync(baseUri);
        await using var second = await HttpClientAsync(baseUri);
        Ok(await Call(first, "select_client", new { client_id = "http-one" }));
        Ok(await Call(second, "select_client", new { client_id = "http-two" }));
        var a = Ok(await Call(first, "run_command", new { cmd = "echo first" }));
        var b = Ok(await Call(second, "run_command", new { cmd = "echo second" }));
        Assert.Equal("http-one", a.GetProperty("client").GetProperty("display_name").GetString());
        Assert.Equal("http-two", b.GetProperty("client").GetProperty("display_name").GetString());
        Assert.Equal("first\n", a.GetProperty("stdout").GetString());

        await server.StopAsync();
    }

    [Fact]
    public async Task Hub_ServesHttpWithKey_AndRefusesToStartWithoutOne_OnLoopbackToo()
    {
        var data = Path.Combine(Env.WorkDirectory, "hub-http-" + Guid.NewGuid().ToString("N")[..8]);
        foreach (var address in new[] { "0.0.0.0:18765", "127.0.0.1:18765" })
        {
            // A keyless loopback endpoint gave any local user run_fleet_command on the whole fleet.
            var refused = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["run", "--data", data, "--http", address]);
            Assert.Equal(2, refused.ExitCode);
            Assert.Contains("needs an API key", refused.Stderr);
            var refusedMcp = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["mcp", "--data", data, "--http", address]);
            Assert.Equal(2, refusedMcp.ExitCode);
            Assert.Contains("needs an API key", refusedMcp.Stderr);
        }

        // Only init creates a registry: the hub refuses a data directory that was never initialised.
        var notInitialised = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["run", "--data", data, "--gate-path", Env.GatePath]);
        Assert.Equal(2, notInitialised.ExitCode);
        Assert.Contains("eph-server init", notInitialised.Stderr);
        Assert.Equal(0, (await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["init", "--data", data])).ExitCode);

        var port = FreePort();
        await using var hub = ManagedProcess.Start("hub-http", Env.ServerExecutable,
            ["run", "--data", data, "--gate-path", Env.GatePath, "--http", $"127.0.0.1:{port}", "--api-key-file", WriteKeyFile()],
            Path.Combine(Env.WorkDirectory, "hub-http.log"));
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") };
        await WaitForHealthAsync(http, hub);

        var health = JsonDocument.Parse(await http.GetStringAsync("/health")).RootElement;
        Assert.Equal(0, health.GetProperty("total_clients").GetInt32());
        Assert.Equal(HttpStatusCode.Unauthorized, (await PostInitialize(http, null)).StatusCode);
        await using var client = await HttpClientAsync(http.BaseAddress!);
        Assert.Equal(0, Ok(await Call(client, "list_clients")).GetProperty("total_count").GetInt32());
        await hub.StopAsync();
    }

    // ----- helpers -----

    private static async Task<CallToolResult> Call(McpClient client, string tool, object? arguments = null)
    {
        var args = arguments is null ? new Dictionary<string, object?>() : JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(arguments))!;
        return await client.CallToolAsync(tool, args);
    }

    private static JsonElement Ok(CallToolResult result)
    {
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        Assert.True(result.IsError is not true, text);
        return JsonDocument.Parse(text).RootElement;
    }

    private static JsonElement Error(CallToolResult result, string code)
    {
        var text = Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
        Assert.True(result.IsError is true, text);
        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal(code, json.GetProperty("error").GetString());
        Assert.False(string.IsNullOrEmpty(json.GetProperty("recovery_hint").GetString()));
        return json;
    }

    private string WriteKeyFile()
    {
        var path = Path.Combine(Env.WorkDirectory, "mcp-api-key-" + Guid.NewGuid().ToString("N")[..8]);
        File.WriteAllText(path, ApiKey + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return path;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static async Task WaitForHealthAsync(HttpClient http, ManagedProcess process) =>
        await SandboxEnvironment.WaitUntilAsync(() =>
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"{process.Name} exited: {File.ReadAllText(process.LogFile)}");
            }

            try
            {
                return http.GetAsync("/health").GetAwaiter().GetResult().IsSuccessStatusCode ? "up" : null;
            }
            catch (HttpRequestException)
            {
                return null;
            }
        }, SandboxFixture.Patience, "the MCP HTTP endpoint");

    private static async Task<HttpResponseMessage> PostInitialize(HttpClient http, string? key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/mcp")
        {
            Content = new StringContent(
                """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"probe","version":"1"}}}""",
                Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (key is not null)
        {
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        }

        return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
    }

    private static Task<McpClient> HttpClientAsync(Uri baseUri) =>
        McpClient.CreateAsync(new HttpClientTransport(new HttpClientTransportOptions
        {
            Endpoint = new Uri(baseUri, "/mcp"),
            TransportMode = HttpTransportMode.StreamableHttp,
            AdditionalHeaders = new Dictionary<string, string> { ["Authorization"] = "Bearer " + ApiKey },
        }));
}
