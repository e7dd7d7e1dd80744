namespace EtPhoneHome.Core.Registry;

/// <summary>The history (audit log) of operations and decisions.</summary>
public interface IHistoryStore
{
    void RecordAudit(AuditEntry entry);

    IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100);

    /// <summary>History entries matching the query, newest first, one page.</summary>
    IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query);

    /// <summary>How many entries match the filters of <paramref name="query"/> (its Skip and Take ignored).</summary>
    int CountHistory(HistoryQuery query);
}
