namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The fleet registry. SQLite is the embedded implementation; the interface keeps a later shared
/// database possible. Safe for several processes at once; every state change that has an event writes
/// that event to the outbox in the same transaction.
/// </summary>
public interface IFleetRegistry : IDisposable
{
    /// <summary>Directory holding the registry and the hub's socket.</summary>
    string DataDirectory { get; }

    // ----- keys -----
    KeyRecord? GetKey(string fingerprint);
    IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null);

    /// <summary>
    /// Records a key that authenticated but is not approved (or claims a uuid pinned to another key).
    /// Inserts a pending key with the claimed identity, or refreshes it. Emits client.pending on insert,
    /// and client.key_mismatch (setting the client's key_mismatch flag) when the claimed uuid is pinned elsewhere.
    /// </summary>
    KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity);

    /// <summary>Approves a pending key, a key mismatch (by the new key's fingerprint or the client's uuid), or a revoked key.</summary>
    ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor);

    /// <summary>Revokes a key (by fingerprint, or the key bound to a uuid) and closes its open sessions.</summary>
    RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor);

    // ----- clients -----
    ClientRecord? GetClient(string uuid);
    IReadOnlyList<ClientRecord> QueryClients(ClientQuery query);

    /// <summary>
    /// Admits an approved key's hello: binds the key to a new client on first use (operator fields from the
    /// agent's defaults), or updates only the agent-owned fields of the bound client. Returns the client.
    /// </summary>
    ClientRecord AdmitClient(string fingerprint, AgentIdentity identity);

    /// <summary>Applies an operator edit after validating limits. Returns the updated client.</summary>
    ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor);

    // ----- sessions -----
    /// <summary>Opens a session (closing any earlier open session of the client as "replaced").</summary>
    SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid);

    /// <summary>Marks a session online after the hub's tunnel handshake succeeded; emits client.connected.</summary>
    void MarkSessionOnline(long sessionId);

    /// <summary>Records a heartbeat.</summary>
    void TouchSession(long sessionId);

    /// <summary>Closes a session; emits client.disconnected when it had been online.</summary>
    void CloseSession(long sessionId, string reason);

    /// <summary>Closes every session still open (a hub start after a crash). Returns how many.</summary>
    int CloseAllSessions(string reason);

    SessionRecord? GetOpenSession(string uuid);
    IReadOnlyList<SessionRecord> ListOpenSessions();

    // ----- audit and settings -----
    void RecordAudit(AuditEntry entry);
    IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100);
    string? GetSetting(string key);
    void SetSetting(string key, string? value);

    // ----- registry: attributed decisions, removal, history -----

    /// <summary><see cref="ApproveKey(string, string)"/>, recorded in the history with the surface that asked (pwsh, mcp, cli).</summary>
    ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface);

    /// <summary><see cref="RevokeKey(string, string)"/>, recorded in the history with the surface that asked.</summary>
    RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface);

    /// <summary><see cref="UpdateClient(string, ClientUpdate, string)"/>, recorded in the history with the surface that asked.</summary>
    ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface);

    /// <summary>
    /// Decommissions a client: revokes its keys, closes its open sessions (returned, so the caller can cut
    /// their SSH connections) and marks it removed. Its history stays; queries hide it unless IncludeRemoved.
    /// </summary>
    RemoveOutcome RemoveClient(string uuid, string actor, string surface);

    /// <summary>History entries matching the query, newest first, one page.</summary>
    IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query);
}
