using EtPhoneHome.Core.Operations;
using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>eph-server clients, set, remove and history over a real SQLite registry.</summary>
public sealed class RegistryVerbsTests : IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli));

    private readonly TempData _temp = new();
    private readonly SqliteRegistry _r;
    private OperatorPrompt _prompt = OperatorPrompt.None;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private readonly ClientRecord _web;
    private readonly ClientRecord _db;

    public RegistryVerbsTests()
    {
        _r = SqliteRegistry.Open(_temp.Dir);
        _r.SetSetting(SqliteRegistry.HeartbeatSetting, "3600");
        _openRegistry = _ => RegistryStores.Of(SqliteRegistry.Open(_temp.Dir));
        _web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01", tags: ["prod", "eu-west"], caps: ["docker", "git"]) with { Purpose = "Frontend" });
        _db = Keys.Admit(_r, Keys.B, Keys.Identity(name: "db-01", tags: ["staging"], caps: ["git"]) with { Purpose = "Billing DB" });
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Root().Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    private System.CommandLine.RootCommand Root()
    {
        var root = (EphRootCommand)Program.BuildRoot(Services);
        root.Prompt = _prompt;
        return root;
    }

    private List<JsonElement> JsonLines() => _out.ToString()
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static string[] Fields(JsonElement e) => e.EnumerateObject().Select(p => p.Name).ToArray();

    [Fact]
    public async Task ClientsJson_HasEveryIssueField()
    {
        Assert.Equal(0, await RunAsync("clients", "--json", "--name", "web-01"));

        var row = Assert.Single(JsonLines());
        Assert.Equal(
            ["uuid", "display_name", "hostname", "platform", "online", "tunnel_port", "tags", "capabilities", "key_fingerprint", "last_seen",
             "purpose", "key_mismatch", "username", "first_seen", "connection_count", "allowed_paths", "webhook_url", "rate_limit_rpm",
             "rate_limit_concurrent", "agent_version"],
            Fields(row));
        Assert.Equal(JsonValueKind.Null, row.GetProperty("allowed_paths").ValueKind);
        Assert.Equal(1, row.GetProperty("connection_count").GetInt32());
        Assert.Equal("svc", row.GetProperty("username").GetString());
    }

    [Theory]
    [InlineData(new[] { "--tag", "prod", "--tag", "EU-WEST" }, "web-01")]
    [InlineData(new[] { "--capability", "git" }, "db-01,web-01")]
    [InlineData(new[] { "--capability", "git", "--capability", "docker" }, "web-01")]
    [InlineData(new[] { "--query", "billing" }, "db-01")]
    [InlineData(new[] { "--purpose", "FRONT" }, "web-01")]
    [InlineData(new[] { "--name", "*-01", "--tag", "staging" }, "db-01")]
    [InlineData(new[] { "--online" }, "")]
    [InlineData(new[] { "--tag", "nothing" }, "")]
    public async Task Clients_FiltersIntersect(string[] filters, string expected)
    {
        Assert.Equal(0, await RunAsync(["clients", "--json", .. filters]));

        Assert.Equal(expected, string.Join(",", JsonLines().Select(r => r.GetProperty("display_name").GetString())));
    }

    [Fact]
    public async Task Clients_UnknownLiteralName_Exit1_OthersStillPrinted()
    {
        Assert.Equal(1, await RunAsync("clients", "--name", "ghost", "--name", "db-01"));

        Assert.Contains("db-01", _out.ToString());
        Assert.Contains("no client named 'ghost'", _err.ToString());
    }

    [Fact]
    public async Task Set_AppliesEdits_AndPrintsTheClientAsJson()
    {
        Assert.Equal(0, await RunAsync("set", "web-01", "--display-name", "web-01-fra", "--add-tag", "frankfurt", "--remove-tag", "PROD",
            "--allowed-path", "/srv", "--allowed-path", "/var/log", "--webhook-url", "https://hooks.example/x", "--rate-limit-rpm", "120",
            "--rate-limit-concurrent", "4", "--purpose", "", "--json"));

        var row = Assert.Single(JsonLines());
        Assert.Equal("web-01-fra", row.GetProperty("display_name").GetString());
        Assert.Equal(["eu-west", "frankfurt"], row.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(["/srv", "/var/log"], row.GetProperty("allowed_paths").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(120, row.GetProperty("rate_limit_rpm").GetInt32());
        Assert.Equal(4, row.GetProperty("rate_limit_concurrent").GetInt32());
        Assert.Equal(JsonValueKind.Null, row.GetProperty("purpose").ValueKind);
        var entry = _r.QueryHistory(new HistoryQuery())[0];
        Assert.Equal(("update_client", Environment.UserName, "cli"), (entry.Operation, entry.Actor, entry.Surface));
    }

    [Fact]
    public async Task Set_ClearsPathsAndWebhook_ByUuid()
    {
        _r.UpdateClient(_db.Uuid, new ClientUpdate { AllowedPaths = ["/srv"], WebhookUrl = "https://h/x" }, "t");

        Assert.Equal(0, await RunAsync("set", _db.Uuid, "--clear-allowed-paths", "--webhook-url", ""));

        var db = _r.GetClient(_db.Uuid)!;
        Assert.Null(db.AllowedPaths);
        Assert.Null(db.WebhookUrl);
        Assert.Contains("allowed paths all, webhook global", _out.ToString());
    }

    [Theory]
    [InlineData("--rate-limit-rpm", "0", "--rate-limit-rpm must be between 1 and 1000")]
    [InlineData("--rate-limit-rpm", "1001", "--rate-limit-rpm must be between 1 and 1000")]
    [InlineData("--rate-limit-concurrent", "101", "--rate-limit-concurrent must be between 1 and 100")]
    public async Task Set_OutOfRangeLimit_IsRefusedBeforeAnythingChanges(string option, string value, string message)
    {
        Assert.NotEqual(0, await RunAsync("set", "web-01", option, value));

        Assert.Contains(message, _err.ToString() + _out.ToString());
        Assert.Null(_r.GetClient(_web.Uuid)!.RateLimitRpm);
        Assert.Empty(_r.QueryHistory(new HistoryQuery { Operations = ["update_client"] }));
    }

    [Fact]
    public async Task Set_RegistryLimit_NamesTheField()
    {
        Assert.Equal(1, await RunAsync("set", "web-01", "--display-name", new string('n', 101)));

        Assert.Contains("display_name must be 1 to 100 characters", _err.ToString());
        Assert.Equal("web-01", _r.GetClient(_web.Uuid)!.DisplayName);
    }

    [Fact]
    public async Task Set_PathsSetAndCleared_IsAUsageError()
    {
        Assert.NotEqual(0, await RunAsync("set", "web-01", "--allowed-path", "/srv", "--clear-allowed-paths"));
        Assert.Contains("either --allowed-path or --clear-allowed-paths", _err.ToString() + _out.ToString());
    }

    [Fact]
    public async Task Set_AmbiguousOrUnknownName_Exit1()
    {
        Assert.Equal(1, await RunAsync("set", "*-01", "--purpose", "x"));
        Assert.Contains("matches 2 clients", _err.ToString());
        Assert.Equal(1, await RunAsync("set", "ghost", "--purpose", "x"));
        Assert.Contains("no client named 'ghost'", _err.ToString());
    }

    [Fact]
    public async Task Remove_WithoutYes_NonInteractive_RefusesAndChangesNothing()
    {
        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("remove", "web-01"));

        Assert.Contains("add --yes", _err.ToString());
        Assert.Contains("nothing was changed", _err.ToString());
        Assert.Null(_r.GetClient(_web.Uuid)!.RemovedAt);
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
    }

    [Fact]
    public async Task Remove_Interactive_AsksAndHonoursNo()
    {
        _prompt = new OperatorPrompt(() => true, () => "n");

        Assert.Equal(1, await RunAsync("remove", "web-01"));

        Assert.Contains("[y/N]", _out.ToString());
        Assert.Null(_r.GetClient(_web.Uuid)!.RemovedAt);
    }

    [Fact]
    public async Task Remove_Yes_Json_RevokesAndHides_HistoryStays()
    {
        var session = _r.OpenSession(_web.Uuid, Keys.A, "gw", 40001, new byte[32], null, null);
        _r.MarkSessionOnline(session.Id);

        Assert.Equal(0, await RunAsync("remove", "web-01", "--yes", "--json"));

        var row = Assert.Single(JsonLines());
        Assert.Equal(["uuid", "display_name", "already_removed", "revoked_fingerprints", "closed_sessions", "disconnected", "removed_at"], Fields(row));
        Assert.Equal(_web.Uuid, row.GetProperty("uuid").GetString());
        Assert.Equal(1, row.GetProperty("closed_sessions").GetInt32());
        Assert.Equal([Keys.A], row.GetProperty("revoked_fingerprints").EnumerateArray().Select(f => f.GetString()));
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.A)!.Status);

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("clients", "--json"));
        Assert.Equal(["db-01"], JsonLines().Select(r => r.GetProperty("display_name").GetString()));

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("history", "--client", _web.Uuid, "--json"));
        Assert.Equal("remove_client", JsonLines()[0].GetProperty("operation").GetString());
        Assert.Equal("web-01", JsonLines()[0].GetProperty("client").GetString());
    }

    [Fact]
    public async Task HistoryJson_HasTheDocumentedFields_NewestFirst_Filtered_Paged()
    {
        for (var i = 0; i < 5; i++)
        {
            _r.RecordAudit(new AuditEntry { Operation = "run_command", Uuid = _db.Uuid, Actor = "bob", Surface = "pwsh", Status = i == 3 ? "failed" : "succeeded", Detail = $"cmd {i}", DurationMs = 10 + i });
        }

        Assert.Equal(0, await RunAsync("history", "--json", "--client", "db-01", "--operation", "run_command", "--limit", "2", "--skip", "1"));

        var rows = JsonLines();
        Assert.Equal(["at", "uuid", "client", "operation", "status", "actor", "surface", "duration_ms", "detail", "role", "source"], Fields(rows[0]));
        Assert.Equal(["cmd 3", "cmd 2"], rows.Select(r => r.GetProperty("detail").GetString()));
        Assert.Equal("db-01", rows[0].GetProperty("client").GetString());
        Assert.Equal(13, rows[0].GetProperty("duration_ms").GetInt64());
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", rows[0].GetProperty("at").GetString());

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("history", "--json", "--status", "FAILED", "--since", "1h"));
        Assert.Equal(["cmd 3"], JsonLines().Select(r => r.GetProperty("detail").GetString()));

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("history", "--until", "2000-01-01T00:00:00Z"));
        Assert.Contains("No history entries.", _out.ToString());
    }

    [Fact]
    public async Task History_BadInput_IsRefusedWithTheReason()
    {
        Assert.NotEqual(0, await RunAsync("history", "--since", "yesterday"));
        Assert.Contains("90m", _err.ToString() + _out.ToString());
        Assert.NotEqual(0, await RunAsync("history", "--limit", "0"));
        Assert.Contains("--limit must be between 1 and 10000", _err.ToString() + _out.ToString());
        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("history", "--client", "ghost"));
        Assert.Contains("no client named 'ghost'", _err.ToString());
    }

    [Fact]
    public async Task Approve_WithoutMismatch_SaysHadNoKeyMismatch_AndRecordsCli()
    {
        Assert.Equal(0, await RunAsync("approve", _web.Uuid));

        Assert.Contains($"Client {_web.Uuid} had no key mismatch", _out.ToString());
        var entry = _r.QueryHistory(new HistoryQuery { Operations = ["accept_key"] })[0];
        Assert.Equal(("unchanged", "cli", Environment.UserName), (entry.Status, entry.Surface, entry.Actor));
    }

    [Fact]
    public void RegistryVerbs_AreRegistered_WithDataAndJson()
    {
        var root = Program.BuildRoot();
        foreach (var verb in new[] { "clients", "set", "remove", "history" })
        {
            var cmd = Assert.Single(root.Subcommands, c => c.Name == verb);
            Assert.Contains(cmd.Options, o => o.Name == "--data");
            Assert.Contains(cmd.Options, o => o.Name == "--json");
        }

        Assert.Contains(root.Subcommands.Single(c => c.Name == "remove").Options, o => o.Name == "--yes");
        Assert.Equal(root.Subcommands.Count, root.Subcommands.Select(c => c.Name).Distinct().Count());
    }
}
