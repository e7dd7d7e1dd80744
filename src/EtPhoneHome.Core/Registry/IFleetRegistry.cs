using System.Text.Json.Nodes;

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
    /// Inserts a pending key with the claimed identity, or refreshes it (last_seen). When the registry already holds its
    /// bound of pending keys, the one unseen the longest is deleted to make room. Emits client.pending on insert,
    /// and client.key_mismatch (setting the client's key_mismatch flag) when the claimed uuid is pinned elsewhere.
    /// </summary>
    KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity);

    /// <summary>Approves a pending key, a key mismatch (by the new key's fingerprint or the client's uuid), or a revoked key.</summary>
    ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor);

    /// <summary>
    /// Gives an approved key a new server port for its reverse forward: a port of <paramref name="range"/> that no other
    /// key holds, that is not the key's current one, and that <paramref name="isFree"/> finds unused now.
    /// </summary>
    /// <exception cref="InvalidOperationException">The key is not approved, or no port of the range is free.</exception>
    int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree);

    /// <summary>Revokes a key (by fingerprint, or the key bound to a uuid) and closes its open sessions.</summary>
    RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor);

    // ----- clients -----
    ClientRecord? GetClient(string uuid);

    /// <summary>Clients passing every filter of the query (the rules of ClientIndex), sorted by <see cref="ClientOrder"/>.</summary>
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

    // ----- health -----
    /// <summary>Health state of every client the monitor has recorded.</summary>
    IReadOnlyList<ClientHealth> ListHealth();

    /// <summary>A check answered: the failure count resets and the client is no longer unhealthy.</summary>
    void RecordHealthSuccess(string uuid);

    /// <summary>A check failed: stores the error and the count of consecutive failures.</summary>
    void RecordHealthFailure(string uuid, string error, int consecutiveFailures);

    /// <summary>
    /// In one transaction: marks the client unhealthy, emits client.unhealthy with the reason and, unless
    /// <paramref name="closeSession"/> is false, closes the session (client.disconnected). False, with nothing changed,
    /// when the session is already closed.
    /// </summary>
    bool MarkUnhealthy(string uuid, long sessionId, string reason, int consecutiveFailures, bool closeSession = true);
    // ----- webhooks and rate limits -----
    /// <summary>
    /// Writes an event to the outbox on its own (for events that come with no other registry change, such as
    /// client.unhealthy). The row carries the full webhook body: event, timestamp, delivery_id, client, data.
    /// </summary>
    WebhookDelivery RecordEvent(string type, string? uuid, JsonObject? data = null);

    /// <summary>
    /// Counts a request against the client's limits across every process (rolling 60 s window and in-flight
    /// rows). Over a limit in warn mode the request is admitted and the warning counted; in enforce mode it is
    /// refused: nothing is counted in the window or in flight, and <paramref name="refusal"/> is written to the
    /// history in the same transaction.
    /// </summary>
    RateLimitAdmission BeginRequest(string uuid, RateLimitPolicy policy, AuditEntry refusal);

    /// <summary>
    /// Ends a request: releases its in-flight row (0 = none) and writes its history entry and, when
    /// <paramref name="eventType"/> is given, its outbox event, all in one transaction.
    /// </summary>
    void CompleteRequest(long inflightId, AuditEntry entry, string? eventType = null, JsonObject? eventData = null);

    /// <summary>Counters of the given clients (every registered client when null), stale in-flight rows removed first.</summary>
    IReadOnlyList<RateLimitStats> GetRateLimitStats(IReadOnlyList<string>? uuids, RateLimitPolicy policy);

    /// <summary>Outbox events with their delivery state, newest first.</summary>
    IReadOnlyList<WebhookDelivery> ListWebhookDeliveries(WebhookDeliveryQuery query);

    /// <summary>One event by its row id or its delivery id; null when there is none.</summary>
    WebhookDelivery? GetWebhookDelivery(string idOrDeliveryId);

    /// <summary>The delivery log of the given events, oldest attempt first.</summary>
    IReadOnlyList<WebhookAttempt> ListWebhookAttempts(IReadOnlyCollection<long> eventIds);

    /// <summary>Queues a failed, undeliverable or delivered event again (attempts start over, same delivery id).</summary>
    WebhookDelivery ResendWebhookDelivery(string idOrDeliveryId, string actor);

    /// <summary>Pending events, oldest first, with each client's own webhook URL (for the dispatcher).</summary>
    IReadOnlyList<WebhookDelivery> ListPendingWebhookEvents(int limit);

    /// <summary>Logs one attempt and moves its event on: delivered, pending until the retry time, or failed.</summary>
    void RecordWebhookAttempt(WebhookAttemptResult result);

    /// <summary>Marks a pending event as having no destination (kept and re-sendable).</summary>
    void MarkWebhookNoDestination(long eventId);

    /// <summary>
    /// Takes or renews the single dispatcher lease, so two hubs on one registry never both send. A lease whose
    /// time ran out, or whose holder on this host is no longer running, can be taken.
    /// </summary>
    bool TryAcquireWebhookLease(string owner, TimeSpan duration);

    /// <summary>Gives the lease up (a stopping hub), so another hub can take over at once.</summary>
    void ReleaseWebhookLease(string owner);
    // ----- registry: attributed decisions, removal, history -----

    /// <summary>
    /// Deletes the pending keys (mismatch claims included) whose last_seen is older than <paramref name="unseenFor"/>
    /// by the registry's clock and records one purge_keys history entry; returns them, oldest first. Approved and
    /// revoked keys are never touched. With <paramref name="dryRun"/> only returns what would go.
    /// </summary>
    IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false);

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

    /// <summary>How many entries match the filters of <paramref name="query"/> (its Skip and Take ignored).</summary>
    int CountHistory(HistoryQuery query);
}
