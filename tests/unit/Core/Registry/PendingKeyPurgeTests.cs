using System.Diagnostics;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>Pending keys expire and can be purged in bulk; enrolment keeps working with the table full.</summary>
public abstract class PendingKeyPurgeTests(TestEngine engine, ITestOutputHelper output) : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; } = engine;

    private static readonly OperatorContext Alice = new("alice", Surfaces.Cli);
    private readonly TempData _temp = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private SqliteRegistry? _registry;

    private SqliteRegistry R => _registry ??= TestRegistries.Open(Engine, _temp.Dir, _time);

    public void Dispose()
    {
        _registry?.Dispose();
        _temp.Dispose();
    }

    /// <summary>A: unseen 10 days, B: unseen 8 days, C: seen 1 day ago, D: approved and unseen 10 days, E: revoked.</summary>
    private void Seed()
    {
        R.RecordPendingKey(Keys.A, null, Keys.Identity("old-a"));
        Keys.Admit(R, Keys.D, Keys.Identity("web-01"));
        _time.Advance(TimeSpan.FromDays(2));
        R.RecordPendingKey(Keys.B, null, Keys.Identity("old-b", claimed: R.ListKeys(KeyStatus.Approved)[0].Uuid)); // a mismatch claim
        R.RecordPendingKey(E, null, Keys.Identity("revoked"));
        R.RevokeKey(E, "alice");
        _time.Advance(TimeSpan.FromDays(7));
        R.RecordPendingKey(Keys.C, null, Keys.Identity("fresh"));
        _time.Advance(TimeSpan.FromDays(1));
    }

    private const string E = "SHA256:EEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEEE";

    [Fact]
    public void Purge_RemovesOnlyPendingKeysUnseenForLongerThanTheAge_OldestFirst_AndRecordsWhoDidIt()
    {
        Seed();

        var purged = KeyLimits.PurgePendingKeys(R, TimeSpan.FromDays(7), Alice);

        Assert.Equal([Keys.A, Keys.B], purged.Select(k => k.Fingerprint));
        Assert.Null(R.GetKey(Keys.A));
        Assert.Null(R.GetKey(Keys.B));
        Assert.Equal(KeyStatus.Pending, R.GetKey(Keys.C)!.Status);
        Assert.Equal(KeyStatus.Approved, R.GetKey(Keys.D)!.Status);
        Assert.Equal(KeyStatus.Revoked, R.GetKey(E)!.Status);

        var entry = R.QueryHistory(new HistoryQuery { Operations = [OperationNames.PurgeKeys] }).Single();
        Assert.Equal(("alice", "cli", "succeeded"), (entry.Actor, entry.Surface, entry.Status));
        Assert.Contains("2 pending key(s) unseen for more than 7d", entry.Detail);
        Assert.Contains(Keys.A, entry.Detail);
    }

    [Fact]
    public void Purge_DryRun_ListsTheSameKeys_AndChangesNothing()
    {
        Seed();
        var before = R.ListKeys().Count;

        var wouldGo = KeyLimits.ExpiredPendingKeys(R, TimeSpan.FromDays(7));

        Assert.Equal([Keys.A, Keys.B], wouldGo.Select(k => k.Fingerprint));
        Assert.Equal(before, R.ListKeys().Count);
        Assert.Empty(R.QueryHistory(new HistoryQuery { Operations = [OperationNames.PurgeKeys] }));
    }

    [Fact]
    public void Purge_WithNothingToPurge_IsRecordedAsUnchangedForAnOperator_AndLeavesNoTraceForTheHub()
    {
        R.RecordPendingKey(Keys.A, null, Keys.Identity());

        Assert.Empty(KeyLimits.PurgePendingKeys(R, TimeSpan.FromDays(7), new OperatorContext(KeyLimits.HubActor, Surfaces.Hub)));
        Assert.Empty(R.QueryHistory(new HistoryQuery()));

        Assert.Empty(KeyLimits.PurgePendingKeys(R, TimeSpan.FromDays(7), Alice));
        Assert.Equal("unchanged", Assert.Single(R.QueryHistory(new HistoryQuery())).Status);
    }

    [Fact]
    public void Purge_ZeroAgePurgesEveryPendingKey_ANegativeAgeIsRefused_AHugeAgePurgesNothing()
    {
        Seed();
        Assert.Throws<ArgumentOutOfRangeException>(() => KeyLimits.PurgePendingKeys(R, TimeSpan.FromSeconds(-1), Alice));
        Assert.Empty(KeyLimits.PurgePendingKeys(R, TimeSpan.MaxValue, Alice));
        Assert.Equal(3, KeyLimits.PurgePendingKeys(R, TimeSpan.Zero, Alice).Count);
        Assert.Empty(R.ListKeys(KeyStatus.Pending));
    }

    [Fact]
    public void APurgedKeysAgent_ThatComesBack_IsPendingAgain()
    {
        Seed();
        KeyLimits.PurgePendingKeys(R, TimeSpan.FromDays(7), Alice);

        var again = R.RecordPendingKey(Keys.A, null, Keys.Identity("old-a"));

        Assert.Equal(KeyStatus.Pending, again.Status);
        Assert.Equal(_time.GetUtcNow(), again.FirstSeen);
    }

    [Fact]
    public void Enrolment_WithTheTableFullOfPendingKeys_StillRecordsAndApprovesANewMachine()
    {
        // The load of the report: 10,000 pending keys used to refuse every new key.
        const int flood = 10_000;
        R.MaxPendingKeys = flood;
        var fill = Stopwatch.StartNew();
        for (var i = 0; i < flood; i++)
        {
            R.RecordPendingKey($"SHA256:flood{i:D38}", null, Keys.Identity($"flood-{i}"));
        }

        fill.Stop();
        _time.Advance(TimeSpan.FromMinutes(1));

        var record = Stopwatch.StartNew();
        var key = R.RecordPendingKey(Keys.A, null, Keys.Identity("new-machine"));
        record.Stop();
        var approve = Stopwatch.StartNew();
        var outcome = R.ApproveKey(Keys.A, "alice");
        approve.Stop();
        var purge = Stopwatch.StartNew();
        var purged = KeyLimits.PurgePendingKeys(R, TimeSpan.FromSeconds(30), Alice);
        purge.Stop();

        output.WriteLine($"filled {flood} pending keys in {fill.ElapsedMilliseconds} ms; new machine recorded in {record.Elapsed.TotalMilliseconds:0.0} ms, " +
                         $"approved in {approve.Elapsed.TotalMilliseconds:0.0} ms; purge of {purged.Count} in {purge.ElapsedMilliseconds} ms");
        Assert.Equal(KeyStatus.Pending, key.Status);
        Assert.False(outcome.AlreadyApproved);
        Assert.Equal(KeyStatus.Approved, R.GetKey(Keys.A)!.Status);
        Assert.Null(R.GetKey($"SHA256:flood{0:D38}")); // the key unseen the longest gave way
        Assert.Equal(flood - 1, purged.Count);
        Assert.Empty(R.ListKeys(KeyStatus.Pending));
        Assert.True(record.Elapsed < TimeSpan.FromSeconds(1), $"recording took {record.Elapsed}");
    }
}

public sealed class PendingKeyPurgeTestsOnSqlite(ITestOutputHelper output) : PendingKeyPurgeTests(TestEngine.Sqlite, output);

public sealed class PendingKeyPurgeTestsOnPostgres(ITestOutputHelper output) : PendingKeyPurgeTests(TestEngine.Postgres, output);
