using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>The health monitor's records on both engines: failures before the mark, the mark, and recovery.</summary>
public abstract class HealthStoreTests(TestEngine engine) : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2026, 3, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public void MarkUnhealthy_AfterRecordedFailures_KeepsTheFirstUnhealthySince_AndClosesTheSession()
    {
        var time = new ManualTime(T0);
        using var r = TestRegistries.Open(engine, _temp.Dir, time);
        var client = Keys.Admit(r, Keys.A, Keys.Identity());
        var first = r.OpenSession(client.Uuid, Keys.A, "gw", 40_000, new byte[32], 1, 2, "hub-a");
        r.MarkSessionOnline(first.Id);

        // The row exists (a failure was recorded) when the mark comes: the upsert's update branch.
        r.RecordHealthFailure(client.Uuid, "no answer", 1);
        Assert.True(r.MarkUnhealthy(client.Uuid, first.Id, "no answer", 2, closeSession: false));
        time.Advance(TimeSpan.FromSeconds(30));
        Assert.True(r.MarkUnhealthy(client.Uuid, first.Id, "still no answer", 3));

        var health = r.ListHealth().Single(h => h.Uuid == client.Uuid);
        Assert.Equal(T0, health.UnhealthySince);
        Assert.Equal(3, health.ConsecutiveFailures);
        Assert.NotNull(r.GetSession(first.Id)!.ClosedAt);
        Assert.Equal(2, r.ListEvents().Count(e => e.Type == "client.unhealthy"));

        r.RecordHealthSuccess(client.Uuid);
        Assert.Null(r.ListHealth().Single(h => h.Uuid == client.Uuid).UnhealthySince);
    }
}

public sealed class HealthStoreTestsOnSqlite() : HealthStoreTests(TestEngine.Sqlite);

public sealed class HealthStoreTestsOnPostgres() : HealthStoreTests(TestEngine.Postgres);
