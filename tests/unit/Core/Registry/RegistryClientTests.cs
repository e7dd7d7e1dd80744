using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>Removal, history, attributed decisions and edit limits of the SQLite registry.</summary>
public abstract class RegistryClientTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private protected readonly TempData _temp = new();
    private protected readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private protected readonly SqliteRegistry _r;

    protected RegistryClientTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir, _time);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private protected ClientRecord OnlineClient(string fingerprint, string name, int gatePid = 4242)
    {
        var client = Keys.Admit(_r, fingerprint, Keys.Identity(name: name, host: name + "-host"));
        var session = _r.OpenSession(client.Uuid, fingerprint, "gw", 40001, new byte[32], gatePid, 1);
        _r.MarkSessionOnline(session.Id);
        return _r.GetClient(client.Uuid)!;
    }

    [Fact]
    public void Remove_RevokesKey_ClosesSession_HidesClient_KeepsHistory()
    {
        var client = OnlineClient(Keys.A, "web-01");
        _r.RecordAudit(new AuditEntry { Operation = "run_command", Uuid = client.Uuid, Actor = "bob", Surface = "pwsh", Status = "succeeded" });

        var outcome = _r.RemoveClient(client.Uuid, "alice", "cli");

        Assert.False(outcome.AlreadyRemoved);
        Assert.Equal([Keys.A], outcome.RevokedFingerprints);
        var closed = Assert.Single(outcome.ClosedSessions);
        Assert.Equal(4242, closed.GatePid);
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.A)!.Status);
        Assert.Null(_r.GetOpenSession(client.Uuid));
        Assert.Empty(_r.QueryClients(new ClientQuery()));
        Assert.Empty(_r.QueryClients(new ClientQuery { Ids = [client.Uuid] }));
        var hidden = Assert.Single(_r.QueryClients(new ClientQuery { IncludeRemoved = true }));
        Assert.Equal(_time.GetUtcNow(), hidden.RemovedAt);
        Assert.False(hidden.Online);

        var history = _r.QueryHistory(new HistoryQuery { Uuids = [client.Uuid] });
        Assert.Equal(["remove_client", "run_command"], history.Select(h => h.Operation).Take(2));
        Assert.Equal(("alice", "cli", "succeeded"), (history[0].Actor, history[0].Surface, history[0].Status));
        Assert.Contains(Keys.A, history[0].Detail);
        Assert.Equal("client.disconnected", _r.ListEvents().Last().Type);
    }

    [Fact]
    public void Remove_AlsoRevokesAPendingKeyClaimingTheClient()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        Assert.True(_r.RecordPendingKey(Keys.B, null, Keys.Identity(claimed: client.Uuid)).IsMismatch);

        var outcome = _r.RemoveClient(client.Uuid, "alice", "pwsh");

        Assert.Equal([Keys.A, Keys.B], outcome.RevokedFingerprints.Order());
        Assert.Empty(_r.ListKeys(KeyStatus.Pending));
        Assert.Empty(outcome.ClosedSessions);
    }

    [Fact]
    public void Remove_Twice_IsUnchanged_AndUnknownIsNotFound()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        _r.RemoveClient(client.Uuid, "alice", "cli");

        var again = _r.RemoveClient(client.Uuid, "alice", "cli");

        Assert.True(again.AlreadyRemoved);
        Assert.Empty(again.RevokedFingerprints);
        Assert.Equal("unchanged", _r.QueryHistory(new HistoryQuery())[0].Status);
        Assert.Throws<RegistryNotFoundException>(() => _r.RemoveClient("no-such-client", "alice", "cli"));
    }

    [Fact]
    public void Removed_CannotBeEdited_ButReapprovingItsKeyBringsItBack()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(name: "kiosk"));
        _r.RemoveClient(client.Uuid, "alice", "cli");

        var edit = Assert.Throws<RegistryNotFoundException>(() => _r.UpdateClient(client.Uuid, new ClientUpdate { Purpose = "x" }, "alice", "pwsh"));
        Assert.Contains("removed", edit.Message);

        _r.ApproveKey(Keys.A, "alice", "pwsh");
        var back = _r.AdmitClient(Keys.A, Keys.Identity(name: "kiosk"));
        Assert.Equal(client.Uuid, back.Uuid);
        Assert.Null(back.RemovedAt);
        Assert.Single(_r.QueryClients(new ClientQuery()));
    }

    [Fact]
    public void KeyDecisionsAndEdits_RecordWhoAndSurface()
    {
        _r.RecordPendingKey(Keys.A, null, Keys.Identity());
        _r.ApproveKey(Keys.A, "alice", "pwsh");
        var client = _r.AdmitClient(Keys.A, Keys.Identity());
        _r.UpdateClient(client.Uuid, new ClientUpdate { AddTags = ["eu-west"] }, "bob", "mcp");
        _r.RevokeKey(Keys.A, "carol", "cli");

        var history = _r.QueryHistory(new HistoryQuery());

        Assert.Equal(
            [("revoke_key", "carol", "cli"), ("update_client", "bob", "mcp"), ("accept_key", "alice", "pwsh")],
            history.Select(h => (h.Operation, h.Actor, h.Surface)));
        Assert.Contains("tags=[Prod, eu, eu-west]", history[1].Detail);
        Assert.Equal(client.Uuid, history[1].Uuid);
    }

    [Fact]
    public void Update_WithNothingDifferent_IsRecordedAsUnchanged()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: ["a"]));
        _r.UpdateClient(client.Uuid, new ClientUpdate { Tags = ["a"], Purpose = client.Purpose }, "alice", "pwsh");

        var entry = _r.QueryHistory(new HistoryQuery { Operations = ["update_client"] })[0];

        Assert.Equal(("unchanged", "no change"), (entry.Status, entry.Detail));
    }

    [Fact]
    public void Update_WebhookUrl_StaysOutOfTheHistory()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        _r.UpdateClient(client.Uuid, new ClientUpdate { WebhookUrl = "https://hooks.example/T0/secret-token" }, "alice", "pwsh");

        var entry = _r.QueryHistory(new HistoryQuery())[0];

        Assert.Equal("webhook_url=set", entry.Detail);
        Assert.DoesNotContain("secret-token", entry.Detail);
    }

    [Fact]
    public void Update_TagsEdit_ReplaceThenAddThenRemove_CaseInsensitiveWithoutDuplicates()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: ["old"]));

        var u = _r.UpdateClient(client.Uuid, new ClientUpdate { Tags = ["a", "B"], AddTags = ["b", "c", "d"], RemoveTags = ["C"] }, "alice");

        Assert.Equal(["a", "B", "d"], u.Tags);
        Assert.Equal(["a", "B"], _r.UpdateClient(client.Uuid, new ClientUpdate { RemoveTags = ["D"] }, "alice").Tags);
        Assert.Empty(_r.UpdateClient(client.Uuid, new ClientUpdate { Tags = [] }, "alice").Tags);
    }

    public static TheoryData<string, ClientUpdate, string> Violations => new()
    {
        { "display_name", new ClientUpdate { DisplayName = "" }, "1 to 100" },
        { "display_name", new ClientUpdate { DisplayName = "   " }, "1 to 100" },
        { "display_name", new ClientUpdate { DisplayName = new string('n', 101) }, "1 to 100" },
        { "purpose", new ClientUpdate { Purpose = new string('p', 201) }, "200" },
        { "rate_limit_rpm", new ClientUpdate { RateLimitRpm = 0 }, "1 and 1000" },
        { "rate_limit_rpm", new ClientUpdate { RateLimitRpm = 1001 }, "1 and 1000" },
        { "rate_limit_concurrent", new ClientUpdate { RateLimitConcurrent = 0 }, "1 and 100" },
        { "rate_limit_concurrent", new ClientUpdate { RateLimitConcurrent = 101 }, "1 and 100" },
        { "tags", new ClientUpdate { Tags = [new string('t', 65)] }, "64" },
        { "tags", new ClientUpdate { AddTags = [" "] }, "64" },
        { "tags", new ClientUpdate { Tags = Enumerable.Range(0, 51).Select(i => $"t{i}").ToArray() }, "50" },
        { "tags", new ClientUpdate { RemoveTags = [""] }, "non-empty" },
        { "allowed_paths", new ClientUpdate { AllowedPaths = [""] }, "non-empty" },
        { "allowed_paths", new ClientUpdate { AllowedPaths = Enumerable.Range(0, 101).Select(i => $"/p{i}").ToArray() }, "100" },
        { "allowed_paths", new ClientUpdate { AllowedPaths = ["/" + new string('a', 4096)] }, "4096" },
        { "allowed_paths", new ClientUpdate { AllowedPaths = ["/srv"], ClearAllowedPaths = true }, "set and cleared" },
        { "webhook_url", new ClientUpdate { WebhookUrl = "ftp://hooks.example/x" }, "http" },
        { "webhook_url", new ClientUpdate { WebhookUrl = "not a url" }, "http" },
        { "webhook_url", new ClientUpdate { WebhookUrl = "https://h/" + new string('u', 2048) }, "2048" },
    };

    [Theory]
    [MemberData(nameof(Violations))]
    public void Update_OutOfLimits_NamesFieldAndLimit_AndChangesNothing(string field, ClientUpdate update, string limit)
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: ["keep"]));
        var before = _r.GetClient(client.Uuid);
        var historyBefore = _r.QueryHistory(new HistoryQuery()).Count;

        var ex = Assert.Throws<RegistryValidationException>(() => _r.UpdateClient(client.Uuid, update with { Purpose = update.Purpose ?? "changed" }, "alice", "pwsh"));

        Assert.Equal(field, ex.Field);
        Assert.Contains(field, ex.Message);
        Assert.Contains(limit, ex.Message);
        var after = _r.GetClient(client.Uuid)!;
        Assert.Equal((before!.DisplayName, before.Purpose, before.RateLimitRpm, before.RateLimitConcurrent, before.WebhookUrl, before.AllowedPaths),
                     (after.DisplayName, after.Purpose, after.RateLimitRpm, after.RateLimitConcurrent, after.WebhookUrl, after.AllowedPaths));
        Assert.Equal(["keep"], after.Tags);
        Assert.Equal(historyBefore, _r.QueryHistory(new HistoryQuery()).Count);
    }

    public static TheoryData<ClientUpdate> AtTheLimits => new()
    {
        new ClientUpdate { DisplayName = "x" },
        new ClientUpdate { DisplayName = new string('n', 100) },
        new ClientUpdate { Purpose = new string('p', 200) },
        new ClientUpdate { Purpose = "" },
        new ClientUpdate { RateLimitRpm = 1, RateLimitConcurrent = 1 },
        new ClientUpdate { RateLimitRpm = 1000, RateLimitConcurrent = 100 },
        new ClientUpdate { Tags = Enumerable.Range(0, 50).Select(i => new string('t', 62) + i.ToString("00", System.Globalization.CultureInfo.InvariantCulture)).ToArray() },
        new ClientUpdate { AllowedPaths = Enumerable.Range(0, 100).Select(i => $"/p{i}").ToArray() },
        new ClientUpdate { WebhookUrl = "http://127.0.0.1:9000/hook" },
    };

    [Theory]
    [MemberData(nameof(AtTheLimits))]
    public void Update_AtTheLimits_IsAccepted(ClientUpdate update)
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());

        var u = _r.UpdateClient(client.Uuid, update, "alice", "pwsh");

        Assert.Equal(update.DisplayName ?? client.DisplayName, u.DisplayName);
        Assert.Equal(update.RateLimitRpm ?? client.RateLimitRpm, u.RateLimitRpm);
        Assert.Equal(update.Tags?.Count ?? client.Tags.Count, u.Tags.Count);
        Assert.Equal(update.AllowedPaths?.Count, u.AllowedPaths?.Count);
    }

    [Fact]
    public void Update_AddTagsBeyondFifty_IsRefused()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: []));
        _r.UpdateClient(client.Uuid, new ClientUpdate { Tags = Enumerable.Range(0, 50).Select(i => $"t{i}").ToArray() }, "alice");

        var ex = Assert.Throws<RegistryValidationException>(() => _r.UpdateClient(client.Uuid, new ClientUpdate { AddTags = ["one-more"] }, "alice"));

        Assert.Equal("tags", ex.Field);
        Assert.Contains("50", ex.Message);
        Assert.Equal(50, _r.GetClient(client.Uuid)!.Tags.Count);
    }

    [Fact]
    public void Query_FindsEditedFields_AndRefreshedHostname()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(name: "box", host: "old-host", tags: ["x"]));
        _r.UpdateClient(client.Uuid, new ClientUpdate { Purpose = "Payroll Ledger", AddTags = ["Frankfurt"] }, "alice");
        _r.AdmitClient(Keys.A, Keys.Identity(host: "NEW-HOST"));

        Assert.Single(_r.QueryClients(new ClientQuery { Query = "payroll" }));
        Assert.Single(_r.QueryClients(new ClientQuery { Query = "FRANKF" }));
        Assert.Single(_r.QueryClients(new ClientQuery { Query = "new-host" }));
        Assert.Empty(_r.QueryClients(new ClientQuery { Query = "old-host" }));
        // A query never matches across two fields.
        Assert.Empty(_r.QueryClients(new ClientQuery { Query = "box payroll" }));
    }

    [Fact]
    public void History_FiltersIntersect_NewestFirst_Paged()
    {
        for (var i = 0; i < 30; i++)
        {
            _r.RecordAudit(new AuditEntry
            {
                Operation = i % 3 == 0 ? "run_command" : "update_client",
                Uuid = i % 2 == 0 ? "u-even" : "u-odd",
                Actor = "alice",
                Surface = "pwsh",
                Status = i % 5 == 0 ? "failed" : "succeeded",
                Detail = $"#{i}",
            });
            _time.Advance(TimeSpan.FromMinutes(1));
        }

        static string[] Details(IEnumerable<AuditEntry> e) => e.Select(x => x.Detail!).ToArray();

        Assert.Equal(["#29", "#28", "#27"], Details(_r.QueryHistory(new HistoryQuery { Take = 3 })));
        Assert.Equal(["#26", "#25", "#24"], Details(_r.QueryHistory(new HistoryQuery { Skip = 3, Take = 3 })));
        Assert.Empty(_r.QueryHistory(new HistoryQuery { Skip = 30 }));
        Assert.Equal(["#24", "#18", "#12", "#6", "#0"], Details(_r.QueryHistory(new HistoryQuery { Uuids = ["u-even"], Operations = ["RUN_COMMAND"] })));
        Assert.Equal(["#25", "#20", "#15", "#10", "#5", "#0"], Details(_r.QueryHistory(new HistoryQuery { Statuses = ["failed"] })));
        Assert.Equal(["#20", "#10", "#0"], Details(_r.QueryHistory(new HistoryQuery { Statuses = ["failed"], Uuids = ["u-even", "nobody"] })));

        var start = new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero);
        Assert.Equal(["#12", "#11", "#10"], Details(_r.QueryHistory(new HistoryQuery { Since = start.AddMinutes(10), Until = start.AddMinutes(13) })));
        Assert.Equal(20, _r.QueryHistory(new HistoryQuery { Since = start.AddMinutes(10) }).Count);
        Assert.Equal(10, _r.QueryHistory(new HistoryQuery { Until = start.AddMinutes(10) }).Count);
    }

    [Theory]
    [InlineData(-1, 10, "skip")]
    [InlineData(0, 0, "take")]
    [InlineData(0, 10_001, "take")]
    public void History_BadPaging_NamesTheField(int skip, int take, string field)
    {
        var ex = Assert.Throws<RegistryValidationException>(() => _r.QueryHistory(new HistoryQuery { Skip = skip, Take = take }));
        Assert.Equal(field, ex.Field);
    }

    [Fact]
    public void History_UntilBeforeSince_IsRefused()
    {
        var now = _time.GetUtcNow();
        var ex = Assert.Throws<RegistryValidationException>(() => _r.QueryHistory(new HistoryQuery { Since = now, Until = now.AddSeconds(-1) }));
        Assert.Equal("until", ex.Field);
    }

    [Fact]
    public void Seed_WritesSearchableClientsWithApprovedKeysAndOnlineSessions()
    {
        _r.SeedClients(
        [
            new ClientSeed { Uuid = "00000000-0000-0000-0000-000000000001", DisplayName = "gpu-1", Purpose = "training", Tags = ["prod", "gpu"], Capabilities = ["nvidia-gpu"], Online = true },
            new ClientSeed { Uuid = "00000000-0000-0000-0000-000000000002", DisplayName = "web-1", Tags = ["prod"] },
        ]);

        Assert.Equal(["gpu-1"], _r.QueryClients(new ClientQuery { Tags = ["PROD", "gpu"], Capabilities = ["nvidia-gpu"], Query = "TRAIN", OnlineOnly = true }).Select(c => c.DisplayName));
        Assert.Equal(2, _r.ListKeys(KeyStatus.Approved).Count);
    }

    [Fact]
    public void Seed_GivesAnOnlineSessionTheTunnelSecretAndHubItWasGiven()
    {
        var secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
        _r.SeedClients(
        [
            new ClientSeed { Uuid = "00000000-0000-0000-0000-000000000011", DisplayName = "sim-1", Online = true, TunnelPort = 41234, Secret = secret, HubId = "hub-2" },
            new ClientSeed { Uuid = "00000000-0000-0000-0000-000000000012", DisplayName = "sim-2", Online = true },
        ]);

        var given = _r.GetOpenSession("00000000-0000-0000-0000-000000000011")!;
        Assert.Equal((41234, "hub-2"), (given.TunnelPort, given.HubId));
        Assert.Equal(secret, given.Secret);
        Assert.Equal(["00000000-0000-0000-0000-000000000011"], _r.ListOpenSessionsOf("hub-2").Select(s => s.Uuid));
        var made = _r.GetOpenSession("00000000-0000-0000-0000-000000000012")!;
        Assert.Null(made.HubId);
        Assert.Equal(new byte[32], made.Secret);
    }
}

public sealed class RegistryClientTestsOnSqlite() : RegistryClientTests(TestEngine.Sqlite)
{
    // What only the SQLite file has: its mode, the native library, its query plans, upgrades of older files.
    [Fact]
    public void History_QueriesUseTheAuditIndexes()
    {
        using var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_temp.Dir.RegistryFile}");
        c.Open();
        string Plan(string where)
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"EXPLAIN QUERY PLAN SELECT * FROM audit WHERE {where} ORDER BY id DESC LIMIT 10";
            using var r = cmd.ExecuteReader();
            var lines = new List<string>();
            while (r.Read())
            {
                lines.Add(r.GetString(3));
            }

            return string.Join(" | ", lines);
        }

        Assert.Contains("ix_audit_uuid", Plan("uuid IN ('a')"));
        Assert.Contains("ix_audit_operation", Plan("operation IN ('remove')"));
        Assert.Contains("ix_audit_status", Plan("status IN ('failed')"));
        Assert.Contains("ix_audit_at", Plan("at >= 5 AND at < 6"));
    }
}

public sealed class RegistryClientTestsOnPostgres() : RegistryClientTests(TestEngine.Postgres);
