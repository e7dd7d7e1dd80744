using EtPhoneHome.Core.Registry;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

public abstract class SqliteRegistryTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private protected readonly TempData _temp = new();
    private protected readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private protected readonly SqliteRegistry _r;

    protected SqliteRegistryTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir, _time);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void Open_Twice_IsIdempotentAndSeesOtherWrites()
    {
        using var second = TestRegistries.Open(Engine, _temp.Dir, _time);
        Assert.Equal(RegistryMigrations.LatestVersion, second.SchemaVersion());
        _r.RecordPendingKey(Keys.A, null, Keys.Identity());
        Assert.Equal(KeyStatus.Pending, second.GetKey(Keys.A)!.Status);
        second.ApproveKey(Keys.A, "other");
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
    }

    [Fact]
    public async Task Open_Concurrently_AppliesMigrationsOnce()
    {
        using var temp = new TempData();
        var opened = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(() => TestRegistries.Open(Engine, temp.Dir))));
        Assert.All(opened, r => Assert.Equal(RegistryMigrations.LatestVersion, r.SchemaVersion()));
        foreach (var r in opened)
        {
            r.Dispose();
        }
    }

    [Fact]
    public void UnknownKey_BecomesPendingWithClaimedIdentity_AndEmitsPending()
    {
        var key = _r.RecordPendingKey(Keys.A, "ssh-ed25519 AAAAx", Keys.Identity(host: "laptop-7"));
        Assert.Equal(KeyStatus.Pending, key.Status);
        Assert.Equal("laptop-7", key.ClaimedHostname);
        Assert.Equal("linux-x64", key.ClaimedPlatform);
        Assert.Equal("ssh-ed25519 AAAAx", key.PublicKey);
        Assert.False(key.IsMismatch);
        Assert.Single(_r.ListKeys(KeyStatus.Pending));
        Assert.Empty(_r.ListKeys(KeyStatus.Approved));
        Assert.Equal(["client.pending"], _r.ListEvents().Select(e => e.Type));

        _r.RecordPendingKey(Keys.A, null, Keys.Identity(host: "laptop-8"));
        Assert.Equal("laptop-8", _r.GetKey(Keys.A)!.ClaimedHostname);
        Assert.Single(_r.ListEvents());
    }

    [Fact]
    public void PendingKeys_AreCapped_AndANewKeyTakesThePlaceOfTheKeyUnseenTheLongest()
    {
        _r.MaxPendingKeys = 2;
        _r.RecordPendingKey(Keys.A, null, Keys.Identity());
        _time.Advance(TimeSpan.FromMinutes(1));
        _r.RecordPendingKey(Keys.B, null, Keys.Identity());
        _time.Advance(TimeSpan.FromMinutes(1));
        _r.RecordPendingKey(Keys.A, null, Keys.Identity()); // A comes back: B is now the one unseen the longest
        _time.Advance(TimeSpan.FromMinutes(1));

        var c = _r.RecordPendingKey(Keys.C, null, Keys.Identity(host: "new-machine"));

        Assert.Equal(KeyStatus.Pending, c.Status);
        Assert.Equal([Keys.A, Keys.C], _r.ListKeys(KeyStatus.Pending).Select(k => k.Fingerprint).Order(StringComparer.Ordinal));
        Assert.Null(_r.GetKey(Keys.B));
    }

    [Fact]
    public void PendingKeys_TheBoundNeverEvictsApprovedOrRevokedKeys()
    {
        _r.MaxPendingKeys = 1;
        Keys.Admit(_r, Keys.A, Keys.Identity("web-01"));
        _r.RecordPendingKey(Keys.B, null, Keys.Identity());
        _r.RevokeKey(Keys.B, "alice");
        _time.Advance(TimeSpan.FromMinutes(1));

        _r.RecordPendingKey(Keys.C, null, Keys.Identity());
        _r.RecordPendingKey(Keys.D, null, Keys.Identity());

        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.B)!.Status);
        Assert.Equal([Keys.D], _r.ListKeys(KeyStatus.Pending).Select(k => k.Fingerprint));
    }

    [Fact]
    public void Approve_ThenAgain_ReportsAlreadyApproved_AndAudits()
    {
        _r.RecordPendingKey(Keys.A, null, Keys.Identity());
        var first = _r.ApproveKey(Keys.A, "alice");
        Assert.False(first.AlreadyApproved);
        var key = _r.GetKey(Keys.A)!;
        Assert.Equal(KeyStatus.Approved, key.Status);
        Assert.Equal("alice", key.DecidedBy);
        Assert.NotNull(key.DecidedAt);
        Assert.True(_r.ApproveKey(Keys.A, "alice").AlreadyApproved);
        Assert.Contains(_r.ListAudit(), a => a.Operation == "accept_key" && a.Actor == "alice" && a.Status == "succeeded");
    }

    [Fact]
    public void Approve_Unknown_ThrowsNotFoundNamingIt()
    {
        var ex = Assert.Throws<RegistryNotFoundException>(() => _r.ApproveKey("SHA256:nope", "alice"));
        Assert.Contains("SHA256:nope", ex.Message);
    }

    [Fact]
    public void AClosedSessionsSecret_IsNotKept()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var secret = System.Security.Cryptography.RandomNumberGenerator.GetBytes(32);
        var s = _r.OpenSession(client.Uuid, Keys.A, "gw", 40001, secret, null, null);
        _r.CloseSession(s.Id, "test");

        using var c = _r.OpenConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT length(secret), closed_at IS NOT NULL FROM sessions WHERE id = @id";
        cmd.Parameters.AddWithValue("@id", s.Id);
        using var row = cmd.ExecuteReader();
        Assert.True(row.Read());
        Assert.Equal(0L, row.GetInt64(0));
        Assert.True(row.GetBoolean(1));
    }

    [Fact]
    public void Revoke_ClosesOpenSessions_AndRevokedCanBeApprovedAgain()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var s = _r.OpenSession(client.Uuid, Keys.A, "gw", 40001, new byte[32], 1234, 1);
        _r.MarkSessionOnline(s.Id);
        var outcome = _r.RevokeKey(client.Uuid, "bob");
        Assert.Equal(Keys.A, outcome.Fingerprint);
        var closed = Assert.Single(outcome.ClosedSessions);
        Assert.Equal(1234, closed.GatePid);
        Assert.Equal("revoked", closed.CloseReason);
        Assert.Null(_r.GetOpenSession(client.Uuid));
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.A)!.Status);
        Assert.Contains(_r.ListEvents(), e => e.Type == "client.disconnected" && e.Uuid == client.Uuid);
        Assert.True(_r.RevokeKey(Keys.A, "bob").AlreadyRevoked);

        _r.ApproveKey(Keys.A, "bob");
        Assert.Equal(client.Uuid, _r.AdmitClient(Keys.A, Keys.Identity()).Uuid);
    }

    [Fact]
    public void KeyMismatch_IsRecordedOnTheClaimingKey_AndOnlyItsExactFingerprintRepins()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var mismatch = _r.RecordPendingKey(Keys.B, null, Keys.Identity(claimed: client.Uuid));
        Assert.True(mismatch.IsMismatch);
        Assert.Contains(_r.ListEvents(), e => e.Type == "client.key_mismatch" && e.Uuid == client.Uuid);

        // The unauthenticated claim changes nothing about the client.
        var untouched = _r.GetClient(client.Uuid)!;
        Assert.False(untouched.KeyMismatch);
        Assert.Equal(Keys.A, untouched.KeyFingerprint);
        Assert.Equal(client.Uuid, _r.AdmitClient(Keys.A, Keys.Identity()).Uuid);

        // By uuid the decision is ambiguous: the message names both keys and what to run.
        var ambiguous = Assert.Throws<KeyDecisionException>(() => _r.ApproveKey(client.Uuid, "carol"));
        Assert.Contains(Keys.A, ambiguous.Message);
        Assert.Contains(Keys.B, ambiguous.Message);
        Assert.Contains("approve " + Keys.B, ambiguous.Message);
        var revokeAmbiguous = Assert.Throws<KeyDecisionException>(() => _r.RevokeKey(client.Uuid, "carol", "cli"));
        Assert.Contains("revoke " + Keys.B, revokeAmbiguous.Message);
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
        Assert.Equal(KeyStatus.Pending, _r.GetKey(Keys.B)!.Status);

        var outcome = _r.ApproveKey(Keys.B, "carol");
        Assert.True(outcome.ResolvedMismatch);
        Assert.Equal(Keys.B, outcome.Fingerprint);
        Assert.Equal(Keys.A, outcome.ReplacedFingerprint);
        Assert.Equal(client.Uuid, outcome.Uuid);
        var after = _r.GetClient(client.Uuid)!;
        Assert.Equal(Keys.B, after.KeyFingerprint);
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.A)!.Status);
        Assert.Equal(client.Uuid, _r.GetKey(Keys.B)!.Uuid);
        Assert.Equal(client.Uuid, _r.AdmitClient(Keys.B, Keys.Identity()).Uuid);

        // Asking again by uuid: nothing to resolve, the pinned key is already approved.
        Assert.True(_r.ApproveKey(client.Uuid, "carol").AlreadyApproved);
    }

    [Fact]
    public void AThrowAwayKeyClaimingAClient_IsRevokedAndNeverApprovedByUuid()
    {
        // The attack: a throw-away key claims a client's uuid; revoking it must leave the client as it was, and a later
        // approve by uuid must never pick the revoked attacker key (it re-pinned the client to the attacker before).
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        _r.RecordPendingKey(Keys.B, null, Keys.Identity(claimed: client.Uuid));
        _r.RevokeKey(Keys.B, "carol", "cli");

        Assert.True(_r.ApproveKey(client.Uuid, "carol").AlreadyApproved);
        Assert.Equal(Keys.A, _r.GetClient(client.Uuid)!.KeyFingerprint);
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.B)!.Status);
        Assert.Throws<InvalidOperationException>(() => _r.AdmitClient(Keys.B, Keys.Identity(claimed: client.Uuid)));

        // Revoking by uuid now names only the client's own key; re-approving it by uuid is refused, by fingerprint works.
        Assert.Equal(Keys.A, _r.RevokeKey(client.Uuid, "carol", "cli").Fingerprint);
        var refused = Assert.Throws<KeyDecisionException>(() => _r.ApproveKey(client.Uuid, "carol"));
        Assert.Contains("approve " + Keys.A, refused.Message);
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.A)!.Status);
        Assert.False(_r.ApproveKey(Keys.A, "carol").AlreadyApproved);
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.A)!.Status);
    }

    [Fact]
    public void Admit_RequiresApprovedKey()
    {
        _r.RecordPendingKey(Keys.A, null, Keys.Identity());
        Assert.Throws<InvalidOperationException>(() => _r.AdmitClient(Keys.A, Keys.Identity()));
    }

    [Fact]
    public void Admit_FirstTime_UsesAgentDefaults()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(name: "Build box", tags: ["ci", "Linux"], caps: ["run_command", "files"]));
        Assert.True(Guid.TryParse(client.Uuid, out _));
        Assert.Equal("Build box", client.DisplayName);
        Assert.Equal("testing", client.Purpose);
        Assert.Equal(["ci", "Linux"], client.Tags);
        Assert.Equal(["files", "run_command"], client.Capabilities);
        Assert.Equal(Keys.A, client.KeyFingerprint);
        Assert.Equal(1, client.ConnectionCount);
        Assert.Equal(client.Uuid, _r.GetKey(Keys.A)!.Uuid);

        var unnamed = Keys.Admit(_r, Keys.B, Keys.Identity(host: "db-9"));
        Assert.Equal("db-9", unnamed.DisplayName);
    }

    [Fact]
    public void Reconnect_KeepsOperatorEditedTags()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: ["a"]));
        _r.UpdateClient(client.Uuid, new ClientUpdate { DisplayName = "Renamed", Tags = ["edited"], Purpose = "ops", RateLimitRpm = 10 }, "alice");
        var again = _r.AdmitClient(Keys.A, Keys.Identity(host: "new-host", tags: ["agent-default"], name: "agent name", caps: ["x"]) with { AgentVersion = "0.2.0" });
        Assert.Equal(client.Uuid, again.Uuid);
        Assert.Equal("Renamed", again.DisplayName);
        Assert.Equal(["edited"], again.Tags);
        Assert.Equal("ops", again.Purpose);
        Assert.Equal(10, again.RateLimitRpm);
        Assert.Equal("new-host", again.Hostname);
        Assert.Equal("0.2.0", again.AgentVersion);
        Assert.Equal(["x"], again.Capabilities);
        Assert.Equal(2, again.ConnectionCount);
    }

    [Theory]
    [InlineData("display_name", "100")]
    [InlineData("purpose", "200")]
    [InlineData("rate_limit_rpm", "1000")]
    [InlineData("rate_limit_concurrent", "100")]
    [InlineData("tags", "64")]
    public void Update_Validation_NamesFieldAndLimit(string field, string limit)
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var update = field switch
        {
            "display_name" => new ClientUpdate { DisplayName = new string('x', 101) },
            "purpose" => new ClientUpdate { Purpose = new string('x', 201) },
            "rate_limit_rpm" => new ClientUpdate { RateLimitRpm = 0 },
            "rate_limit_concurrent" => new ClientUpdate { RateLimitConcurrent = 101 },
            _ => new ClientUpdate { AddTags = [new string('t', 65)] },
        };
        var ex = Assert.Throws<RegistryValidationException>(() => _r.UpdateClient(client.Uuid, update, "alice"));
        Assert.Equal(field, ex.Field);
        Assert.Contains(field, ex.Message);
        Assert.Contains(limit, ex.Message);
    }

    [Fact]
    public void Update_TagsPathsWebhook_AreApplied()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity(tags: ["a", "b"]));
        var u = _r.UpdateClient(client.Uuid, new ClientUpdate { AddTags = ["c", "A"], RemoveTags = ["b"], AllowedPaths = ["/srv"], WebhookUrl = "https://h/x" }, "alice");
        Assert.Equal(["a", "c"], u.Tags);
        Assert.Equal(["/srv"], u.AllowedPaths);
        Assert.Equal("https://h/x", u.WebhookUrl);
        u = _r.UpdateClient(client.Uuid, new ClientUpdate { ClearAllowedPaths = true, WebhookUrl = "" }, "alice");
        Assert.Null(u.AllowedPaths);
        Assert.Null(u.WebhookUrl);
        Assert.Contains(_r.ListAudit(client.Uuid), a => a.Operation == "update_client");
        Assert.Throws<RegistryNotFoundException>(() => _r.UpdateClient("nope", new ClientUpdate(), "alice"));
    }

    [Fact]
    public void Query_WildcardsTagsCapabilitiesAndText()
    {
        var web1 = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01", tags: ["prod", "eu"], caps: ["run_command", "files"]));
        var web2 = Keys.Admit(_r, Keys.B, Keys.Identity(name: "Web-02", tags: ["prod", "us"], caps: ["run_command"]));
        var db = Keys.Admit(_r, Keys.C, Keys.Identity(name: "db-01", host: "dbhost", tags: ["staging", "eu"], caps: ["files"]));

        static string[] Names(IEnumerable<ClientRecord> cs) => cs.Select(c => c.DisplayName).ToArray();
        Assert.Equal(["web-01", "Web-02"], Names(_r.QueryClients(new ClientQuery { Names = ["web-*"] })));
        // "db-*", not "db*": a pattern also matches uuids, and one uuid in 256 starts with "db" (that failed a run).
        Assert.Equal(["db-01", "web-01"], Names(_r.QueryClients(new ClientQuery { Names = ["*-?1", "db-*"] })));
        Assert.Equal(["web-01"], Names(_r.QueryClients(new ClientQuery { Names = [web1.Uuid[..8] + "*"] })));
        Assert.Equal(["db-01"], Names(_r.QueryClients(new ClientQuery { Ids = [db.Uuid] })));
        Assert.Equal(["web-01"], Names(_r.QueryClients(new ClientQuery { Tags = ["PROD", "eu"] })));
        Assert.Equal(["db-01", "web-01"], Names(_r.QueryClients(new ClientQuery { Tags = ["eu"] })));
        Assert.Equal(["web-01"], Names(_r.QueryClients(new ClientQuery { Capabilities = ["files", "run_command"] })));
        Assert.Equal(["web-01", "Web-02"], Names(_r.QueryClients(new ClientQuery { Query = "WEB" })));
        Assert.Equal(["db-01"], Names(_r.QueryClients(new ClientQuery { Query = "staging" })));
        Assert.Equal(["db-01"], Names(_r.QueryClients(new ClientQuery { Query = "DBHOST" })));
        Assert.Equal(3, _r.QueryClients(new ClientQuery { Purpose = "TEST" }).Count);
        Assert.Empty(_r.QueryClients(new ClientQuery { Query = "%" }));
        Assert.Equal(3, _r.QueryClients(new ClientQuery()).Count);
        _ = web2;
    }

    [Fact]
    public void Online_RequiresFreshHeartbeat()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var s = _r.OpenSession(client.Uuid, Keys.A, "gw", 40001, new byte[32], null, null);
        Assert.False(_r.GetClient(client.Uuid)!.Online);
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true }));

        _r.MarkSessionOnline(s.Id);
        var online = _r.GetClient(client.Uuid)!;
        Assert.True(online.Online);
        Assert.Equal(40001, online.TunnelPort);
        Assert.Equal(s.Id, online.SessionId);
        Assert.Single(_r.QueryClients(new ClientQuery { OnlineOnly = true }));

        _time.Advance(TimeSpan.FromSeconds(44));
        Assert.True(_r.GetClient(client.Uuid)!.Online);
        _time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(_r.GetClient(client.Uuid)!.Online);
        Assert.Null(_r.GetClient(client.Uuid)!.TunnelPort);
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true }));

        _r.TouchSession(s.Id);
        Assert.True(_r.GetClient(client.Uuid)!.Online);

        _r.SetSetting(SqliteRegistry.HeartbeatSetting, "1");
        _time.Advance(TimeSpan.FromSeconds(4));
        Assert.False(_r.GetClient(client.Uuid)!.Online);
    }

    [Fact]
    public void Sessions_EmitConnectedAndDisconnected_AndReplaceEarlierOne()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity());
        var secret = Enumerable.Range(0, 32).Select(i => (byte)i).ToArray();
        var first = _r.OpenSession(client.Uuid, Keys.A, "gw", 40001, secret, 10, 1);
        Assert.Equal(secret, _r.GetOpenSession(client.Uuid)!.Secret);
        Assert.DoesNotContain(Convert.ToBase64String(secret), first.ToString());
        _r.MarkSessionOnline(first.Id);

        var second = _r.OpenSession(client.Uuid, Keys.A, "gw", 40002, secret, 11, 1);
        Assert.Equal(second.Id, _r.GetOpenSession(client.Uuid)!.Id);
        Assert.Equal("replaced", _r.GetSession(first.Id)!.CloseReason);

        _r.CloseSession(second.Id, "eof"); // never online: no disconnected event
        var types = _r.ListEvents().Select(e => e.Type).ToArray();
        Assert.Equal(["client.pending", "client.connected", "client.disconnected"], types);

        var third = _r.OpenSession(client.Uuid, Keys.A, "gw", 40003, secret, 12, 1);
        _r.MarkSessionOnline(third.Id);
        Assert.Equal(1, _r.CloseAllSessions("hub restarted"));
        Assert.Empty(_r.ListOpenSessions());
        Assert.Equal("client.disconnected", _r.ListEvents().Last().Type);
    }

    [Fact]
    public void Settings_AndAudit_RoundTrip()
    {
        Assert.Null(_r.GetSetting("x"));
        _r.SetSetting("x", "1");
        _r.SetSetting("x", "2");
        Assert.Equal("2", _r.GetSetting("x"));
        _r.SetSetting("x", null);
        Assert.Null(_r.GetSetting("x"));
        _r.RecordAudit(new AuditEntry { Operation = "exec", Actor = "a", Surface = "cli", Status = "ok", Uuid = "u1", DurationMs = 5 });
        var entry = Assert.Single(_r.ListAudit("u1"));
        Assert.Equal(5, entry.DurationMs);
        Assert.NotNull(entry.At);
    }
}

public sealed class SqliteRegistryTestsOnSqlite() : SqliteRegistryTests(TestEngine.Sqlite)
{
    // What only the SQLite file has: its mode, the native library, its query plans, upgrades of older files.
    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Open_CreatesPrivateDirectoryAndFile()
    {
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(_temp.Dir.Path));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(_temp.Dir.RegistryFile));
        Assert.Equal(RegistryMigrations.LatestVersion, _r.SchemaVersion());
    }

    [Fact]
    public void NativeSqlite_Loads()
    {
        Assert.StartsWith("3.", _r.SqliteVersion());
        using var c = new SqliteConnection("Data Source=:memory:");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "SELECT sqlite_version()";
        Assert.StartsWith("3.", (string)cmd.ExecuteScalar()!);
    }
}

public sealed class SqliteRegistryTestsOnPostgres() : SqliteRegistryTests(TestEngine.Postgres);
