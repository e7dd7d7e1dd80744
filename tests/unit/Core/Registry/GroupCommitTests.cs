using System.Data.Common;
using EtPhoneHome.Agent;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// Operations that start or end together (a fan-out) share the registry's write transactions: each keeps its own
/// result, its own rate-limit count and its own history attribution; one piece's fault is its own; and a fan-out
/// waiting for another writer's lock does not hold a pooled connection per target.
/// </summary>
public abstract class GroupCommitTests(TestEngine engine) : IDisposable
{
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>Takes the registry's writer lock on a connection of its own, as another process or hub writing would.</summary>
    private (DbConnection Connection, DbTransaction Lock) HoldWriterLock(SqliteRegistry registry)
    {
        var c = registry.OpenConnection();
        return (c, BeginWrite(c));
    }

    private DbTransaction BeginWrite(DbConnection c)
    {
        if (c is Microsoft.Data.Sqlite.SqliteConnection sqlite)
        {
            return sqlite.BeginTransaction(deferred: false);
        }

        var tx = c.BeginTransaction();
        PostgresEngine.Lock(c, tx, TestRegistries.SchemaOf(_temp.Dir));
        return tx;
    }

    /// <summary>An online target whose tunnel is <paramref name="port"/> on loopback.</summary>
    private static FleetTarget Target(long id, string uuid, string name, int port, byte[] secret) => new(uuid, name, new SessionRecord
    {
        Id = id,
        Uuid = uuid,
        Fingerprint = "SHA256:gc",
        Host = "localhost",
        TunnelPort = port,
        Secret = secret,
        ConnectedAt = DateTimeOffset.UtcNow,
        LastHeartbeat = DateTimeOffset.UtcNow,
    });

    private static OperationGuard Guard(SqliteRegistry registry) =>
        new(registry, new OperatorContext("tester", Surfaces.Cli)) { RateLimits = new RateLimitPolicy { FallbackMode = RateLimitMode.Warn } };

    private static AuditEntry Entry(string uuid, string detail) => new()
    {
        Operation = OperationNames.RunCommand,
        Uuid = uuid,
        Actor = "tester",
        Surface = Surfaces.Cli,
        Status = "succeeded",
        Detail = detail,
        DurationMs = 1,
    };

    [Fact]
    public async Task RequestsQueuedBehindAnotherWriter_ShareAFewTransactions_AndEachGetsItsOwnSlot()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var uuid = Keys.Admit(registry, Keys.A, Keys.Identity()).Uuid;
        var policy = new RateLimitPolicy { Concurrent = 1000, Rpm = 1000, FallbackMode = RateLimitMode.Enforce };
        var before = registry.GroupCommits;

        var (c, held) = HoldWriterLock(registry);
        var starts = Enumerable.Range(0, 100).Select(i => registry.BeginRequestAsync(uuid, policy, Entry(uuid, $"refused {i}"))).ToList();
        await Task.Delay(300);
        Assert.DoesNotContain(starts, t => t.IsCompleted); // they really wait for the lock
        held.Commit();
        held.Dispose();
        c.Dispose();
        var admissions = await Task.WhenAll(starts).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.All(admissions, a => Assert.True(a.Allowed));
        Assert.Equal(100, admissions.Select(a => a.InflightId).Distinct().Count());
        Assert.InRange(registry.GroupCommits - before, 1, 3); // not 100
        Assert.Equal(100, registry.GetRateLimitStats([uuid], policy).Single().CurrentConcurrent);

        await Task.WhenAll(admissions.Select((a, i) => registry.CompleteRequestAsync(a.InflightId, Entry(uuid, $"done {i}")))).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(0, registry.GetRateLimitStats([uuid], policy).Single().CurrentConcurrent);
        Assert.Equal(100, registry.CountHistory(new HistoryQuery { Uuids = [uuid], Statuses = ["succeeded"] }));
    }

    [Fact]
    public async Task AnEnforcedLimit_CountsEachRequestOfABatchInTurn()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var uuid = Keys.Admit(registry, Keys.A, Keys.Identity()).Uuid;
        var policy = new RateLimitPolicy { Concurrent = 5, Rpm = 1000, FallbackMode = RateLimitMode.Enforce };

        var (c, held) = HoldWriterLock(registry);
        var starts = Enumerable.Range(0, 20).Select(i => registry.BeginRequestAsync(uuid, policy, Entry(uuid, $"refused {i}") with { Status = "rate_limited" })).ToList();
        await Task.Delay(100);
        held.Commit();
        held.Dispose();
        c.Dispose();
        var admissions = await Task.WhenAll(starts).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(5, admissions.Count(a => a.Allowed));
        Assert.Equal(15, registry.CountHistory(new HistoryQuery { Uuids = [uuid], Statuses = ["rate_limited"] }));
        Assert.Equal(5, registry.GetRateLimitStats([uuid], policy).Single().CurrentConcurrent);
    }

    [Fact]
    public async Task EachCallersAttribution_IsRecorded_ThoughAnotherThreadWritesTheBatch()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var uuid = Keys.Admit(registry, Keys.A, Keys.Identity()).Uuid;
        var (c, held) = HoldWriterLock(registry);
        Task First()
        {
            using (HistoryAttribution.Begin("reader", "192.0.2.1"))
            {
                return registry.CompleteRequestAsync(0, Entry(uuid, "first"));
            }
        }

        Task Second()
        {
            using (HistoryAttribution.Begin("admin", "192.0.2.2"))
            {
                return registry.CompleteRequestAsync(0, Entry(uuid, "second"));
            }
        }

        var writes = new[] { First(), Second(), registry.CompleteRequestAsync(0, Entry(uuid, "third")) };
        held.Commit();
        held.Dispose();
        c.Dispose();
        await Task.WhenAll(writes).WaitAsync(TimeSpan.FromSeconds(60));

        var rows = registry.QueryHistory(new HistoryQuery { Uuids = [uuid] }).ToDictionary(e => e.Detail!, e => (e.Role, e.Source));
        Assert.Equal(("reader", "192.0.2.1"), rows["first"]);
        Assert.Equal(("admin", "192.0.2.2"), rows["second"]);
        Assert.Equal((null, null), rows["third"]);
    }

    [Fact]
    public async Task APieceThatFails_FailsAlone_AndTheOthersAreWritten()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var commit = new GroupCommit(registry.OpenConnection, BeginWrite);
        static int Insert(DbConnection c, DbTransaction tx, string key)
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO settings(key, value) VALUES (@k, 'v')";
            cmd.Parameters.AddWithValue("@k", key);
            return cmd.ExecuteNonQuery();
        }

        var (c, held) = HoldWriterLock(registry);
        var pieces = new[] { "gc-1", "gc-2", "gc-1", "gc-3" }.Select(k => commit.RunAsync((cn, tx) => Insert(cn, tx, k))).ToList();
        held.Commit();
        held.Dispose();
        c.Dispose();
        await Task.WhenAny(Task.WhenAll(pieces), Task.Delay(TimeSpan.FromSeconds(60)));

        Assert.Equal([TaskStatus.RanToCompletion, TaskStatus.RanToCompletion, TaskStatus.Faulted, TaskStatus.RanToCompletion], pieces.Select(p => p.Status));
        Assert.IsAssignableFrom<DbException>(pieces[2].Exception!.InnerException);
        Assert.Equal(["v", "v", "v"], new[] { "gc-1", "gc-2", "gc-3" }.Select(registry.GetSetting));
    }

    [Fact]
    public async Task WhenTheDatabaseCannotBeReached_EachBatchFailsAsOne_NotAgainPieceByPiece()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var connects = 0;
        using var firstConnect = new ManualResetEventSlim();
        DbConnection Unreachable()
        {
            if (Interlocked.Increment(ref connects) == 1)
            {
                firstConnect.Wait(TimeSpan.FromSeconds(30)); // the rest queue meanwhile
            }

            throw new InvalidOperationException("the registry database is out of reach");
        }

        var commit = new GroupCommit(Unreachable, BeginWrite);
        var pieces = Enumerable.Range(0, 20).Select(_ => commit.RunAsync((c, tx) => 1)).ToList();
        firstConnect.Set();
        await Task.WhenAny(Task.WhenAll(pieces), Task.Delay(TimeSpan.FromSeconds(60)));

        Assert.All(pieces, p => Assert.Equal("the registry database is out of reach", p.Exception?.InnerException?.Message));
        // At most two batches (the first piece's, then the nineteen queued behind it), each tried four times; piece by
        // piece it would be at least twenty tries.
        Assert.InRange(connects, 1, 8);
    }

    [Fact]
    public async Task ABriefOutage_IsWaitedOut_AndEveryPieceIsWritten()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var connects = 0;
        DbConnection Flaky() => Interlocked.Increment(ref connects) <= 2
            ? throw new InvalidOperationException("connection refused (the database restarts)")
            : registry.OpenConnection();

        var commit = new GroupCommit(Flaky, BeginWrite);
        var pieces = new[] { "blip-1", "blip-2", "blip-3" }.Select(k => commit.RunAsync((c, tx) =>
        {
            using var cmd = c.CreateCommand();
            cmd.Transaction = tx;
            cmd.CommandText = "INSERT INTO settings(key, value) VALUES (@k, 'v')";
            cmd.Parameters.AddWithValue("@k", k);
            return cmd.ExecuteNonQuery();
        })).ToList();
        await Task.WhenAll(pieces).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(["v", "v", "v"], new[] { "blip-1", "blip-2", "blip-3" }.Select(registry.GetSetting));
    }

    [Fact]
    public async Task ACommandToAnUnreachableTarget_IsRecordedAsUnreachable_ThroughTheSharedQueue()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var uuid = Keys.Admit(registry, Keys.A, Keys.Identity()).Uuid;
        using var nothing = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        nothing.Start();
        var port = ((System.Net.IPEndPoint)nothing.LocalEndpoint).Port;
        nothing.Stop(); // a port nobody listens on: the connection is refused
        var target = Target(1, uuid, "gone", port, new byte[32]);
        var guard = Guard(registry);
        var before = registry.GroupCommits;

        await Assert.ThrowsAnyAsync<Exception>(() => new TunnelCommandTransport { Guard = guard }.RunAsync(target, new RunCommandParams { Cmd = "true" }, CancellationToken.None));

        var entry = Assert.Single(registry.QueryHistory(new HistoryQuery { Uuids = [uuid] }));
        Assert.Equal(("error", "true → unreachable"), (entry.Status, entry.Detail));
        Assert.Equal(2, registry.GroupCommits - before); // its start and its end, neither written alone by a blocked thread
        Assert.Equal(0, registry.GetRateLimitStats([uuid], new RateLimitPolicy()).Single().CurrentConcurrent);
    }

    [Fact]
    public async Task AFanOut_WhileAnotherWriterHoldsTheLock_WaitsOnOneConnection_NotOnePerTarget()
    {
        // A pool of 3 connections that a caller waits 1 s for, and another writer holding the registry's lock for 4 s:
        // when every target's start took its own connection and waited for the lock on it, the targets after the
        // third ran the pool dry and failed ("The connection pool has been exhausted").
        var registry = engine == TestEngine.Sqlite
            ? TestRegistries.Open(engine, _temp.Dir)
            : SqliteRegistry.Open(_temp.Dir, RegistrySource.Postgres(new Npgsql.NpgsqlConnectionStringBuilder(PostgresCluster.Shared.ConnectionString(TestRegistries.SchemaOf(_temp.Dir)))
            {
                MaxPoolSize = 3,
                Timeout = 1,
            }.ConnectionString));
        using var _ = registry;
        const int Targets = 24;
        var servers = new List<RpcServer>();
        var targets = new List<FleetTarget>();
        try
        {
            for (var i = 0; i < Targets; i++)
            {
                var server = new RpcServer();
                server.Start();
                servers.Add(server);
                var secret = TunnelHandshake.NewSecret();
                var uuid = Guid.NewGuid().ToString();
                server.SetSession(secret, uuid, null);
                targets.Add(Target(i + 1, uuid, $"gc-{i:D2}", server.Port, secret));
            }

            var guard = Guard(registry);
            var executor = new FleetExecutor(new TunnelCommandTransport { Guard = guard });
            var (c, held) = HoldWriterLock(registry);
            var release = Task.Run(async () =>
            {
                await Task.Delay(TimeSpan.FromSeconds(4));
                held.Commit();
                held.Dispose();
                c.Dispose();
            });

            var results = new List<FleetCommandResult>();
            using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
            await foreach (var r in executor.RunAsync(targets, new RunCommandParams { Cmd = "true" }, new FleetOptions { ThrottleLimit = Targets }, limit.Token))
            {
                results.Add(r);
            }

            await release;
            Assert.Equal(Targets, results.Count);
            Assert.All(results, r => Assert.True(r.Status == CommandStatus.Succeeded, $"{r.DisplayName}: {r.Status} {r.Error}"));
            Assert.Equal(Targets, registry.CountHistory(new HistoryQuery { Statuses = ["succeeded"] }));
        }
        finally
        {
            foreach (var server in servers)
            {
                await server.DisposeAsync();
            }
        }
    }
}

public sealed class GroupCommitTestsOnSqlite() : GroupCommitTests(TestEngine.Sqlite);

public sealed class GroupCommitTestsOnPostgres() : GroupCommitTests(TestEngine.Postgres)
{
    [Fact]
    public async Task AHubsHeartbeat_IsWritten_WhileAnotherWriterHoldsTheWriterLock()
    {
        // The other hubs take a hub that has not beaten for the dead-hub timeout for dead and close its sessions: its
        // heartbeat must not queue behind a burst of other writers for their lock.
        using var temp = new TempData();
        using var registry = TestRegistries.Open(TestEngine.Postgres, temp.Dir);
        registry.BeatHub("hub-1", "gw-1", 1234);
        using var c = registry.OpenConnection();
        using var held = c.BeginTransaction();
        PostgresEngine.Lock(c, held, TestRegistries.SchemaOf(temp.Dir));

        var beat = Task.Run(() => registry.BeatHub("hub-1", "gw-1", 1234));
        var done = await Task.WhenAny(beat, Task.Delay(TimeSpan.FromSeconds(20)));
        held.Commit();

        Assert.Same(beat, done);
        Assert.Equal("hub-1", (await beat).Id);
    }

    [Fact]
    public void AHubsHeartbeat_IsWritten_WhileOtherWritersHoldEveryConnectionOfThePool()
    {
        using var temp = new TempData();
        TestRegistries.Open(TestEngine.Postgres, temp.Dir).Dispose(); // the schema, migrated
        using var registry = SqliteRegistry.Open(temp.Dir, RegistrySource.Postgres(new Npgsql.NpgsqlConnectionStringBuilder(
            PostgresCluster.Shared.ConnectionString(TestRegistries.SchemaOf(temp.Dir))) { MaxPoolSize = 2, Timeout = 1 }.ConnectionString));
        using var first = registry.OpenConnection();
        using var second = registry.OpenConnection(); // the pool is empty now

        Assert.ThrowsAny<Exception>(() => registry.OpenConnection().Dispose()); // as the writers of a busy hub would find it
        Assert.Equal("hub-1", registry.BeatHub("hub-1", "gw-1", 1234).Id);
    }
}
