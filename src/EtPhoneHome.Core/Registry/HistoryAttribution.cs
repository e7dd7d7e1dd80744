namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The role and source address of the operator key on whose behalf the current call runs, for the history entries the
/// registry writes during it (approvals, edits, operator changes, resends). The operator service opens a scope per
/// request; entries that already carry a role or source (the operation guard's) keep theirs. An async-local scope,
/// because those writes go through store methods shared with the local surfaces, where there is no role to record.
/// </summary>
public static class HistoryAttribution
{
    private static readonly AsyncLocal<Attribution?> s_current = new();

    /// <summary>Who the scope records; null outside any scope.</summary>
    public static (string? Role, string? Source)? Current => s_current.Value is { } a ? (a.Role, a.Source) : null;

    /// <summary>Records <paramref name="role"/> and <paramref name="source"/> on the entries written until the scope is disposed.</summary>
    public static IDisposable Begin(string? role, string? source)
    {
        var previous = s_current.Value;
        s_current.Value = new Attribution(role, source);
        return new Scope(previous);
    }

    /// <summary><paramref name="entry"/> with the scope's role and source where it has none.</summary>
    public static AuditEntry Apply(AuditEntry entry) => s_current.Value is { } a && (entry.Role is null || entry.Source is null)
        ? entry with { Role = entry.Role ?? a.Role, Source = entry.Source ?? a.Source }
        : entry;

    private sealed record Attribution(string? Role, string? Source);

    private sealed class Scope(Attribution? previous) : IDisposable
    {
        public void Dispose() => s_current.Value = previous;
    }
}
