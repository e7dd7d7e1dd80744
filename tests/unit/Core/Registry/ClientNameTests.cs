using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>Display names are unique after normalisation, and every lookup by name compares the normalised form.</summary>
public abstract class ClientNameTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private protected readonly TempData _temp = new();
    private protected readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private protected readonly SqliteRegistry _r;

    protected ClientNameTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir, _time);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    public static TheoryData<string> LookAlikes => new()
    {
        "WEB-01",
        " web-01 ",
        "web\u200b-01",          // zero-width space
        "w\u00adeb-01",          // soft hyphen
        "\ufeffweb-01\u2060",    // byte-order mark, word joiner
        "web\ufe0f-01",          // variation selector
        "web\u200e-01",          // left-to-right mark
        "\uff57\uff45\uff42-01", // fullwidth letters
        "\uff37\uff25\uff22\uff0d\uff10\uff11", // fullwidth capitals, hyphen and digits
        "web\u201101",          // non-breaking hyphen
    };

    [Theory]
    [MemberData(nameof(LookAlikes))]
    public void NameKey_FoldsCaseCompatibilityFormsAndInvisibleCharacters(string lookAlike)
    {
        Assert.Equal("web-01", ClientNameKey.Of(lookAlike));
        Assert.True(ClientNameKey.Same("web-01", lookAlike));
        Assert.False(ClientNameKey.Same("web-02", lookAlike));
    }

    [Fact]
    public void NameKey_IsIdempotent_AndKeepsVisibleDifferences()
    {
        foreach (var name in new[] { "Straße", "ǅemal", "ﬁle-server", "web 01", "web_01", "café", "cafe\u0301", "x²" })
        {
            Assert.Equal(ClientNameKey.Of(name), ClientNameKey.Of(ClientNameKey.Of(name)));
        }

        Assert.True(ClientNameKey.Same("café", "cafe\u0301"));
        Assert.True(ClientNameKey.Same("ﬁle-server", "file-server"));
        Assert.False(ClientNameKey.Same("web 01", "web-01"));
        Assert.False(ClientNameKey.Same("web_01", "web-01"));
    }

    [Theory]
    [MemberData(nameof(LookAlikes))]
    public void RenameToANameTakenAfterNormalisation_IsRefused_NamingTheClientThatHasIt(string lookAlike)
    {
        var web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        var db = Keys.Admit(_r, Keys.B, Keys.Identity(name: "db-01", host: "db-host"));

        // The operator path refuses invisible characters before the name rule; the visible look-alikes reach it.
        var error = Assert.ThrowsAny<RegistryValidationException>(() => _r.UpdateClient(db.Uuid, new ClientUpdate { DisplayName = lookAlike }, "alice", "cli"));

        Assert.Equal("display_name", error.Field);
        if (!lookAlike.Any(c => c is '\u200b' or '\u00ad' or '\ufeff' or '\u2060' or '\ufe0f' or '\u200e'))
        {
            Assert.Equal(web.Uuid, Assert.IsType<ClientNameTakenException>(error).HolderUuid);
            Assert.Contains("taken", error.Message);
            Assert.Contains("'web-01'", error.Message);
            Assert.Contains(web.Uuid, error.Message);
        }

        Assert.Equal("db-01", _r.GetClient(db.Uuid)!.DisplayName);
    }

    [Fact]
    public void RenameToItsOwnNameInAnotherCase_IsAccepted()
    {
        var web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));

        Assert.Equal("WEB-01", _r.UpdateClient(web.Uuid, new ClientUpdate { DisplayName = "WEB-01" }, "alice", "cli").DisplayName);
        Assert.Single(_r.QueryClients(new ClientQuery { Names = ["web-01"] }));
    }

    [Fact]
    public void AnAgentClaimingATakenName_GetsTheFirstFreeSuffix_AndTheHistorySaysWhy()
    {
        var first = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        var second = Keys.Admit(_r, Keys.B, Keys.Identity(name: "WEB-01", host: "b"));
        var third = Keys.Admit(_r, Keys.C, Keys.Identity(name: "\uff57\uff45\uff42-01", host: "c"));

        Assert.Equal("web-01", first.DisplayName);
        Assert.Equal("WEB-01 (2)", second.DisplayName);
        Assert.Equal("\uff57\uff45\uff42-01 (3)", third.DisplayName);
        var note = _r.QueryHistory(new HistoryQuery { Uuids = [second.Uuid], Operations = ["update_client"] }).Single();
        Assert.Contains("'WEB-01 (2)'", note.Detail);
        Assert.Contains("'web-01'", note.Detail);
        Assert.Contains(first.Uuid[..8], note.Detail);

        // Reconnecting keeps the name it was given.
        Assert.Equal("WEB-01 (2)", _r.AdmitClient(Keys.B, Keys.Identity(name: "WEB-01", host: "b")).DisplayName);
    }

    [Fact]
    public void ARemovedClientFreesItsName_AndTakesAFreeOneIfItComesBack()
    {
        var old = Keys.Admit(_r, Keys.A, Keys.Identity(name: "kiosk"));
        _r.RemoveClient(old.Uuid, "alice", "cli");

        var replacement = Keys.Admit(_r, Keys.B, Keys.Identity(name: "kiosk", host: "new"));
        Assert.Equal("kiosk", replacement.DisplayName);

        _r.ApproveKey(Keys.A, "alice", "cli");
        var back = _r.AdmitClient(Keys.A, Keys.Identity(name: "kiosk"));
        Assert.Equal(old.Uuid, back.Uuid);
        Assert.Equal("kiosk (2)", back.DisplayName);
        Assert.Equal(replacement.Uuid, Assert.Single(_r.QueryClients(new ClientQuery { Names = ["KIOSK"] })).Uuid);
    }

    [Theory]
    [MemberData(nameof(LookAlikes))]
    public void LookupsByName_MatchTheNormalisedForm_AndFindTheOneClient(string lookAlike)
    {
        var web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        Keys.Admit(_r, Keys.B, Keys.Identity(name: "web-011", host: "b"));

        Assert.Equal(web.Uuid, Assert.Single(_r.QueryClients(new ClientQuery { Names = [lookAlike] })).Uuid);
        Assert.Equal(web.Uuid, ClientQueries.Single(_r, lookAlike).Uuid);
        Assert.Equal(web.Uuid, Assert.Single(FleetTargets.ResolveOrRefuse(_r, _r, _r, new TargetSelection { Clients = [lookAlike] })).Uuid);
        Assert.Equal(2, _r.QueryClients(new ClientQuery { Names = [lookAlike.TrimEnd() + "*"] }).Count);
    }

    [Fact]
    public void ANameThatIsAnotherClientsUuid_SelectsOnlyTheClientWithThatUuid()
    {
        var web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        var impostor = Keys.Admit(_r, Keys.B, Keys.Identity(name: "db", host: "b"));
        _r.UpdateClient(impostor.Uuid, new ClientUpdate { DisplayName = web.Uuid }, "alice", "cli");

        var targets = FleetTargets.ResolveOrRefuse(_r, _r, _r, new TargetSelection { Clients = [web.Uuid.ToUpperInvariant()] });

        Assert.Equal(web.Uuid, Assert.Single(targets).Uuid);
    }

    private protected static void Exec(SqliteConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }
}

public sealed class ClientNameTestsOnSqlite() : ClientNameTests(TestEngine.Sqlite)
{
    // What only the SQLite file has: its mode, the native library, its query plans, upgrades of older files.
    [Fact]
    public void AnOlderRegistryWithDuplicates_IsMigrated_OldestKeepsTheName_LaterOnesGetASuffix()
    {
        var version = RegistryMigrations.NameKeyVersion;
        Assert.True(version > 7);
        using (var c = new SqliteConnection($"Data Source={_r.DatabaseFile};Pooling=False"))
        {
            c.Open();
            Exec(c, "DROP INDEX ux_clients_name_key; DROP TRIGGER clients_change_update; ALTER TABLE clients DROP COLUMN name_key;");
            Exec(c, $"DELETE FROM schema_version WHERE version >= {version}");
            var rows = new (string Uuid, string Name, long FirstSeen, bool Removed)[]
            {
                ("00000000-0000-0000-0000-000000000004", "Web-01", 400, false),
                ("00000000-0000-0000-0000-000000000001", "web-01 (2)", 100, false), // genuinely named so: keeps it
                ("00000000-0000-0000-0000-000000000003", "\uff57\uff45\uff42-01", 300, false),
                ("00000000-0000-0000-0000-000000000002", "web-01", 200, false),     // the oldest "web-01"
                ("00000000-0000-0000-0000-000000000005", "web-01", 50, true),       // removed: keeps its name, holds no claim
                ("00000000-0000-0000-0000-000000000006", "db-01", 600, false),
            };
            foreach (var (uuid, name, firstSeen, removed) in rows)
            {
                Exec(c, $"""
                    INSERT INTO clients(uuid, display_name, first_seen, last_seen, removed_at)
                    VALUES ('{uuid}', '{name}', {firstSeen}, {firstSeen}, {(removed ? "1" : "NULL")})
                    """);
            }
        }

        using var upgraded = TestRegistries.Open(Engine, _temp.Dir);

        string Name(int n) => upgraded.GetClient($"00000000-0000-0000-0000-00000000000{n}")!.DisplayName;
        Assert.Equal(
            ["web-01 (2)", "web-01", "\uff57\uff45\uff42-01 (3)", "Web-01 (4)", "web-01", "db-01"],
            Enumerable.Range(1, 6).Select(Name));
        var note = upgraded.QueryHistory(new HistoryQuery { Uuids = ["00000000-0000-0000-0000-000000000004"] }).Single();
        Assert.Equal(("update_client", "registry-migration"), (note.Operation, note.Actor));
        Assert.Contains("'Web-01 (4)'", note.Detail);
        Assert.Equal("00000000-0000-0000-0000-000000000002", Assert.Single(upgraded.QueryClients(new ClientQuery { Names = ["WEB-01"] })).Uuid);

        // The index holds from now on, whatever path writes the name.
        var id = Assert.Throws<ClientNameTakenException>(() =>
            upgraded.UpdateClient("00000000-0000-0000-0000-000000000006", new ClientUpdate { DisplayName = "web-01" }, "alice", "cli"));
        Assert.Contains("00000000-0000-0000-0000-000000000002", id.Message);
    }
}

public sealed class ClientNameTestsOnPostgres() : ClientNameTests(TestEngine.Postgres);
