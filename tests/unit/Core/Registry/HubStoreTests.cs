using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// Several hubs on one registry: heartbeat rows, sessions that name their hub, and the closing of a dead hub's sessions —
/// once, even when every survivor notices at the same moment (two registry instances on one database).
/// </summary>
public abstract class HubStoreTests(TestEngine engine) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    private static SessionRecord Online(SqliteRegistry r, string fingerprint, string host, string hubId)
    {
        var client = Keys.Admit(r, fingerprint, Keys.Identity(host: host, name: host));
        var session = r.OpenSession(client.Uuid, fingerprint, "gw-" + hubId, 40_000, new byte[32], 100, 200, hubId);
        r.MarkSessionOnline(session.Id);
        return r.GetSession(session.Id)!;
    }

    [Fact]
    public void BeatHub_RecordsOneRowPerHub_StartedAtKeptWhileTheSameProcessBeats()
    {
        var time = new ManualTime(T0);
        using var r = TestRegistries.Open(engine, _temp.Dir, time);
        r.BeatHub("hub-a", "gw-a", 11);
        time.Advance(TimeSpan.FromSeconds(5));
        var again = r.BeatHub("hub-a", "gw-a", 11);
        r.BeatHub("hub-b", "gw-b", 22);

        Assert.Equal(T0, again.StartedAt);
        Assert.Equal(T0 + TimeSpan.FromSeconds(5), again.LastSeen);
        Assert.Equal(["hub-a", "hub-b"], r.ListHubs().Select(h => h.Id));

        time.Advance(TimeSpan.FromSeconds(5));
        var restarted = r.BeatHub("hub-a", "gw-a", 12);
        Assert.Equal(time.GetUtcNow(), restarted.StartedAt);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-lead")]
    [InlineData("has space")]
    [InlineData("new\nline")]
    [InlineData("x'; DROP TABLE hubs; --")]
    public void AHubIdOutsideTheAlphabet_IsRefused_AndNothingIsWritten(string id)
    {
        using var r = TestRegistries.Open(engine, _temp.Dir);
        Assert.Throws<ArgumentException>(() => r.BeatHub(id, "gw", 1));
        Assert.Empty(r.ListHubs());
    }

    [Fact]
    public void OpenSession_RecordsItsHub_AndListOpenSessionsOf_ReturnsOnlyThatHubs()
    {
        using var r = TestRegistries.Open(engine, _temp.Dir);
        var a = Online(r, Keys.A, "web-a", "hub-a");
        var b = Online(r, Keys.B, "web-b", "hub-b");

        Assert.Equal("hub-a", r.GetSession(a.Id)!.HubId);
        Assert.Equal([a.Id], r.ListOpenSessionsOf("hub-a").Select(s => s.Id));
        Assert.Equal([b.Id], r.ListOpenSessionsOf("hub-b").Select(s => s.Id));
    }

    [Fact]
    public void ADeadHubsSessions_AreClosedBySurvivor_OwnAndLiveHubsSessionsAreNot()
    {
        var time = new ManualTime(T0);
        using var r = TestRegistries.Open(engine, _temp.Dir, time);
        r.BeatHub("hub-dead", "gw-dead", 1);
        r.BeatHub("hub-live", "gw-live", 2);
        r.BeatHub("hub-me", "gw-me", 3);
        var dead = Online(r, Keys.A, "web-a", "hub-dead");
        var live = Online(r, Keys.B, "web-b", "hub-live");
        var mine = Online(r, Keys.C, "web-c", "hub-me");

        time.Advance(TimeSpan.FromSeconds(30));
        Assert.Empty(r.CloseSessionsOfDeadHubs("hub-me", TimeSpan.FromSeconds(60)));

        time.Advance(TimeSpan.FromSeconds(40));
        r.BeatHub("hub-live", "gw-live", 2);
        // hub-me's own row is old too: a hub never declares itself dead.
        var closed = r.CloseSessionsOfDeadHubs("hub-me", TimeSpan.FromSeconds(60));

        Assert.Equal([dead.Id], closed.Select(s => s.Id));
        var row = r.GetSession(dead.Id)!;
        Assert.NotNull(row.ClosedAt);
        Assert.Contains("hub hub-dead stopped", row.CloseReason);
        Assert.False(r.GetClient(dead.Uuid)!.Online);
        Assert.Null(r.GetSession(live.Id)!.ClosedAt);
        Assert.Null(r.GetSession(mine.Id)!.ClosedAt);
        Assert.Single(r.ListEvents(), e => e.Type == "client.disconnected" && e.Uuid == dead.Uuid);
    }

    [Fact]
    public async Task TwoSurvivorsAtOnce_CloseADeadHubsSessionsOnce_OneEventPerSession()
    {
        var time = new ManualTime(T0);
        using var first = TestRegistries.Open(engine, _temp.Dir, time);
        using var second = TestRegistries.Open(engine, _temp.Dir, time);
        first.BeatHub("hub-dead", "gw-dead", 1);
        var fingerprints = Enumerable.Range(0, 8).Select(i => $"SHA256:dead{i:D39}").ToArray();
        var sessions = fingerprints.Select((fp, i) => Online(first, fp, "web-" + i, "hub-dead")).ToList();
        time.Advance(TimeSpan.FromMinutes(5));

        var results = await Task.WhenAll(Enumerable.Range(0, 6).Select(i => Task.Run(() =>
            (i % 2 == 0 ? first : second).CloseSessionsOfDeadHubs(i % 2 == 0 ? "hub-b" : "hub-c", TimeSpan.FromSeconds(60)))));

        Assert.Equal(sessions.Select(s => s.Id).Order(), results.SelectMany(x => x).Select(s => s.Id).Order());
        var disconnected = first.ListEvents().Where(e => e.Type == "client.disconnected").Select(e => e.Uuid).ToList();
        Assert.Equal(sessions.Select(s => s.Uuid).Order(), disconnected.Order());
    }

    [Fact]
    public void ASessionOfAHubThatNeverBeat_IsLeftToItsHost()
    {
        // Sessions of a registry before hub ids (hub_id NULL) and hubs without a row are nobody's to close here:
        // the hub of their host adopts or closes them at its start.
        var time = new ManualTime(T0);
        using var r = TestRegistries.Open(engine, _temp.Dir, time);
        var legacy = Keys.Admit(r, Keys.A, Keys.Identity(host: "old"));
        var old = r.OpenSession(legacy.Uuid, Keys.A, "gw-old", 40_001, new byte[32], 1, 2);
        time.Advance(TimeSpan.FromHours(1));

        Assert.Empty(r.CloseSessionsOfDeadHubs("hub-me", TimeSpan.FromSeconds(60)));
        Assert.Null(r.GetSession(old.Id)!.ClosedAt);
        Assert.Null(r.GetSession(old.Id)!.HubId);
    }
}

public sealed class HubStoreTestsOnSqlite() : HubStoreTests(TestEngine.Sqlite);

public sealed class HubStoreTestsOnPostgres() : HubStoreTests(TestEngine.Postgres);
