namespace EtPhoneHome.Core.Registry;

/// <summary>Outcome of decommissioning a client: the keys revoked and the sessions the caller must cut.</summary>
public sealed record RemoveOutcome
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    /// <summary>The client was already removed; nothing changed.</summary>
    public bool AlreadyRemoved { get; init; }
    /// <summary>Keys that were approved or pending for this client and are now revoked.</summary>
    public IReadOnlyList<string> RevokedFingerprints { get; init; } = [];
    /// <summary>Sessions closed in the registry; their gate relays must be signalled to drop the SSH connection.</summary>
    public IReadOnlyList<SessionRecord> ClosedSessions { get; init; } = [];
    public DateTimeOffset? RemovedAt { get; init; }
}

/// <summary>Filters and paging of a history query; all given filters intersect. Newest entries come first.</summary>
public sealed record HistoryQuery
{
    /// <summary>Most entries a page may hold.</summary>
    public const int MaxTake = 10_000;

    /// <summary>Entries about any of these client uuids.</summary>
    public IReadOnlyList<string>? Uuids { get; init; }
    /// <summary>Entries of any of these operations (exact, case-insensitive): run_command, update_client, approve, revoke, remove…</summary>
    public IReadOnlyList<string>? Operations { get; init; }
    /// <summary>Entries with any of these statuses (exact, case-insensitive): ok, unchanged, succeeded, failed, denied…</summary>
    public IReadOnlyList<string>? Statuses { get; init; }
    /// <summary>Only entries at or after this time.</summary>
    public DateTimeOffset? Since { get; init; }
    /// <summary>Only entries before this time.</summary>
    public DateTimeOffset? Until { get; init; }
    /// <summary>Entries to skip (newest first).</summary>
    public int Skip { get; init; }
    /// <summary>Entries to return, 1 to <see cref="MaxTake"/>.</summary>
    public int Take { get; init; } = 100;
}
