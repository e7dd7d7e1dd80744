using System.Globalization;
using System.Text.Json.Nodes;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Rate limits counted in the registry, so every process that talks to clients shares one count: a request
// log for the rolling window and one row per request in flight, owned by a process (host + pid).
public sealed partial class SqliteRegistry
{
    public RateLimitAdmission BeginRequest(string uuid, RateLimitPolicy policy, AuditEntry refusal)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(refusal);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var admission = BeginRequestIn(c, tx, uuid, policy, refusal);
        tx.Commit();
        return admission;
    }

    /// <summary>
    /// <see cref="BeginRequest"/> in a transaction shared with the other operations that start at the same time
    /// (<see cref="GroupCommit"/>): a fan-out's thousand starts take a few turns of the writer lock, not a thousand.
    /// </summary>
    public Task<RateLimitAdmission> BeginRequestAsync(string uuid, RateLimitPolicy policy, AuditEntry refusal)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentNullException.ThrowIfNull(refusal);
        var attributed = HistoryAttribution.Apply(refusal); // the caller's scope, which the batch's writer does not see
        return _groupCommit.RunAsync((c, tx) => BeginRequestIn(c, tx, uuid, policy, attributed));
    }

    private RateLimitAdmission BeginRequestIn(DbConnection c, DbTransaction tx, string uuid, RateLimitPolicy policy, AuditEntry refusal)
    {
        var now = Now;
        var windowStart = now - (long)RateLimitPolicy.Window.TotalMilliseconds;
        Exec(c, tx, "DELETE FROM rate_requests WHERE uuid = @u AND at <= @start", ("@u", uuid), ("@start", windowStart));
        var snapshot = Snapshot(c, tx, uuid, windowStart, policy);
        if (snapshot.Concurrent + 1 > snapshot.ConcurrentLimit)
        {
            // Only worth the liveness checks when the slots look full: a dead process may hold some.
            RemoveStaleInflight(c, tx, uuid, now);
            snapshot = Snapshot(c, tx, uuid, windowStart, policy);
        }

        var (rpmLimit, concurrentLimit, mode, rpm, concurrent) =
            (snapshot.RpmLimit, snapshot.ConcurrentLimit, snapshot.Mode, snapshot.Rpm, snapshot.Concurrent);
        var (rpmWarnings, concurrentWarnings) = (snapshot.RpmWarnings, snapshot.ConcurrentWarnings);
        var overRpm = rpm + 1 > rpmLimit;
        var overConcurrent = concurrent + 1 > concurrentLimit;
        if (overRpm || overConcurrent)
        {
            rpmWarnings += overRpm ? 1 : 0;
            concurrentWarnings += overConcurrent ? 1 : 0;
            Exec(c, tx, """
                INSERT INTO rate_counters(uuid, rpm_warnings, concurrent_warnings) VALUES (@u, @r, @c)
                ON CONFLICT(uuid) DO UPDATE SET rpm_warnings = rate_counters.rpm_warnings + @r, concurrent_warnings = rate_counters.concurrent_warnings + @c
                """,
                ("@u", uuid), ("@r", overRpm ? 1 : 0), ("@c", overConcurrent ? 1 : 0));
        }

        var allowed = mode == RateLimitMode.Warn || !(overRpm || overConcurrent);
        long inflightId = 0;
        if (allowed)
        {
            Exec(c, tx, "INSERT INTO rate_requests(uuid, at) VALUES (@u, @now)", ("@u", uuid), ("@now", now));
            using var insert = Command(c, tx, """
                INSERT INTO rate_inflight(uuid, host, pid, started_at, expires_at) VALUES (@u, @h, @p, @now, @exp) RETURNING id
                """,
                ("@u", uuid), ("@h", ProcessLiveness.Host), ("@p", ProcessLiveness.CurrentPid), ("@now", now),
                ("@exp", now + (long)policy.InflightExpiry.TotalMilliseconds));
            inflightId = (long)insert.ExecuteScalar()!;
            rpm++;
            concurrent++;
        }
        else
        {
            InsertAudit(c, tx, refusal);
        }

        return new RateLimitAdmission
        {
            Allowed = allowed,
            InflightId = inflightId,
            OverRpm = overRpm,
            OverConcurrent = overConcurrent,
            Stats = new RateLimitStats
            {
                Uuid = uuid,
                RequestsPerMinute = rpm,
                CurrentConcurrent = concurrent,
                RpmLimit = rpmLimit,
                ConcurrentLimit = concurrentLimit,
                RpmWarnings = rpmWarnings,
                ConcurrentWarnings = concurrentWarnings,
                Mode = mode,
            },
        };
    }

    public void CompleteRequest(long inflightId, AuditEntry entry, string? eventType = null, JsonObject? eventData = null)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var c = Connect();
        using var tx = BeginWrite(c);
        CompleteRequestIn(c, tx, inflightId, entry, eventType, eventData);
        tx.Commit();
    }

    /// <summary><see cref="CompleteRequest"/> in a transaction shared with the other operations that end at the same time (<see cref="GroupCommit"/>).</summary>
    public Task CompleteRequestAsync(long inflightId, AuditEntry entry, string? eventType = null, JsonObject? eventData = null)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var attributed = HistoryAttribution.Apply(entry);
        var data = (JsonObject?)eventData?.DeepClone();
        return _groupCommit.RunAsync((c, tx) =>
        {
            CompleteRequestIn(c, tx, inflightId, attributed, eventType, data);
            return true;
        });
    }

    private void CompleteRequestIn(DbConnection c, DbTransaction tx, long inflightId, AuditEntry entry, string? eventType, JsonObject? eventData)
    {
        if (inflightId > 0)
        {
            Exec(c, tx, "DELETE FROM rate_inflight WHERE id = @id", ("@id", inflightId));
        }

        InsertAudit(c, tx, entry);
        if (eventType is not null)
        {
            InsertEvent(c, tx, eventType, entry.Uuid, (JsonObject?)eventData?.DeepClone());
        }
    }

    public IReadOnlyList<RateLimitStats> GetRateLimitStats(IReadOnlyList<string>? uuids, RateLimitPolicy policy)
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (uuids is { Count: 0 })
        {
            return [];
        }

        using var c = Connect();
        using var tx = BeginWrite(c);
        var now = Now;
        RemoveStaleInflight(c, tx, null, now);
        var mode = Mode(c, tx, policy);
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.Parameters.AddWithValue("@start", now - (long)RateLimitPolicy.Window.TotalMilliseconds);
        var filter = "c.removed_at IS NULL";
        if (uuids is not null)
        {
            filter = "c.uuid IN (" + string.Join(",", uuids.Distinct().Select((u, i) =>
            {
                var name = "@u" + i.ToString(CultureInfo.InvariantCulture);
                cmd.Parameters.AddWithValue(name, u);
                return name;
            })) + ")";
        }

        cmd.CommandText = $"""
            SELECT c.uuid, c.rate_limit_rpm, c.rate_limit_concurrent,
                   (SELECT COUNT(*) FROM rate_requests q WHERE q.uuid = c.uuid AND q.at > @start) AS rpm,
                   (SELECT COUNT(*) FROM rate_inflight f WHERE f.uuid = c.uuid) AS concurrent,
                   COALESCE(k.rpm_warnings, 0) AS rpm_warnings, COALESCE(k.concurrent_warnings, 0) AS concurrent_warnings
            FROM clients c LEFT JOIN rate_counters k ON k.uuid = c.uuid
            WHERE {filter}
            ORDER BY c.display_name, c.uuid
            """;
        var rows = ReadAll(cmd, r => new RateLimitStats
        {
            Uuid = Str(r, "uuid")!,
            RequestsPerMinute = (int)Long(r, "rpm")!.Value,
            CurrentConcurrent = (int)Long(r, "concurrent")!.Value,
            RpmLimit = (int?)Long(r, "rate_limit_rpm") ?? policy.Rpm,
            ConcurrentLimit = (int?)Long(r, "rate_limit_concurrent") ?? policy.Concurrent,
            RpmWarnings = Long(r, "rpm_warnings")!.Value,
            ConcurrentWarnings = Long(r, "concurrent_warnings")!.Value,
            Mode = mode,
        });
        tx.Commit();
        return rows;
    }

    /// <summary>
    /// Drops in-flight rows whose time ran out, and rows of processes on this host that no longer run (a
    /// crashed PowerShell session or MCP server must not hold a client's slots). Rows of other hosts are
    /// left to their expiry.
    /// </summary>
    private static void RemoveStaleInflight(DbConnection c, DbTransaction tx, string? uuid, long now)
    {
        using var select = Command(c, tx,
            "SELECT id, host, pid, expires_at FROM rate_inflight" + (uuid is null ? "" : " WHERE uuid = @u"), ("@u", uuid));
        var stale = ReadAll(select, r => (Id: r.GetInt64(0), Host: r.GetString(1), Pid: (int)r.GetInt64(2), Expires: r.GetInt64(3)))
            .Where(row => row.Expires <= now || (row.Host == ProcessLiveness.Host && !ProcessLiveness.IsAlive(row.Pid)))
            .Select(row => row.Id)
            .ToList();
        foreach (var id in stale)
        {
            Exec(c, tx, "DELETE FROM rate_inflight WHERE id = @id", ("@id", id));
        }
    }

    private readonly record struct LimitSnapshot(int RpmLimit, int ConcurrentLimit, RateLimitMode Mode, int Rpm, int Concurrent, long RpmWarnings, long ConcurrentWarnings);

    /// <summary>Limits, mode, window count, in-flight count and counters of a client in one statement (this is the hot path).</summary>
    private static LimitSnapshot Snapshot(DbConnection c, DbTransaction tx, string uuid, long windowStart, RateLimitPolicy policy)
    {
        using var cmd = Command(c, tx, """
            SELECT (SELECT rate_limit_rpm FROM clients WHERE uuid = @u),
                   (SELECT rate_limit_concurrent FROM clients WHERE uuid = @u),
                   (SELECT value FROM settings WHERE key = @k),
                   (SELECT COUNT(*) FROM rate_requests WHERE uuid = @u AND at > @start),
                   (SELECT COUNT(*) FROM rate_inflight WHERE uuid = @u),
                   (SELECT rpm_warnings FROM rate_counters WHERE uuid = @u),
                   (SELECT concurrent_warnings FROM rate_counters WHERE uuid = @u)
            """,
            ("@u", uuid), ("@k", RateLimitPolicy.ModeSetting), ("@start", windowStart));
        using var r = cmd.ExecuteReader();
        r.Read();
        return new LimitSnapshot(
            r.IsDBNull(0) ? policy.Rpm : r.GetInt32(0),
            r.IsDBNull(1) ? policy.Concurrent : r.GetInt32(1),
            RateLimitPolicy.ParseMode(r.IsDBNull(2) ? null : r.GetString(2)) ?? policy.ModeFallback(),
            r.GetInt32(3),
            r.GetInt32(4),
            r.IsDBNull(5) ? 0 : r.GetInt64(5),
            r.IsDBNull(6) ? 0 : r.GetInt64(6));
    }

    private static RateLimitMode Mode(DbConnection c, DbTransaction tx, RateLimitPolicy policy)
        => RateLimitPolicy.ParseMode(Scalar<string>(c, tx, "SELECT value FROM settings WHERE key = @k", ("@k", RateLimitPolicy.ModeSetting)))
           ?? policy.ModeFallback();
}
