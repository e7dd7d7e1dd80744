using System.CommandLine;
using System.Net.Sockets;
using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>
/// eph-server with --server: the verbs run through a real operator service (the hub's, over a socket pair, in place
/// of ssh), with the output and exit codes they have on the server host; nothing touches a local registry.
/// </summary>
public sealed class RemoteCliTests : IAsyncLifetime, IClassFixture<EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture>
{
    private static readonly HostKey Pinned = HostKey.Parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTPVXin3yReBUrMsx3e6r5tVwi0q6O18ap4D3rqJxPX");

    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-rcli-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly CancellationTokenSource _stop = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private OperatorRole _role = OperatorRole.Operator;
    private Socket? _serverSide;
    private Socket? _clientSide;
    private Task? _serving;
    private int _localServices;
    private RemoteRequest? _asked;

    private readonly EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture _s3;

    public RemoteCliTests(EtPhoneHome.Tests.Unit.Exchange.S3ServersFixture s3)
    {
        _s3 = s3;
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
        _fleet.AddClient("9b1c0000-0003", "db-01", false, 0, "db");
    }

    public async Task InitializeAsync()
    {
        (_clientSide, _serverSide) = await EtPhoneHome.Tests.Unit.Hub.UnixSocketPair.ConnectAsync(_dir);
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, _role, "10.0.0.5"))
        {
            CommandTransport = _ => _transport,
            HostName = "hub-test",
            ExchangeConnector = guard => new EtPhoneHome.Core.Exchange.ExchangeClient(_s3.Lenient.Settings, guard),
        };
        _serving = service.ServeAsync(new NetworkStream(_serverSide, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", _role, "10.0.0.5"), _stop.Token);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _clientSide?.Dispose();
        if (_serving is not null)
        {
            await _serving.WaitAsync(TimeSpan.FromSeconds(20));
        }

        Directory.Delete(_dir, recursive: true);
    }

    private Task<int> RunAsync(params string[] args)
    {
        var root = (EphRootCommand)Program.BuildRoot(_ =>
        {
            Interlocked.Increment(ref _localServices);
            throw new InvalidOperationException("a remote verb opened local services");
        });
        root.Prompt = OperatorPrompt.None;
        root.Environment = name => name == ConnectionProfile.DirectoryVariable ? Path.Combine(_dir, "profile") : null;
        root.RemoteConnector = (request, _, _, _) =>
        {
            _asked = request;
            return Task.FromResult(new RemoteServer(ServerAddress.Parse(request.Server), Pinned, async ct =>
            {
                var stream = new NetworkStream(_clientSide!, ownsSocket: false);
                return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), request.Surface, ct);
            }));
        };
        return root.Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });
    }

    [Fact]
    public async Task Clients_SearchesThroughTheServer_WithTheLocalTableAndJson()
    {
        Assert.Equal(0, await RunAsync("--server", "ops@hub.example:2222", "clients", "--tag", "web", "--json"));
        var lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(["web-01", "web-02"], lines.Select(l => JsonDocument.Parse(l).RootElement.GetProperty("display_name").GetString()).Order());
        Assert.Equal("ops@hub.example:2222", _asked!.Server);
        Assert.Equal(Surfaces.Cli, _asked.Surface);
        Assert.Equal(0, _localServices);
    }

    [Fact]
    public async Task Clients_ANameThatMatchesNothing_ExitsOneLikeLocally()
    {
        Assert.Equal(1, await RunAsync("clients", "--server", "hub", "--name", "nosuch"));
        Assert.Contains("no client named 'nosuch'", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Exec_StreamsOneBlockPerTarget_AndExitsOneWhenAnyFailed()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "one"));
        _transport.Answer("web-02", FakeTransport.Exit(3, "two"));
        Assert.Equal(1, await RunAsync("--server", "hub", "exec", "--tag", "web", "--", "uptime"));
        var text = _out.ToString();
        Assert.Contains("=== client 'web-01'", text, StringComparison.Ordinal);
        Assert.Contains("one", text, StringComparison.Ordinal);
        Assert.Contains("(exit 3)", text, StringComparison.Ordinal);
        Assert.Equal(2, _transport.Calls);
        Assert.Equal(0, _localServices);
    }

    [Fact]
    public async Task Exec_AllSucceeded_ExitsZero_WithJsonLines()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "a"));
        _transport.Answer("web-02", FakeTransport.Exit(0, "b"));
        Assert.Equal(0, await RunAsync("--server", "hub", "exec", "--tag", "web", "--json", "--", "true"));
        var lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.All(lines, l => Assert.Equal("succeeded", JsonDocument.Parse(l).RootElement.GetProperty("status").GetString(), ignoreCase: true));
    }

    [Fact]
    public async Task Exec_AnUnknownClient_ExitsTwo_AndNothingRuns()
    {
        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("--server", "hub", "exec", "--client", "nosuch", "--", "true"));
        Assert.Contains("nosuch", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task Exec_AsAReader_IsRefused_WithTheRoleNamed_AndNothingRuns()
    {
        _role = OperatorRole.Reader;
        Assert.Equal(RemoteCli.Forbidden, await RunAsync("--server", "hub", "exec", "--all", "--", "rm -rf /tmp/x"));
        Assert.Contains("operator role", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, _transport.Calls);
        Assert.Equal("", _out.ToString());
    }

    [Fact]
    public async Task Exec_TheConnectionDropsMidway_EveryTargetStillGetsALine()
    {
        var never = new TaskCompletionSource();
        _transport.Answer("web-01", FakeTransport.Exit(0, "done"));
        _transport.Hold("web-02", never.Task);
        var output = new DroppingWriter(_out, "=== client 'web-01'", () => _clientSide!.Shutdown(SocketShutdown.Both));
        var root = (EphRootCommand)Program.BuildRoot(_ => throw new InvalidOperationException("local"));
        root.Environment = _ => null;
        root.RemoteConnector = (request, _, _, _) => Task.FromResult(new RemoteServer(ServerAddress.Parse(request.Server), Pinned, async ct =>
        {
            var stream = new NetworkStream(_clientSide!, ownsSocket: false);
            return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), request.Surface, ct);
        }));
        var code = await root.Parse(["--server", "hub", "exec", "--tag", "web", "--", "deploy"])
            .InvokeAsync(new InvocationConfiguration { Output = output, Error = _err }).WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(1, code);
        var text = _out.ToString();
        Assert.Contains("=== client 'web-01'", text, StringComparison.Ordinal);
        Assert.Contains("=== client 'web-02'", text, StringComparison.Ordinal);
        Assert.Contains(RemoteOperator.ConnectionLostMessage, text, StringComparison.Ordinal);
        never.TrySetResult();
    }

    [Fact]
    public async Task AVerbWithNoRemoteOperation_ExitsTwo_AndCreatesNothingHere()
    {
        var data = Path.Combine(_dir, "data");
        var backup = Path.Combine(_dir, "backup.db");
        Assert.Equal(2, await RunAsync("--server", "hub", "init", "--data", data));
        Assert.Contains("runs on the server host", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(2, await RunAsync("--server", "hub", "backup", "--to", backup));
        Assert.Equal(2, await RunAsync("--server", "hub", "webhooks", "test"));
        Assert.False(Directory.Exists(data));
        Assert.False(File.Exists(backup));
        Assert.Equal(0, _localServices);
        Assert.Null(_asked); // not even a connection
    }

    [Fact]
    public async Task TheExchangeVerbs_RunThroughTheServer_WithTheirLocalOutputAndExitCodes()
    {
        var source = Path.Combine(_dir, "a b.txt");
        await File.WriteAllTextAsync(source, "exchanged through the server");

        Assert.Equal(0, await RunAsync("--server", "hub", "exchange", "upload", source, "--dest-client", "web-01", "--json"));
        var row = JsonDocument.Parse(_out.ToString().Trim()).RootElement;
        var transferId = row.GetProperty("transfer_id").GetString()!;
        Assert.Equal("3f2a9c1e-0001", row.GetProperty("dest_client").GetString());
        Assert.DoesNotContain(" ", row.GetProperty("download_url").GetString(), StringComparison.Ordinal);

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("--server", "hub", "exchange", "list", "--dest-client", "web-01", "--json"));
        Assert.Contains(transferId, _out.ToString(), StringComparison.Ordinal);

        var target = Path.Combine(_dir, "back.txt");
        Assert.Equal(0, await RunAsync("--server", "hub", "exchange", "download", "--transfer-id", transferId, target));
        Assert.Equal("exchanged through the server", await File.ReadAllTextAsync(target));
        Assert.Contains("(verified)", _out.ToString(), StringComparison.Ordinal);

        Assert.Equal(0, await RunAsync("--server", "hub", "exchange", "delete", transferId, "--source-client", "server"));
        Assert.Equal(3, await RunAsync("--server", "hub", "exchange", "delete", transferId, "--source-client", "server"));
        Assert.Equal(1, await RunAsync("--server", "hub", "exchange", "download", "--transfer-id", transferId, Path.Combine(_dir, "gone.txt")));

        // A collection into a directory that does not exist: the client's row with the local fault, as on the server host.
        _out.GetStringBuilder().Clear();
        Assert.Equal(1, await RunAsync("--server", "hub", "exchange", "download", "--client", "web-01", "--remote-path", "/var/log/x.log", Path.Combine(_dir, "no", "such", "x.log"), "--json"));
        var collected = JsonDocument.Parse(_out.ToString().Trim()).RootElement;
        Assert.Equal("error", collected.GetProperty("status").GetString());
        Assert.Equal("3f2a9c1e-0001", collected.GetProperty("uuid").GetString());

        // An unknown destination refuses before anything is uploaded; nothing local was ever opened.
        var before = _fleet.Audit.Count(a => a.Operation == "exchange_upload");
        Assert.Equal(2, await RunAsync("--server", "hub", "exchange", "upload", source, "--dest-client", "nosuch"));
        Assert.Contains("nosuch", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(before, _fleet.Audit.Count(a => a.Operation == "exchange_upload"));
        Assert.Equal(0, _localServices);
    }

    [Fact]
    public async Task AReader_IsRefusedAnExchangeUpload_WithExit77()
    {
        _role = OperatorRole.Reader;
        var source = Path.Combine(_dir, "r.txt");
        await File.WriteAllTextAsync(source, "no");

        Assert.Equal(77, await RunAsync("--server", "hub", "exchange", "upload", source));

        Assert.Contains("operator", _err.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain(_fleet.Audit, a => a.Operation == "exchange_upload");
    }

    [Fact]
    public async Task TheEnvironment_NamesTheDefaultServer()
    {
        var root = (EphRootCommand)Program.BuildRoot(_ => throw new InvalidOperationException("local"));
        root.Environment = name => name == RemoteCli.ServerVariable ? "ops@hub" : null;
        root.RemoteConnector = (request, _, _, _) => Task.FromResult(new RemoteServer(ServerAddress.Parse(request.Server), Pinned, async ct =>
        {
            _asked = request;
            var stream = new NetworkStream(_clientSide!, ownsSocket: false);
            return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), request.Surface, ct);
        }));
        Assert.Equal(0, await root.Parse(["clients"]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err }));
        Assert.Equal("ops@hub", _asked!.Server);
        Assert.Contains("web-01", _out.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Keys_Approve_AreAdminOnly_TheMessageNamesTheRole()
    {
        Assert.Equal(0, await RunAsync("--server", "hub", "keys", "--json"));
        Assert.Equal(RemoteCli.Forbidden, await RunAsync("--server", "hub", "approve", "SHA256:whatever"));
        Assert.Contains("admin", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task History_And_Status_And_Set_GoThroughTheServer()
    {
        Assert.Equal(0, await RunAsync("--server", "hub", "set", "web-01", "--purpose", "front end", "--json"));
        Assert.Equal("front end", _fleet.Stores().Clients.QueryClients(new ClientQuery { Names = ["web-01"] }).Single().Purpose);
        _fleet.RecordAudit(new AuditEntry { Uuid = "3f2a9c1e-0001", Operation = "run_command", Status = "succeeded", Actor = "bob", Surface = "cli", At = DateTimeOffset.UtcNow });
        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("--server", "hub", "history", "--client", "web-01", "--json"));
        var entry = JsonDocument.Parse(_out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).First()).RootElement;
        Assert.Equal("run_command", entry.GetProperty("operation").GetString());
        Assert.Equal("web-01", entry.GetProperty("client").GetString());
        Assert.Equal(2, await RunAsync("--server", "hub", "history", "--client", "nosuch"));
        Assert.Equal(0, _localServices);
    }

    [Fact]
    public async Task Remove_WithoutYesAndNoOneToAsk_Refuses_AndChangesNothing()
    {
        _role = OperatorRole.Admin;
        Assert.Equal(2, await RunAsync("--server", "hub", "remove", "web-01"));
        Assert.Contains("--yes", _err.ToString(), StringComparison.Ordinal);
        Assert.Single(_fleet.Stores().Clients.QueryClients(new ClientQuery { Names = ["web-01"] }));
    }

    [Fact]
    public async Task ADataDirectoryWithServer_IsRefused()
    {
        Assert.Equal(2, await RunAsync("--server", "hub", "clients", "--data", "/nonexistent"));
        Assert.Contains("--data", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AConnectionFailure_IsOneLine_WithItsOwnExitCode()
    {
        var root = (EphRootCommand)Program.BuildRoot(_ => throw new InvalidOperationException("local"));
        root.Environment = _ => null;
        root.RemoteConnector = (_, _, _, _) => throw new HostKeyNotTrustedException("no host key is pinned for hub:22; pass --host-key-fingerprint");
        Assert.Equal(RemoteCli.ConnectionFailed, await root.Parse(["--server", "hub", "clients"]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err }));
        Assert.Equal("eph-server clients: no host key is pinned for hub:22; pass --host-key-fingerprint", _err.ToString().Trim());
    }

    [Fact]
    public async Task Connect_SaysWhoTheServerThinksWeAre_AndSavesTheConnection_ThenItsNameWorks()
    {
        Assert.Equal(0, await RunAsync("connect", "--server", "ops@hub.example:2222", "--name", "prod"));
        Assert.Contains("as alice, role operator", _out.ToString(), StringComparison.Ordinal);
        var saved = new SavedConnections(Path.Combine(_dir, "profile")).Get("prod");
        Assert.Equal("ops@hub.example:2222", saved!.Address.ToString());
        Assert.Equal(0, await RunAsync("connections"));
        Assert.Contains("prod", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("connections", "remove", "prod"));
        Assert.Null(new SavedConnections(Path.Combine(_dir, "profile")).Get("prod"));
        Assert.Equal(1, await RunAsync("connections", "forget-host-key", "hub.example:2222"));
        Assert.Contains("No host key is pinned for hub.example:2222", _out.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public void ASavedName_ResolvesToItsAddress_AnythingElseIsParsedAsOne()
    {
        var saved = new SavedConnections(Path.Combine(_dir, "profile"));
        saved.Save("prod", ServerAddress.Parse("ops@hub.example:2222"));
        Assert.Equal("ops@hub.example:2222", RemoteCli.ResolveAddress("prod", null, saved).ToString());
        Assert.Equal("staging.example", RemoteCli.ResolveAddress("staging.example", null, saved).ToString());
        Assert.Throws<FormatException>(() => RemoteCli.ResolveAddress("-oProxyCommand=x", null, saved));
    }

    [Fact]
    public async Task NoPin_NoFingerprint_NoTerminal_IsRefused_SayingWhatToPass()
    {
        var root = (EphRootCommand)Program.BuildRoot(_ => throw new InvalidOperationException("local"));
        root.Prompt = OperatorPrompt.None;
        root.Environment = name => name == ConnectionProfile.DirectoryVariable ? Path.Combine(_dir, "profile") : null;
        Assert.Equal(RemoteCli.ConnectionFailed, await root.Parse(["--server", "ops@hub.example", "clients"]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err }));
        Assert.Contains("--host-key-fingerprint", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(new HostKeyPins(Path.Combine(_dir, "profile")).List());
    }

    /// <summary>Writes through; runs <paramref name="onMatch"/> once after text containing <paramref name="marker"/>.</summary>
    private sealed class DroppingWriter(StringWriter inner, string marker, Action onMatch) : StringWriter
    {
        private bool _done;

        public override Task WriteAsync(string? value)
        {
            inner.Write(value);
            if (!_done && value?.Contains(marker, StringComparison.Ordinal) == true)
            {
                _done = true;
                onMatch();
            }

            return Task.CompletedTask;
        }

        public override void Write(string? value) => inner.Write(value);

        public override void WriteLine(string? value) => inner.WriteLine(value);

        public override Task WriteLineAsync(string? value)
        {
            inner.WriteLine(value);
            return Task.CompletedTask;
        }
    }
}
