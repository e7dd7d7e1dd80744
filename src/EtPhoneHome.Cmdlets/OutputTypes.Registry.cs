using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome;

/// <summary>Lifecycle of a client key (mirrors Core's KeyStatus value for value).</summary>
public enum EphKeyStatus
{
    Pending = KeyStatus.Pending,
    Approved = KeyStatus.Approved,
    Revoked = KeyStatus.Revoked,
}

/// <summary>
/// A client key, as Get-EphClientKey writes it. Immutable; carries no private material. The claimed fields come from an
/// unapproved machine: their control and invisible formatting characters are escaped for the default views.
/// </summary>
public sealed class EphClientKey
{
    internal EphClientKey(KeyRecord key)
    {
        Fingerprint = key.Fingerprint;
        Status = (EphKeyStatus)(int)key.Status;
        ClaimedHostname = UntrustedText.ForTerminal(key.ClaimedHostname);
        ClaimedPlatform = UntrustedText.ForTerminal(key.ClaimedPlatform);
        ClaimedName = UntrustedText.ForTerminal(key.ClaimedDisplayName);
        Uuid = UntrustedText.ForTerminal(key.Uuid ?? key.ClaimedUuid);
        FirstSeen = key.FirstSeen;
        LastSeen = key.LastSeen;
        IsMismatch = key.IsMismatch;
        DecidedAt = key.DecidedAt;
        DecidedBy = key.DecidedBy;
    }

    /// <summary>The key's SHA256 fingerprint, as ssh-keygen -l prints it.</summary>
    public string Fingerprint { get; }
    public EphKeyStatus Status { get; }
    public string? ClaimedHostname { get; }
    public string? ClaimedPlatform { get; }
    /// <summary>The display name the agent proposed for itself.</summary>
    public string? ClaimedName { get; }
    /// <summary>The client the key is pinned to, or (for a pending key) the uuid it claims.</summary>
    public string? Uuid { get; }
    public DateTimeOffset FirstSeen { get; }
    public DateTimeOffset LastSeen { get; }
    /// <summary>True when the key claims a client that is pinned to another key.</summary>
    public bool IsMismatch { get; }
    public DateTimeOffset? DecidedAt { get; }
    public string? DecidedBy { get; }

    public override string ToString() => Fingerprint;
}

/// <summary>One entry of the history, as Get-EphHistory writes it.</summary>
public sealed class EphHistoryEntry
{
    internal EphHistoryEntry(AuditEntry entry, string? displayName)
    {
        At = entry.At ?? DateTimeOffset.UnixEpoch;
        ClientId = entry.Uuid;
        Client = UntrustedText.ForTerminal(displayName ?? entry.Uuid);
        Operation = entry.Operation;
        Status = OperationNames.ParseStatus(entry.Status) is { } status ? (EphOperationStatus)(int)status : EphOperationStatus.Error;
        Actor = entry.Actor;
        Surface = entry.Surface;
        Duration = entry.DurationMs is { } ms ? TimeSpan.FromMilliseconds(ms) : null;
        Detail = UntrustedText.ForTerminal(entry.Detail);
        Role = entry.Role;
        Source = UntrustedText.ForTerminal(entry.Source);
    }

    public DateTimeOffset At { get; }
    /// <summary>The client's uuid; binds to -ClientId of other cmdlets from the pipeline.</summary>
    public string? ClientId { get; }
    /// <summary>The client's display name (its uuid when the client record is gone).</summary>
    public string? Client { get; }
    /// <summary>What was done, named as the MCP tool that does it (run_command, read_file, accept_key…) whichever surface acted.</summary>
    public string Operation { get; }
    public EphOperationStatus Status { get; }
    /// <summary>The OS user who acted.</summary>
    public string Actor { get; }
    /// <summary>pwsh, mcp, cli or hub.</summary>
    public string Surface { get; }
    public TimeSpan? Duration { get; }
    public string? Detail { get; }
    /// <summary>The acting operator's role (reader, operator, admin) when an operator key acted over SSH; empty otherwise.</summary>
    public string? Role { get; }
    /// <summary>Where that operator connected from (the SSH peer address); empty otherwise.</summary>
    public string? Source { get; }

    public override string ToString() => $"{At:u} {Client} {Operation} {Status}";
}

/// <summary>
/// Outcome of an operation as the history records it (mirrors Core's OperationStatus value for value; the CLI's
/// --json and MCP write the same words in snake_case: TimedOut is timed_out). The first eight are EphCommandStatus's.
/// </summary>
public enum EphOperationStatus
{
    Succeeded = OperationStatus.Succeeded,
    Failed = OperationStatus.Failed,
    TimedOut = OperationStatus.TimedOut,
    Offline = OperationStatus.Offline,
    Denied = OperationStatus.Denied,
    RateLimited = OperationStatus.RateLimited,
    Error = OperationStatus.Error,
    Skipped = OperationStatus.Skipped,
    Cancelled = OperationStatus.Cancelled,
    NotFound = OperationStatus.NotFound,
    Unchanged = OperationStatus.Unchanged,
}
