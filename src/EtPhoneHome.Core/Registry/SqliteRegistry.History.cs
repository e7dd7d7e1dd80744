using System.Globalization;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// History: the audit log, written in the transaction of what it records, and its queries (IHistoryStore).
public sealed partial class SqliteRegistry
{
    public void RecordAudit(AuditEntry entry)
    {
        using var c = Connect();
        InsertAudit(c, null, entry);
    }

    public IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100)
    {
        using var c = Connect();
        using var cmd = Command(c, null,
            "SELECT * FROM audit" + (uuid is null ? "" : " WHERE uuid = @u") + " ORDER BY id DESC LIMIT @l",
            ("@u", uuid), ("@l", limit));
        return ReadAll(cmd, ReadAudit);
    }

    private void InsertAudit(DbConnection c, DbTransaction? tx, AuditEntry entry)
    {
        var e = HistoryAttribution.Apply(entry);
        Exec(c, tx, """
            INSERT INTO audit(at, actor, surface, operation, uuid, status, detail, duration_ms, role, source)
            VALUES (@at, @actor, @surface, @op, @u, @st, @d, @ms, @role, @source)
            """,
            ("@at", (e.At ?? _time.GetUtcNow()).ToUnixTimeMilliseconds()), ("@actor", e.Actor), ("@surface", e.Surface),
            ("@op", e.Operation), ("@u", e.Uuid), ("@st", e.Status), ("@d", e.Detail), ("@ms", e.DurationMs),
            ("@role", e.Role), ("@source", e.Source));
    }

    public IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Skip < 0)
        {
            throw new RegistryValidationException("skip", $"skip must be 0 or more (got {query.Skip})");
        }

        if (query.Take is < 1 or > HistoryQuery.MaxTake)
        {
            throw new RegistryValidationException("take", $"take must be between 1 and {HistoryQuery.MaxTake} (got {query.Take})");
        }

        using var c = Connect();
        using var cmd = c.CreateCommand();
        var where = HistoryFilter(cmd, query);
        cmd.CommandText = "SELECT * FROM audit" + where.Clause +
                          $" ORDER BY id DESC LIMIT {where.Param(query.Take)} OFFSET {where.Param(query.Skip)}";
        return ReadAll(cmd, ReadAudit);
    }

    /// <summary>How many entries the filters of <paramref name="query"/> match (its paging ignored): Get-EphHistory -IncludeTotalCount.</summary>
    public int CountHistory(HistoryQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        using var c = Connect();
        using var cmd = c.CreateCommand();
        var where = HistoryFilter(cmd, query);
        cmd.CommandText = "SELECT COUNT(*) FROM audit" + where.Clause;
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static SqlFilter HistoryFilter(DbCommand cmd, HistoryQuery query)
    {
        if (query.Since is { } since && query.Until is { } until && until <= since)
        {
            throw new RegistryValidationException("until", $"until ({until:O}) must be later than since ({since:O})");
        }

        var where = new SqlFilter(cmd);
        var P = where.Param;

        if (query.Uuids is { Count: > 0 } uuids)
        {
            where.Add(where.In("uuid", uuids.Distinct(StringComparer.OrdinalIgnoreCase)));
        }

        // Operations and statuses are checked against the vocabulary (a typo is an error, not an empty answer) and
        // written as recorded, so the IN keeps the indexes usable.
        if (query.Operations is { Count: > 0 } operations)
        {
            where.Add(where.In("operation", HistoryFilters.Operations(operations)));
        }

        if (query.Statuses is { Count: > 0 } statuses)
        {
            where.Add(where.In("status", HistoryFilters.Statuses(statuses)));
        }

        if (query.Since is { } from)
        {
            where.Add($"at >= {P(from.ToUnixTimeMilliseconds())}");
        }

        if (query.Until is { } to)
        {
            where.Add($"at < {P(to.ToUnixTimeMilliseconds())}");
        }

        return where;
    }

    private static AuditEntry ReadAudit(DbDataReader r) => new()
    {
        At = Time(r, "at"),
        Actor = Str(r, "actor")!,
        Surface = Str(r, "surface")!,
        Role = Str(r, "role"),
        Source = Str(r, "source"),
        Operation = Str(r, "operation")!,
        Uuid = Str(r, "uuid"),
        Status = Str(r, "status")!,
        Detail = Str(r, "detail"),
        DurationMs = Long(r, "duration_ms"),
    };
}
