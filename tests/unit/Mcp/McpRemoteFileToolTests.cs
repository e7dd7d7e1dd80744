using System.IO.Pipelines;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using EtPhoneHome.Tests.Unit.Hub;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>
/// read_file, write_file, list_files and get_rate_limit_stats of <c>eph-server mcp --server</c>: through a real operator
/// service to a real agent, with the answers and errors they have on the server host, the server's roles applied.
/// </summary>
public sealed class McpRemoteFileToolTests : IAsyncLifetime
{
    private readonly RemoteRegistryHarness _hub = new();
    private readonly CancellationTokenSource _stop = new();
    private McpFleet? _mcp;
    private McpClient _client = null!;
    private Task? _mcpServer;

    public async Task InitializeAsync()
    {
        await _hub.StartAsync();
        var logs = StderrLoggerProvider.CreateFactory(Microsoft.Extensions.Logging.LogLevel.Warning, TextWriter.Null);
        _mcp = new McpFleet(_hub.Server(Surfaces.Mcp), new McpServerSettings { AllowedLocalDirectories = [_hub.LocalDir] }, logs);
        var toServer = new Pipe();
        var toClient = new Pipe();
        _mcpServer = Task.Run(() => EphMcpServer.RunStreamAsync(_mcp, toServer.Reader.AsStream(), toClient.Writer.AsStream(), _stop.Token));
        _client = await McpClient.CreateAsync(new StreamClientTransport(toServer.Writer.AsStream(), toClient.Reader.AsStream()));
    }

    public async Task DisposeAsync()
    {
        await _client.DisposeAsync();
        await _stop.CancelAsync();
        try
        {
            await (_mcpServer ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (OperationCanceledException)
        {
        }

        if (_mcp is not null)
        {
            await _mcp.DisposeAsync();
        }

        await _hub.DisposeAsync();
    }

    [Fact]
    public async Task WriteReadAndList_GoThroughTheServer_RecordedAsMcpOverSsh()
    {
        var path = Path.Combine(_hub.RemoteDir, "conf", "app.ini");
        var written = (await _client.CallAsync("write_file", new { path, content = "name = web-01\n", client_id = "web-01" })).Ok();
        Assert.True(written.GetProperty("created").GetBoolean());
        Assert.Equal("name = web-01\n", File.ReadAllText(path));

        var read = (await _client.CallAsync("read_file", new { path, client_id = "web-01" })).Ok();
        Assert.Equal("name = web-01\n", read.GetProperty("content").GetString());
        Assert.Equal(written.GetProperty("sha256").GetString(), read.GetProperty("sha256").GetString());

        var listed = (await _client.CallAsync("list_files", new { path = Path.GetDirectoryName(path), client_id = "web-01" })).Ok();
        Assert.Equal("app.ini", listed.GetProperty("entries")[0].GetProperty("name").GetString());

        var recorded = _hub.Registry.QueryHistory(new HistoryQuery { Operations = ["write_file", "read_file", "list_files"] });
        Assert.Equal(3, recorded.Count);
        Assert.All(recorded, e => Assert.Equal(("mcp+ssh", "operator"), (e.Surface, e.Role)));
    }

    [Fact]
    public async Task TheAgentsRefusals_AreTheToolErrorsOfTheServerHost()
    {
        (await _client.CallAsync("read_file", new { path = Path.Combine(_hub.RemoteDir, "nope"), client_id = "web-01" })).Error(ToolErrorCodes.NotFound);
        (await _client.CallAsync("read_file", new { path = "/etc/hostname", client_id = "web-01" })).Error(ToolErrorCodes.PathDenied);
        (await _client.CallAsync("list_files", new { path = "/etc", client_id = "web-01" })).Error(ToolErrorCodes.PathDenied);
        (await _client.CallAsync("read_file", new { path = "/tmp/x", client_id = "nosuch" })).Error(ToolErrorCodes.ClientNotFound);
    }

    [Fact]
    public async Task AReadersWrite_IsForbidden_NamingTheRole_AndNothingIsWritten()
    {
        _hub.Role = OperatorRole.Reader;
        var path = Path.Combine(_hub.RemoteDir, "reader.txt");
        var refused = (await _client.CallAsync("write_file", new { path, content = "x", client_id = "web-01" })).Error(ToolErrorCodes.Forbidden);
        Assert.Equal("operator", refused.GetProperty("needs").GetString());
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task RateLimitStats_ComeFromTheServersRegistry()
    {
        var stats = (await _client.CallAsync("get_rate_limit_stats", new { uuid = "web-01" })).Ok();
        Assert.Equal(_hub.Client.Uuid, stats.GetProperty("uuid").GetString());
        Assert.Equal("web-01", stats.GetProperty("display_name").GetString());
        Assert.True(stats.GetProperty("stats").GetProperty("rpm_limit").GetInt32() > 0);
        (await _client.CallAsync("get_rate_limit_stats", new { uuid = "nosuch" })).Error(ToolErrorCodes.ClientNotFound);
    }
}
