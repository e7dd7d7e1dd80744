using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Mcp;
using EtPhoneHome.Tests.Unit.Operations;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>
/// The MCP tools of <c>eph-server mcp --server</c>: an <see cref="McpFleet"/> over a <see cref="RemoteServer"/> reaching a
/// real operator service (the hub's, over a socket pair). The same tool names and answers as on the server host; the
/// server's roles apply; tools with no remote operation answer NOT_AVAILABLE_REMOTELY.
/// </summary>
public sealed class McpRemoteToolTests : IAsyncLifetime, IClassFixture<EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture>
{
    private static readonly HostKey Pinned = HostKey.Parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTPVXin3yReBUrMsx3e6r5tVwi0q6O18ap4D3rqJxPX");

    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-rmcp-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly CancellationTokenSource _stop = new();
    private OperatorRole _role = OperatorRole.Operator;
    private Socket? _clientSide;
    private Task? _serving;
    private McpFleet? _mcp;
    private McpClient _client = null!;
    private Task? _mcpServer;

    private readonly EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture _s3;

    public McpRemoteToolTests(EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture s3)
    {
        _s3 = s3;
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
        _fleet.AddClient("9b1c0000-0003", "db-01", false, 0, "db");
    }

    public async Task InitializeAsync()
    {
        (_clientSide, var serverSide) = await EtPhoneHome.Tests.Unit.Hub.UnixSocketPair.ConnectAsync(_dir);
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, _role, "10.0.0.5"))
        {
            CommandTransport = _ => _transport,
            HostName = "hub-test",
            // The bucket's credentials are the hub's; the MCP process has none (its own settings throw).
            ExchangeConnector = guard => new EtPhoneHome.Core.Exchange.ExchangeClient(_s3.Lenient.Settings, guard),
        };
        _serving = service.ServeAsync(new NetworkStream(serverSide, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", _role, "10.0.0.5"), _stop.Token);
        var remote = new RemoteServer(ServerAddress.Parse("ops@hub"), Pinned, async ct =>
        {
            var stream = new NetworkStream(_clientSide!, ownsSocket: false);
            return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.Mcp, ct);
        });
        var logs = StderrLoggerProvider.CreateFactory(Microsoft.Extensions.Logging.LogLevel.Warning, TextWriter.Null);
        _mcp = new McpFleet(remote, new McpServerSettings { AllowedLocalDirectories = [_dir] }, logs);
        var toServer = new Pipe();
        var toClient = new Pipe();
        _mcpServer = Task.Run(() => EphMcpServer.RunStreamAsync(_mcp, toServer.Reader.AsStream(), toClient.Writer.AsStream(), _stop.Token));
        _client = await McpClient.CreateAsync(new StreamClientTransport(toServer.Writer.AsStream(), toClient.Reader.AsStream()));
    }

    public async Task DisposeAsync()
    {
        await (_client?.DisposeAsync() ?? ValueTask.CompletedTask);

        await _stop.CancelAsync();
        _clientSide?.Dispose();
        foreach (var task in new[] { _serving, _mcpServer })
        {
            try
            {
                await (task ?? Task.CompletedTask).WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (OperationCanceledException)
            {
            }
        }

        if (_mcp is not null)
        {
            await _mcp.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public async Task TheToolCatalog_IsTheSameAsOnTheServerHost()
    {
        await using var local = new McpHarness(new FakeFleet(), new FakeTransport());
        var localClient = await local.ConnectAsync();
        var here = (await localClient.ListToolsAsync()).Select(t => (t.Name, Schema: t.JsonSchema.GetRawText())).OrderBy(t => t.Name).ToList();
        var there = (await _client.ListToolsAsync()).Select(t => (t.Name, Schema: t.JsonSchema.GetRawText())).OrderBy(t => t.Name).ToList();
        Assert.Equal(here, there);
    }

    [Fact]
    public async Task ListAndFindClients_GoThroughTheServer()
    {
        var list = (await _client.CallAsync("list_clients")).Ok();
        Assert.Equal(3, list.GetProperty("total_count").GetInt32());
        Assert.Equal(2, list.GetProperty("online_count").GetInt32());
        var found = (await _client.CallAsync("find_client", new { tags = new[] { "web" } })).Ok();
        Assert.Equal(2, found.GetProperty("clients").GetArrayLength());
        (await _client.CallAsync("select_client", new { client_id = "nosuch" })).Error(ToolErrorCodes.ClientNotFound);
    }

    [Fact]
    public async Task RunCommand_OnEveryOnlineClient_AndOfflineIsClientOffline()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "one"));
        _transport.Answer("web-02", FakeTransport.Exit(2, "two"));
        var one = (await _client.CallAsync("run_command", new { cmd = "uptime", client_id = "web-01" })).Ok();
        Assert.Equal(0, one.GetProperty("exit_code").GetInt32());
        Assert.Equal("one", one.GetProperty("stdout").GetString());
        var two = (await _client.CallAsync("run_command", new { cmd = "uptime", client_id = "web-02" })).Ok();
        Assert.Equal(2, two.GetProperty("exit_code").GetInt32());
        (await _client.CallAsync("run_command", new { cmd = "uptime", client_id = "db-01" })).Error(ToolErrorCodes.ClientOffline);
        Assert.Equal(2, _transport.Calls);
    }

    [Fact]
    public async Task RunFleetCommand_OneResultPerTarget()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "a"));
        _transport.Answer("web-02", FakeTransport.Exit(0, "b"));
        var answer = (await _client.CallAsync("run_fleet_command", new { cmd = "true", tags = new[] { "web" } })).Ok();
        Assert.Equal(2, answer.GetProperty("results").GetArrayLength());
        Assert.True(answer.GetProperty("all_succeeded").GetBoolean());
        var unknown = (await _client.CallAsync("run_fleet_command", new { cmd = "true", client_ids = new[] { "nosuch" } })).Error(ToolErrorCodes.ClientNotFound);
        Assert.Equal("nosuch", unknown.GetProperty("not_found")[0].GetString());
    }

    [Fact]
    public async Task AReader_IsRefusedCommands_WithTheRoleNamed_AndNothingRuns()
    {
        _role = OperatorRole.Reader;
        var refused = (await _client.CallAsync("run_command", new { cmd = "rm -rf /tmp/x", client_id = "web-01" })).Error(ToolErrorCodes.Forbidden);
        Assert.Equal("operator", refused.GetProperty("needs").GetString());
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task History_AndUpdates_GoThroughTheServer()
    {
        var updated = (await _client.CallAsync("update_client", new { uuid = "3f2a9c1e-0001", purpose = "front end" })).Ok();
        Assert.Contains("web-01", updated.GetProperty("message").GetString(), StringComparison.Ordinal);
        Assert.Equal("front end", _fleet.Stores().Clients.GetClient("3f2a9c1e-0001")!.Purpose);
        _fleet.RecordAudit(new AuditEntry { Uuid = "3f2a9c1e-0001", Operation = "run_command", Status = "succeeded", Actor = "bob", Surface = "cli+ssh", At = DateTimeOffset.UtcNow });
        var page = (await _client.CallAsync("get_history", new { client_id = "web-01" })).Ok();
        var entry = page.GetProperty("entries").EnumerateArray().First(e => e.GetProperty("operation").GetString() == "run_command");
        Assert.Equal("web-01", entry.GetProperty("display_name").GetString());
        (await _client.CallAsync("get_history", new { client_id = "nosuch" })).Error(ToolErrorCodes.ClientNotFound);
    }

    [Fact]
    public async Task AcceptKey_IsAdminOnly_TheRoleNamed()
    {
        var refused = (await _client.CallAsync("accept_key", new { uuid = "SHA256:whatever" })).Error(ToolErrorCodes.Forbidden);
        Assert.Equal("admin", refused.GetProperty("needs").GetString());
        Assert.Equal(0, (await _client.CallAsync("list_pending_keys")).Ok().GetProperty("count").GetInt32());
    }

    [Fact]
    public void NothingLocal_IsReachable_ThroughAServer()
    {
        // A tool without a remote branch can never fall back to this machine's registry, guard or exchange settings.
        Assert.Equal(ToolErrorCodes.NotAvailableRemotely, Assert.Throws<ToolFailure>(() => _mcp!.Registry).Code);
        Assert.Equal(ToolErrorCodes.NotAvailableRemotely, Assert.Throws<ToolFailure>(() => _mcp!.ExchangeSettings()).Code);
    }

    [Fact]
    public async Task TheExchangeTools_GoThroughTheServer_TheBytesStraightToTheBucket()
    {
        var source = Path.Combine(_dir, "notes.txt");
        await File.WriteAllTextAsync(source, "from the workstation's agent");

        var upload = (await _client.CallAsync("exchange_upload", new { local_path = source, dest_client = "web-01", expires_hours = 2 })).Ok();
        var transferId = upload.GetProperty("transfer_id").GetString()!;
        Assert.Equal("3f2a9c1e-0001", upload.GetProperty("dest_client").GetProperty("uuid").GetString());
        var listed = (await _client.CallAsync("exchange_list", new { dest_client = "web-01" })).Ok();
        Assert.Contains(listed.GetProperty("transfers").EnumerateArray(), t => t.GetProperty("transfer_id").GetString() == transferId);
        var target = Path.Combine(_dir, "back.txt");
        var download = (await _client.CallAsync("exchange_download", new { download_url = upload.GetProperty("download_url").GetString(), local_path = target })).Ok();
        Assert.True(download.GetProperty("verified").GetBoolean());
        Assert.Equal("from the workstation's agent", await File.ReadAllTextAsync(target));
        (await _client.CallAsync("exchange_download", new { download_url = "http://127.0.0.1:1/elsewhere/x", local_path = Path.Combine(_dir, "x") })).Error(ToolErrorCodes.UrlNotAllowed);
        Assert.True((await _client.CallAsync("exchange_delete", new { transfer_id = transferId, source_client = "server" })).Ok().GetProperty("deleted").GetBoolean());

        // Recorded on the server, as the operator, through mcp over ssh.
        Assert.Contains(_fleet.Audit, a => a is { Operation: "exchange_upload", Actor: "alice", Surface: "mcp+ssh", Status: "succeeded" } && a.Uuid == "3f2a9c1e-0001");
        Assert.Contains(_fleet.Audit, a => a is { Operation: "exchange_delete", Actor: "alice", Status: "succeeded" });
    }

    [Fact]
    public async Task AReader_IsRefusedAnUpload_NamingTheRole()
    {
        _role = OperatorRole.Reader;
        var source = Path.Combine(_dir, "r.txt");
        await File.WriteAllTextAsync(source, "no");

        var refused = (await _client.CallAsync("exchange_upload", new { local_path = source })).Error(ToolErrorCodes.Forbidden);

        Assert.Equal("operator", refused.GetProperty("needs").GetString());
        Assert.DoesNotContain(_fleet.Audit, a => a.Operation == "exchange_upload");
    }
}
