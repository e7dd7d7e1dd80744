using EtPhoneHome.Core.Logging;
using System.Diagnostics;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Microsoft.Data.Sqlite;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class RateLimitTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly TempData _data = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly SqliteRegistry _registry;
    private readonly List<string> _warnings = [];
    private readonly string _uuid;

    public RateLimitTests(ITestOutputHelper output)
    {
        _output = output;
        _registry = SqliteRegistry.Open(_data.Dir, _time);
        _uuid = Keys.Admit(_registry, Keys.A, Keys.Identity()).Uuid;
    }

    private OperationGuard Guard(IRateLimitLedger? registry = null, RateLimitMode fallback = RateLimitMode.Warn) =>
        new(registry ?? _registry, new OperatorContext("alice", Surfaces.Cli))
        {
            RateLimits = new RateLimitPolicy { FallbackMode = fallback },
            Log = new DelegateLog(e => _warnings.Add(e.Message)),
        };

    private RateLimitStats Stats(IRateLimitLedger? registry = null) =>
        (registry ?? _registry).GetRateLimitStats([_uuid], new RateLimitPolicy { FallbackMode = RateLimitMode.Warn }).Single();

    private void Request(OperationGuard? guard = null)
    {
        using var lease = (guard ?? Guard()).Begin(_uuid, "run_command", "true");
        lease.Complete(OperationStatus.Succeeded, exitCode: 0);
    }

    [Fact]
    public void Defaults_Are60PerMinuteAnd10Concurrent_InWarnMode()
    {
        var stats = Stats();
        Assert.Equal((0, 0, 60, 10, 0L, 0L, RateLimitMode.Warn),
            (stats.RequestsPerMinute, stats.CurrentConcurrent, stats.RpmLimit, stats.ConcurrentLimit, stats.RpmWarnings, stats.ConcurrentWarnings, stats.Mode));
    }

    [Fact]
    public void Window_ARequest59_9SecondsOldCounts_At60_1SecondsItDoesNot()
    {
        Request();
        _time.Advance(TimeSpan.FromSeconds(59.9));
        Assert.Equal(1, Stats().RequestsPerMinute);
        Request();
        Assert.Equal(2, Stats().RequestsPerMinute);

        _time.Advance(TimeSpan.FromSeconds(0.2));   // the first is now 60.1 s old
        Assert.Equal(1, Stats().RequestsPerMinute);
        _time.Advance(TimeSpan.FromSeconds(60));
        Assert.Equal(0, Stats().RequestsPerMinute);
    }

    [Fact]
    public void WarnMode_OverTheRpmLimit_RunsTheRequest_LogsAndCounts()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitRpm = 2 }, "tester");
        Request();
        Request();
        Assert.Empty(_warnings);
        Request();

        var warning = Assert.Single(_warnings);
        Assert.Contains("3 requests in the last 60 s, over the limit of 2 (rate_limit_rpm)", warning);
        var stats = Stats();
        Assert.Equal((3, 2, 1L, 0L), (stats.RequestsPerMinute, stats.RpmLimit, stats.RpmWarnings, stats.ConcurrentWarnings));
        Assert.Equal(3, _registry.ListAudit(_uuid).Count(a => a.Operation == "run_command" && a.Status == "succeeded"));
    }

    [Fact]
    public void EnforceMode_RefusesOverTheLimit_WithAClearError_AndCountsNothingButTheRefusal()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitRpm = 2 }, "tester");
        _registry.SetSetting(RateLimitPolicy.ModeSetting, "enforce");
        Request();
        Request();

        var ex = Assert.Throws<RateLimitExceededException>(() => Guard().Begin(_uuid, "run_command", "uptime"));
        Assert.Contains("3 requests in the last 60 s, over the limit of 2 (rate_limit_rpm)", ex.Message);
        Assert.Contains("refused", ex.Message);
        var stats = Stats();
        Assert.Equal((2, 0, 1L, RateLimitMode.Enforce), (stats.RequestsPerMinute, stats.CurrentConcurrent, stats.RpmWarnings, stats.Mode));
        var refusal = _registry.ListAudit(_uuid).First();
        Assert.Equal(("rate_limited", "uptime", "alice"), (refusal.Status, refusal.Detail, refusal.Actor));
        Assert.DoesNotContain(_registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["command_executed"], Limit = 10 }),
            e => e.Payload.Contains("uptime", StringComparison.Ordinal));

        // A fan-out reports the refusal as RateLimited.
        var result = FleetCommandResult.FromException(FakeFleet.Online("web"), ex, 0);
        Assert.Equal(CommandStatus.RateLimited, result.Status);
        Assert.StartsWith("RATE_LIMITED:", result.Error);

        _time.Advance(TimeSpan.FromSeconds(61));
        Request();   // the window moved on
    }

    [Fact]
    public void TheSettingWinsOverTheFallback()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitConcurrent = 1 }, "tester");
        _registry.SetSetting(RateLimitPolicy.ModeSetting, "warn");
        using var first = Guard(fallback: RateLimitMode.Enforce).Begin(_uuid, "run_command");
        using var second = Guard(fallback: RateLimitMode.Enforce).Begin(_uuid, "run_command");
        Assert.Single(_warnings);

        _registry.SetSetting(RateLimitPolicy.ModeSetting, null);
        Assert.Throws<RateLimitExceededException>(() => Guard(fallback: RateLimitMode.Enforce).Begin(_uuid, "run_command"));
    }

    [Fact]
    public void Concurrency_CountsLeasesInFlight_AndCompletingOneFreesASlot()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitConcurrent = 2 }, "tester");
        _registry.SetSetting(RateLimitPolicy.ModeSetting, "enforce");
        var a = Guard().Begin(_uuid, "run_command");
        var b = Guard().Begin(_uuid, "run_command");
        Assert.Equal(2, Stats().CurrentConcurrent);

        var ex = Assert.Throws<RateLimitExceededException>(() => Guard().Begin(_uuid, "run_command"));
        Assert.Contains("3 requests in flight, over the limit of 2 (rate_limit_concurrent)", ex.Message);
        a.Complete(OperationStatus.Succeeded);
        using var c = Guard().Begin(_uuid, "run_command");
        b.Dispose();
        Assert.Equal(1, Stats().CurrentConcurrent);
        Assert.Equal(1, Stats().ConcurrentWarnings);
    }

    [Fact]
    public void TwoRegistryInstances_LikeTwoProcesses_ShareOneCount()
    {
        using var second = SqliteRegistry.Open(_data.Dir, _time);
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitRpm = 3, RateLimitConcurrent = 2 }, "tester");
        _registry.SetSetting(RateLimitPolicy.ModeSetting, "enforce");
        var pwsh = Guard(_registry);
        var mcp = Guard(second);

        Request(pwsh);
        using var held = mcp.Begin(_uuid, "run_command");
        Assert.Equal((2, 1), (Stats(second).RequestsPerMinute, Stats(second).CurrentConcurrent));
        Request(pwsh);
        Assert.Throws<RateLimitExceededException>(() => mcp.Begin(_uuid, "run_command"));
        Assert.Equal(3, Stats().RequestsPerMinute);
    }

    [Fact]
    public void StaleInflightRows_OfDeadProcesses_AndExpiredRows_AreCleaned()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitConcurrent = 2 }, "tester");
        _registry.SetSetting(RateLimitPolicy.ModeSetting, "enforce");
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        using (var c = new SqliteConnection($"Data Source={_data.Dir.RegistryFile}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            // A crashed process on this host (no such pid), and a row of another host whose time ran out.
            cmd.CommandText = """
                INSERT INTO rate_inflight(uuid, host, pid, started_at, expires_at) VALUES ($u, $h, 99999999, $now, $far);
                INSERT INTO rate_inflight(uuid, host, pid, started_at, expires_at) VALUES ($u, 'other-host', 1, $now, $soon);
                INSERT INTO rate_inflight(uuid, host, pid, started_at, expires_at) VALUES ($u, 'other-host', 2, $now, $far);
                """;
            cmd.Parameters.AddWithValue("$u", _uuid);
            cmd.Parameters.AddWithValue("$h", Environment.MachineName);
            cmd.Parameters.AddWithValue("$now", now);
            cmd.Parameters.AddWithValue("$far", now + 3_600_000);
            cmd.Parameters.AddWithValue("$soon", now + 1_000);
            cmd.ExecuteNonQuery();
        }

        Assert.Equal(2, Stats().CurrentConcurrent);              // the dead local process is gone at once
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(1, Stats().CurrentConcurrent);              // the expired row too; the live remote one stays
        using var lease = Guard().Begin(_uuid, "run_command");       // so one slot is free
        Assert.Equal(2, Stats().CurrentConcurrent);
        SqliteConnection.ClearAllPools();
    }

    [Fact]
    public void Measure_1000BeginCompletePairs()
    {
        var guard = Guard();
        var uuids = Enumerable.Range(0, 1000).Select(i => $"u-{i:D4}").ToArray();
        // Warm up the connection pool and the statements.
        using (var warm = guard.Begin(uuids[0], "run_command"))
        {
            warm.Complete(OperationStatus.Succeeded);
        }

        var clock = Stopwatch.StartNew();
        foreach (var uuid in uuids)
        {
            using var lease = guard.Begin(uuid, "run_command", "uptime");
            lease.Complete(OperationStatus.Succeeded, "exit 0", 0);
        }

        var sequential = clock.Elapsed;
        clock.Restart();
        Parallel.ForEach(uuids, new ParallelOptions { MaxDegreeOfParallelism = 32 }, uuid =>
        {
            using var lease = guard.Begin(uuid, "run_command", "uptime");
            lease.Complete(OperationStatus.Succeeded, "exit 0", 0);
        });
        var parallel = clock.Elapsed;
        clock.Restart();
        foreach (var uuid in uuids)
        {
            // What one command cost in the registry before rate limits and events: one history row.
            _registry.RecordAudit(new AuditEntry { Operation = "run_command", Uuid = uuid, Actor = "alice", Surface = Surfaces.Cli, Status = "succeeded", Detail = "uptime → exit 0", DurationMs = 1 });
        }

        _output.WriteLine($"1000 history rows alone: {clock.Elapsed.TotalMilliseconds:0} ms");
        _output.WriteLine($"1000 Begin/Complete pairs: sequential {sequential.TotalMilliseconds:0} ms ({sequential.TotalMilliseconds / 1000:0.00} ms/pair), 32 threads {parallel.TotalMilliseconds:0} ms");
        Assert.True(sequential < TimeSpan.FromSeconds(30), $"sequential took {sequential}");
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }
}
