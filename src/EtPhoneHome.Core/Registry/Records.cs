namespace EtPhoneHome.Core.Registry;

/// <summary>Lifecycle of a client key (DESIGN §3 step 3).</summary>
public enum KeyStatus
{
    /// <summary>Seen with a verified signature, waiting for an operator.</summary>
    Pending,
    /// <summary>Allowed to open a tunnel; pinned to one client uuid once bound.</summary>
    Approved,
    /// <summary>Refused at the sshd key check; never comes back without an explicit approval.</summary>
    Revoked,
}

/// <summary>A client key as the registry knows it.</summary>
public sealed record KeyRecord
{
    public required string Fingerprint { get; init; }
    /// <summary>"ssh-ed25519 AAAA…" (type and base64 blob), as sshd presented it.</summary>
    public string? PublicKey { get; init; }
    public required KeyStatus Status { get; init; }
    /// <summary>The client this key is pinned to; null until the first approved session binds it.</summary>
    public string? Uuid { get; init; }
    /// <summary>The uuid the agent claimed in its hello (for key mismatches).</summary>
    public string? ClaimedUuid { get; init; }
    public string? ClaimedHostname { get; init; }
    public string? ClaimedPlatform { get; init; }
    public string? ClaimedUsername { get; init; }
    public string? ClaimedDisplayName { get; init; }
    public required DateTimeOffset FirstSeen { get; init; }
    public required DateTimeOffset LastSeen { get; init; }
    public DateTimeOffset? DecidedAt { get; init; }
    public string? DecidedBy { get; init; }
    /// <summary>True when this key claims a uuid that is pinned to another key.</summary>
    public bool IsMismatch { get; init; }
    /// <summary>The one server port this approved key may forward (sshd's permitlisten); null until the hub assigns it.</summary>
    public int? TunnelPort { get; init; }
}

/// <summary>A registered client: operator-owned fields, agent-owned fields and the live session view.</summary>
public sealed record ClientRecord
{
    public required string Uuid { get; init; }

    // Operator-owned: set from the agent's defaults only on first registration.
    public required string DisplayName { get; init; }
    public string? Purpose { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    /// <summary>Server-side allowed paths; null = unrestricted.</summary>
    public IReadOnlyList<string>? AllowedPaths { get; init; }
    public string? WebhookUrl { get; init; }
    public int? RateLimitRpm { get; init; }
    public int? RateLimitConcurrent { get; init; }

    // Agent-owned: updated on every hello.
    public string? Hostname { get; init; }
    public string? Platform { get; init; }
    public string? Username { get; init; }
    public string? AgentVersion { get; init; }
    public IReadOnlyList<string> Capabilities { get; init; } = [];

    // Registry-owned.
    public string? KeyFingerprint { get; init; }
    public bool KeyMismatch { get; init; }
    public required DateTimeOffset FirstSeen { get; init; }
    public required DateTimeOffset LastSeen { get; init; }
    public int ConnectionCount { get; init; }
    public DateTimeOffset? RemovedAt { get; init; }

    // Session view (from the open session, if any).
    public bool Online { get; init; }
    public int? TunnelPort { get; init; }
    public long? SessionId { get; init; }
}

/// <summary>One SSH session of a client, as the hub recorded it.</summary>
public sealed record SessionRecord
{
    public required long Id { get; init; }
    public required string Uuid { get; init; }
    public required string Fingerprint { get; init; }
    /// <summary>Host whose loopback serves the tunnel port (this host's name for a single gateway).</summary>
    public required string Host { get; init; }
    public required int TunnelPort { get; init; }
    /// <summary>The 32-byte session secret. Never logged, never in output objects.</summary>
    public required byte[] Secret { get; init; }
    public int? GatePid { get; init; }
    public int? HubPid { get; init; }
    /// <summary>Id of the hub holding the session (<see cref="HubRecord"/>); null for sessions of a registry before hub ids.</summary>
    public string? HubId { get; init; }
    public required DateTimeOffset ConnectedAt { get; init; }
    public DateTimeOffset? OnlineAt { get; init; }
    public required DateTimeOffset LastHeartbeat { get; init; }
    public DateTimeOffset? ClosedAt { get; init; }
    public string? CloseReason { get; init; }

    /// <summary>Redacted: records print without their secret.</summary>
    public override string ToString() => $"SessionRecord {{ Id = {Id}, Uuid = {Uuid}, TunnelPort = {TunnelPort}, Online = {OnlineAt is not null && ClosedAt is null} }}";
}

/// <summary>What an agent said about itself in a hello (the subset the registry stores).</summary>
public sealed record AgentIdentity
{
    public string? ClaimedUuid { get; init; }
    public string? Hostname { get; init; }
    public string? Platform { get; init; }
    public string? Username { get; init; }
    public string? AgentVersion { get; init; }
    public IReadOnlyList<string> Capabilities { get; init; } = [];
    // Defaults for operator-owned fields, used only on first registration.
    public string? DisplayName { get; init; }
    public string? Purpose { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
}

/// <summary>Filters of a client query; all given filters intersect (find semantics of DESIGN §6).</summary>
public sealed record ClientQuery
{
    /// <summary>Display names or uuids, with * and ? wildcards; any may match.</summary>
    public IReadOnlyList<string>? Names { get; init; }
    /// <summary>Exact uuids; any may match.</summary>
    public IReadOnlyList<string>? Ids { get; init; }
    /// <summary>Case-insensitive substring over display name, purpose, hostname and tags.</summary>
    public string? Query { get; init; }
    public string? Purpose { get; init; }
    /// <summary>Client must have ALL of these tags.</summary>
    public IReadOnlyList<string>? Tags { get; init; }
    /// <summary>Client must have ALL of these capabilities.</summary>
    public IReadOnlyList<string>? Capabilities { get; init; }
    public bool OnlineOnly { get; init; }
    public bool IncludeRemoved { get; init; }
}

/// <summary>An operator edit. Null properties are left unchanged.</summary>
public sealed record ClientUpdate
{
    public string? DisplayName { get; init; }
    public string? Purpose { get; init; }
    public IReadOnlyList<string>? Tags { get; init; }
    public IReadOnlyList<string>? AddTags { get; init; }
    public IReadOnlyList<string>? RemoveTags { get; init; }
    /// <summary>Set to change allowed paths; <see cref="ClearAllowedPaths"/> to make them unrestricted.</summary>
    public IReadOnlyList<string>? AllowedPaths { get; init; }
    public bool ClearAllowedPaths { get; init; }
    public string? WebhookUrl { get; init; }
    public int? RateLimitRpm { get; init; }
    public int? RateLimitConcurrent { get; init; }
}

/// <summary>Outcome of an approval (the reference's accept_key semantics included).</summary>
public sealed record ApproveOutcome
{
    public required string Fingerprint { get; init; }
    public string? Uuid { get; init; }
    /// <summary>The key was already approved; nothing changed.</summary>
    public bool AlreadyApproved { get; init; }
    /// <summary>The approval resolved a key mismatch: the client is now pinned to this key.</summary>
    public bool ResolvedMismatch { get; init; }
    /// <summary>The key that was replaced (and revoked) when a mismatch was resolved.</summary>
    public string? ReplacedFingerprint { get; init; }
}

/// <summary>Outcome of a revocation: which sessions must be cut now.</summary>
public sealed record RevokeOutcome
{
    public required string Fingerprint { get; init; }
    public string? Uuid { get; init; }
    public bool AlreadyRevoked { get; init; }
    public IReadOnlyList<SessionRecord> ClosedSessions { get; init; } = [];
}

/// <summary>One audited operation (who, what, which client, result, duration).</summary>
public sealed record AuditEntry
{
    /// <summary>Longest detail kept in the history (commands can be long).</summary>
    public const int MaxDetailLength = 500;

    /// <summary>A detail cut to <see cref="MaxDetailLength"/>, marked with an ellipsis when cut.</summary>
    internal static string? Truncate(string? text)
        => text is null || text.Length <= MaxDetailLength ? text : string.Concat(text.AsSpan(0, MaxDetailLength), "…");

    public required string Operation { get; init; }
    public string? Uuid { get; init; }
    public required string Actor { get; init; }
    /// <summary>pwsh, mcp, cli or hub.</summary>
    public required string Surface { get; init; }
    /// <summary>The acting operator's role (reader, operator, admin) when an operator key acted; null otherwise.</summary>
    public string? Role { get; init; }
    /// <summary>Where the acting operator connected from (the SSH peer address) when known; null otherwise.</summary>
    public string? Source { get; init; }
    public required string Status { get; init; }
    public string? Detail { get; init; }
    public long? DurationMs { get; init; }
    public DateTimeOffset? At { get; init; }
}

/// <summary>Thrown for a request that names something the registry does not have.</summary>
public sealed class RegistryNotFoundException(string message) : Exception(message);

/// <summary>
/// Thrown when a key decision cannot be made from what was named: a client uuid while another key claims that client
/// (the operator must name the exact fingerprint to trust), or a revoked key named only through its client. The message
/// names every key involved and says what to run.
/// </summary>
public sealed class KeyDecisionException(string message) : InvalidOperationException(message);

/// <summary>Thrown for an operator edit that breaks a field's limits; the message names the field and the limit.</summary>
public class RegistryValidationException(string field, string message) : ArgumentException(message, field)
{
    public string Field { get; } = field;
}

/// <summary>
/// Thrown for a rename to a display name another live client has after normalisation (<see cref="ClientNameKey"/>);
/// the message names that client and its uuid.
/// </summary>
public sealed class ClientNameTakenException(string message, string holderUuid, string holderName)
    : RegistryValidationException("display_name", message)
{
    /// <summary>The client that has the name.</summary>
    public string HolderUuid { get; } = holderUuid;

    /// <summary>Its display name as written.</summary>
    public string HolderName { get; } = holderName;
}
