using EtPhoneHome.Core.Registry;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// The process's in-memory copy of the clients follows the registry file: changes written by anyone (another
/// process is simulated by a plain connection that knows nothing of the copy), sessions, heartbeats going stale,
/// and a file replaced under the same path.
/// </summary>
public abstract class ClientSnapshotTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private protected readonly TempData _temp = new();
    private protected readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private protected readonly SqliteRegistry _r;

    protected ClientSnapshotTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir, _time);
    }

    public void Dispose()
    {
        _r.Dispose();
        SqliteConnection.ClearAllPools();
        _temp.Dispose();
    }

    [Fact]
    public void WritesByAnotherConnection_AreSeenByTheNextSearch_WithoutReadingEverythingAgain()
    {
        var a = Keys.Admit(_r, Keys.A, Keys.Identity(name: "alpha", host: "alpha-host"));
        Keys.Admit(_r, Keys.B, Keys.Identity(name: "beta", host: "beta-host"));
        Assert.Equal(2, _r.QueryClients(new ClientQuery()).Count);
        var loads = _r.ClientCopy.FullLoads;
        var rows = _r.ClientCopy.RowsRefreshed;

        // Nothing changed: the copy is used as it is.
        Assert.Equal(2, _r.QueryClients(new ClientQuery { Query = "host" }).Count);
        Assert.Equal(rows, _r.ClientCopy.RowsRefreshed);

        Write($"UPDATE clients SET purpose = 'changed elsewhere', display_name = 'zeta' WHERE uuid = '{a.Uuid}'");
        var found = _r.QueryClients(new ClientQuery { Purpose = "ELSEWHERE" });

        Assert.Equal(["zeta"], found.Select(c => c.DisplayName));
        Assert.Equal(["beta", "zeta"], _r.QueryClients(new ClientQuery()).Select(c => c.DisplayName)); // moved in the order
        Assert.Equal(loads, _r.ClientCopy.FullLoads);
        Assert.Equal(rows + 1, _r.ClientCopy.RowsRefreshed);
    }

    [Fact]
    public void EditsThroughTheRegistry_TagsAndRemoval_AreSearchableAtOnce()
    {
        var a = Keys.Admit(_r, Keys.A, Keys.Identity(name: "alpha", tags: ["prod"]));
        Assert.Single(_r.QueryClients(new ClientQuery { Tags = ["prod"] }));

        _r.UpdateClient(a.Uuid, new ClientUpdate { AddTags = ["eu-west"], RemoveTags = ["prod"] }, "alice");
        Assert.Empty(_r.QueryClients(new ClientQuery { Tags = ["prod"] }));
        Assert.Single(_r.QueryClients(new ClientQuery { Tags = ["EU-WEST"] }));

        _r.RemoveClient(a.Uuid, "alice", "cli");
        Assert.Empty(_r.QueryClients(new ClientQuery()));
        Assert.Single(_r.QueryClients(new ClientQuery { IncludeRemoved = true }));
    }

    [Fact]
    public void SessionsAndHeartbeats_DecideOnline_AsGetClientDoes()
    {
        var a = Keys.Admit(_r, Keys.A, Keys.Identity(name: "alpha"));
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true }));

        var session = _r.OpenSession(a.Uuid, Keys.A, "gw", 40001, new byte[32], 4242, 1);
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true })); // connected, not yet online
        _r.MarkSessionOnline(session.Id);
        var online = Assert.Single(_r.QueryClients(new ClientQuery { OnlineOnly = true }));
        Assert.Equal(40001, online.TunnelPort);

        // The heartbeat goes stale: offline in every search, with no row of the client changed.
        var rows = _r.ClientCopy.RowsRefreshed;
        _time.Advance(TimeSpan.FromSeconds(3 * SqliteRegistry.DefaultHeartbeatSeconds + 1));
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true }));
        var stale = Assert.Single(_r.QueryClients(new ClientQuery()));
        Assert.False(stale.Online);
        Assert.Null(stale.TunnelPort);
        Assert.Equal(_r.GetClient(a.Uuid)!.Online, stale.Online);

        // A heartbeat brings it back; closing the session takes it offline.
        _r.TouchSession(session.Id);
        Assert.Single(_r.QueryClients(new ClientQuery { OnlineOnly = true }));
        Assert.Equal(rows, _r.ClientCopy.RowsRefreshed); // heartbeats stamp nothing
        _r.CloseSession(session.Id, "test");
        Assert.Empty(_r.QueryClients(new ClientQuery { OnlineOnly = true }));
        Assert.False(_r.GetClient(a.Uuid)!.Online);
    }

    [Fact]
    public void TwoRegistryInstances_OnOneFile_SeeEachOthersWrites()
    {
        using var other = TestRegistries.Open(Engine, _temp.Dir, _time);
        Assert.Empty(_r.QueryClients(new ClientQuery()));

        var a = Keys.Admit(other, Keys.A, Keys.Identity(name: "alpha"));
        Assert.Equal([a.Uuid], _r.QueryClients(new ClientQuery()).Select(c => c.Uuid));
        other.UpdateClient(a.Uuid, new ClientUpdate { DisplayName = "renamed" }, "bob");
        Assert.Equal(["renamed"], _r.QueryClients(new ClientQuery { Names = ["REN*"] }).Select(c => c.DisplayName));
    }

    [Fact]
    public void EveryClientRowChange_AndSessionChange_StampsTheNextSequenceValue()
    {
        var a = Keys.Admit(_r, Keys.A, Keys.Identity(name: "alpha"));
        long Seq() => Read<long>($"SELECT change_seq FROM clients WHERE uuid = '{a.Uuid}'");
        long Counter() => Read<long>("SELECT seq FROM client_changes WHERE id = 1");

        var s0 = Seq();
        Assert.Equal(Counter(), s0);
        _r.UpdateClient(a.Uuid, new ClientUpdate { Purpose = "p" }, "alice");
        var s1 = Seq();
        Assert.True(s1 > s0);
        var session = _r.OpenSession(a.Uuid, Keys.A, "gw", 40001, new byte[32], 4242, 1);
        var s2 = Seq();
        Assert.True(s2 > s1);
        _r.TouchSession(session.Id);
        Assert.Equal(s2, Seq()); // a heartbeat is not a change of the client...
        _time.Advance(TimeSpan.FromMinutes(5));
        _r.TouchSession(session.Id);
        var s3 = Seq();
        Assert.True(s3 > s2); // ...until last_seen has moved by 5 minutes
        _r.CloseSession(session.Id, "test");
        Assert.True(Seq() > s3);
        Assert.Equal(Counter(), Seq());
    }

    [Fact]
    public void TheChangeTrigger_CoversEveryClientColumn_ButLastSeen()
    {
        using var c = _r.OpenConnection();
        using var columns = c.CreateCommand();
        columns.CommandText = Engine == TestEngine.Sqlite
            ? "SELECT name FROM pragma_table_info('clients')"
            : "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = 'clients'";
        var names = new List<string>();
        using (var reader = columns.ExecuteReader())
        {
            while (reader.Read())
            {
                names.Add(reader.GetString(0));
            }
        }

        using var trigger = c.CreateCommand();
        trigger.CommandText = Engine == TestEngine.Sqlite
            ? "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'clients_change_update'"
            : "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgname = 'clients_change_update' AND tgrelid = 'clients'::regclass";
        var sql = (string)trigger.ExecuteScalar()!;
        var listed = sql[(sql.IndexOf("UPDATE OF", StringComparison.Ordinal) + 9)..sql.IndexOf(" ON ", sql.IndexOf("UPDATE OF", StringComparison.Ordinal), StringComparison.Ordinal)]
            .Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);

        Assert.Equal(names.Except(["last_seen", "change_seq"]).Order(), listed.Order());
    }

    private protected void Write(string sql)
    {
        using var c = _r.OpenConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        Assert.Equal(1, cmd.ExecuteNonQuery());
    }

    private protected T Read<T>(string sql)
    {
        using var c = _r.OpenConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return (T)Convert.ChangeType(cmd.ExecuteScalar()!, typeof(T), System.Globalization.CultureInfo.InvariantCulture);
    }
}

public sealed class ClientSnapshotTestsOnSqlite() : ClientSnapshotTests(TestEngine.Sqlite)
{
    // What only the SQLite file has: its mode, the native library, its query plans, upgrades of older files.
    [Fact]
    public void AFileReplacedUnderTheSamePath_IsReadAgain()
    {
        using var temp = new TempData();
        using (var first = TestRegistries.Open(Engine, temp.Dir, _time))
        {
            Keys.Admit(first, Keys.A, Keys.Identity(name: "old-one"));
            Keys.Admit(first, Keys.B, Keys.Identity(name: "old-two"));
            Assert.Equal(2, first.QueryClients(new ClientQuery()).Count);
        }

        SqliteConnection.ClearAllPools();
        Directory.Delete(temp.Dir.Path, recursive: true);
        using var second = TestRegistries.Open(Engine, temp.Dir, _time);
        Keys.Admit(second, Keys.C, Keys.Identity(name: "new-one"));

        // The new file's counter is as low as the old one's was: only its instance id tells them apart.
        Assert.Equal(["new-one"], second.QueryClients(new ClientQuery()).Select(c => c.DisplayName));
    }
}

public sealed class ClientSnapshotTestsOnPostgres() : ClientSnapshotTests(TestEngine.Postgres);
