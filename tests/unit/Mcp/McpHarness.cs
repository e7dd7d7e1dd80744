using System.IO.Pipelines;
using System.Text.Json;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Mcp;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>
/// An MCP server over a registry and a command transport, reached by the SDK's own client through
/// in-memory pipes. Each <see cref="ConnectAsync"/> is a new MCP session.
/// </summary>
internal sealed class McpHarness : IAsyncDisposable
{
    private readonly List<(McpClient Client, Task Server, CancellationTokenSource Stop)> _sessions = [];

    /// <summary>
    /// A harness whose exchange is unconfigured unless <paramref name="exchange"/> says where the bucket is (the
    /// test process's environment never leaks in); metrics go through the real tunnel client unless replaced.
    /// </summary>
    public McpHarness(SqliteRegistry registry, ICommandTransport transport, McpServerSettings? settings = null,
        Func<ExchangeSettings>? exchange = null, IMetricsSource? metrics = null, ExchangeOptions? exchangeOptions = null)
        : this(RegistryStores.Of(registry), transport, settings, exchange, metrics, exchangeOptions)
    {
    }

    /// <summary>A harness over the stores of an in-memory fleet (no webhook outbox, no rate-limit ledger).</summary>
    public McpHarness(FakeFleet fleet, ICommandTransport transport, McpServerSettings? settings = null,
        Func<ExchangeSettings>? exchange = null, IMetricsSource? metrics = null, ExchangeOptions? exchangeOptions = null)
        : this(fleet.Stores(), transport, settings, exchange, metrics, exchangeOptions)
    {
    }

    public McpHarness(RegistryStores registry, ICommandTransport transport, McpServerSettings? settings = null,
        Func<ExchangeSettings>? exchange = null, IMetricsSource? metrics = null, ExchangeOptions? exchangeOptions = null)
    {
        Registry = registry;
        var logs = StderrLoggerProvider.CreateFactory(Microsoft.Extensions.Logging.LogLevel.Warning, TextWriter.Null);
        var exchangeSettings = exchange ?? (() => ExchangeSettings.FromEnvironment(_ => null));
        Fleet = metrics is null
            ? new McpFleet(registry, settings, transport, logs) { ExchangeSettings = exchangeSettings, ExchangeOptions = exchangeOptions }
            : new McpFleet(registry, settings, transport, logs) { ExchangeSettings = exchangeSettings, ExchangeOptions = exchangeOptions, Metrics = metrics };
    }

    public RegistryStores Registry { get; }

    public McpFleet Fleet { get; }

    public async Task<McpClient> ConnectAsync()
    {
        var toServer = new Pipe();
        var toClient = new Pipe();
        var stop = new CancellationTokenSource();
        var server = Task.Run(() => EphMcpServer.RunStreamAsync(Fleet, toServer.Reader.AsStream(), toClient.Writer.AsStream(), stop.Token));
        var client = await McpClient.CreateAsync(new StreamClientTransport(toServer.Writer.AsStream(), toClient.Reader.AsStream()));
        _sessions.Add((client, server, stop));
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (client, server, stop) in _sessions)
        {
            await client.DisposeAsync();
            await stop.CancelAsync();
            try
            {
                await server.WaitAsync(TimeSpan.FromSeconds(10));
            }
            catch (OperationCanceledException)
            {
            }

            stop.Dispose();
        }

        await Fleet.DisposeAsync();
    }
}

internal static class ToolCalls
{
    public static async Task<CallToolResult> CallAsync(this McpClient client, string tool, object? arguments = null)
    {
        var args = arguments is null
            ? new Dictionary<string, object?>()
            : JsonSerializer.Deserialize<Dictionary<string, object?>>(JsonSerializer.Serialize(arguments))!;
        return await client.CallToolAsync(tool, args);
    }

    /// <summary>The JSON answer of a successful call (fails the test on a tool error).</summary>
    public static JsonElement Ok(this CallToolResult result)
    {
        var text = Text(result);
        Assert.True(result.IsError is not true, $"expected success, got {text}");
        return JsonDocument.Parse(text).RootElement;
    }

    /// <summary>The JSON error of a failed call, after checking its code.</summary>
    public static JsonElement Error(this CallToolResult result, string code)
    {
        var text = Text(result);
        Assert.True(result.IsError is true, $"expected {code}, got success {text}");
        var json = JsonDocument.Parse(text).RootElement;
        Assert.Equal(code, json.GetProperty("error").GetString());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("message").GetString()));
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("recovery_hint").GetString()));
        return json;
    }

    public static string Text(CallToolResult result) => Assert.IsType<TextContentBlock>(Assert.Single(result.Content)).Text;
}
