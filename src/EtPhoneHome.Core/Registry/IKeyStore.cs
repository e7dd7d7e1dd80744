namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The agents' SSH keys: pending, approved, revoked. SQLite is the embedded implementation (<see cref="SqliteRegistry"/>);
/// every decision that has an event writes that event to the outbox in the same transaction.
/// </summary>
public interface IKeyStore
{
    KeyRecord? GetKey(string fingerprint);

    IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null);

    /// <summary>
    /// Records a key that authenticated but is not approved (or claims a uuid pinned to another key).
    /// Inserts a pending key with the claimed identity, or refreshes it (last_seen). When the registry already holds its
    /// bound of pending keys, the one unseen the longest is deleted to make room. Emits client.pending on insert,
    /// and client.key_mismatch (setting the client's key_mismatch flag) when the claimed uuid is pinned elsewhere.
    /// </summary>
    KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity);

    /// <summary>Approves a pending key, a key mismatch (by the new key's fingerprint or the client's uuid), or a revoked key.</summary>
    ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor);

    /// <summary><see cref="ApproveKey(string, string)"/>, recorded in the history with the surface that asked (pwsh, mcp, cli).</summary>
    ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface);

    /// <summary>Revokes a key (by fingerprint, or the key bound to a uuid) and closes its open sessions.</summary>
    RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor);

    /// <summary><see cref="RevokeKey(string, string)"/>, recorded in the history with the surface that asked.</summary>
    RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface);

    /// <summary>
    /// Gives an approved key a new server port for its reverse forward: a port of <paramref name="range"/> that no other
    /// key holds, that is not the key's current one, and that <paramref name="isFree"/> finds unused now.
    /// </summary>
    /// <exception cref="InvalidOperationException">The key is not approved, or no port of the range is free.</exception>
    int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree);

    /// <summary>
    /// Deletes the pending keys (mismatch claims included) whose last_seen is older than <paramref name="unseenFor"/>
    /// by the registry's clock and records one purge_keys history entry; returns them, oldest first. Approved and
    /// revoked keys are never touched. With <paramref name="dryRun"/> only returns what would go.
    /// </summary>
    IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false);
}
