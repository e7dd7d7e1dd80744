namespace EtPhoneHome.Core.Registry;

/// <summary>What the hub's health monitor last recorded about a client.</summary>
public sealed record ClientHealth
{
    public required string Uuid { get; init; }

    /// <summary>Checks failed in a row (0 after any answered check).</summary>
    public int ConsecutiveFailures { get; init; }

    /// <summary>Reason of the last failed check; kept after recovery for the record.</summary>
    public string? LastError { get; init; }

    public DateTimeOffset? LastFailureAt { get; init; }
    public DateTimeOffset? LastOkAt { get; init; }

    /// <summary>Set when the failure threshold was reached; cleared by the next answered check.</summary>
    public DateTimeOffset? UnhealthySince { get; init; }

    public bool IsUnhealthy => UnhealthySince is not null;
}
