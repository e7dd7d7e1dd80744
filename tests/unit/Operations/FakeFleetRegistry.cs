using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>An in-memory registry with just what the operator code reads and the key verbs change.</summary>
internal sealed class FakeFleetRegistry : IFleetRegistry
{
    public List<ClientRecord> Clients { get; } = [];
    public List<KeyRecord> Keys { get; } = [];
    public Dictionary<string, SessionRecord> Sessions { get; } = new(StringComparer.OrdinalIgnoreCase);
    public List<(string Op, string Id, string Actor)> Calls { get; } = [];
    public RevokeOutcome? NextRevoke { get; set; }
    public bool Disposed { get; private set; }

    public string DataDirectory => "/tmp/fake";

    private static readonly DateTimeOffset T0 = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    public ClientRecord AddClient(string uuid, string name, bool online, int port = 0, params string[] tags)
    {
        var fingerprint = "SHA256:" + uuid;
        var client = new ClientRecord
        {
            Uuid = uuid,
            DisplayName = name,
            Tags = tags,
            Hostname = name + ".lan",
            Platform = "linux-x64",
            Capabilities = ["run_command"],
            KeyFingerprint = fingerprint,
            FirstSeen = T0,
            LastSeen = T0.AddHours(1),
            Online = online,
            TunnelPort = online ? port : null,
            SessionId = online ? Sessions.Count + 1 : null,
        };
        Clients.Add(client);
        Keys.Add(new KeyRecord { Fingerprint = fingerprint, Status = KeyStatus.Approved, Uuid = uuid, FirstSeen = T0, LastSeen = T0 });
        if (online)
        {
            Sessions[uuid] = Session(uuid, port);
        }

        return client;
    }

    public static SessionRecord Session(string uuid, int port, byte[]? secret = null, int? gatePid = null) => new()
    {
        Id = port,
        Uuid = uuid,
        Fingerprint = "SHA256:" + uuid,
        Host = "localhost",
        TunnelPort = port,
        Secret = secret ?? new byte[32],
        GatePid = gatePid,
        ConnectedAt = T0,
        OnlineAt = T0,
        LastHeartbeat = T0,
    };

    public static FleetTarget Online(string name) => new(name + "-uuid", name, Session(name + "-uuid", 1));

    public static FleetTarget Offline(string name) => new(name + "-uuid", name, null);

    public KeyRecord? GetKey(string fingerprint) => Keys.FirstOrDefault(k => k.Fingerprint == fingerprint);

    public IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null) =>
        Keys.Where(k => status is null || k.Status == status).ToList();

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor)
    {
        Calls.Add(("approve", fingerprintOrUuid, actor));
        var key = Keys.FirstOrDefault(k => k.Fingerprint == fingerprintOrUuid || k.Uuid == fingerprintOrUuid)
            ?? throw new RegistryNotFoundException($"no key or client '{fingerprintOrUuid}'");
        return new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid, AlreadyApproved = key.Status == KeyStatus.Approved };
    }

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor)
    {
        Calls.Add(("revoke", fingerprintOrUuid, actor));
        if (NextRevoke is { } next)
        {
            return next;
        }

        var key = Keys.FirstOrDefault(k => k.Fingerprint == fingerprintOrUuid || k.Uuid == fingerprintOrUuid)
            ?? throw new RegistryNotFoundException($"no key or client '{fingerprintOrUuid}'");
        return new RevokeOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid };
    }

    public ClientRecord? GetClient(string uuid) => Clients.FirstOrDefault(c => c.Uuid == uuid);

    public IReadOnlyList<ClientRecord> QueryClients(ClientQuery query) => ClientIndex.Build(Clients).Search(query);

    public SessionRecord? GetOpenSession(string uuid) => Sessions.GetValueOrDefault(uuid);

    public IReadOnlyList<SessionRecord> ListOpenSessions() => Sessions.Values.ToList();

    public void Dispose() => Disposed = true;

    public int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree) => throw new NotSupportedException();
    public KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity) => throw new NotSupportedException();
    public ClientRecord AdmitClient(string fingerprint, AgentIdentity identity) => throw new NotSupportedException();
    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor) => throw new NotSupportedException();
    public SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid) => throw new NotSupportedException();
    public void MarkSessionOnline(long sessionId) => throw new NotSupportedException();
    public void TouchSession(long sessionId) => throw new NotSupportedException();
    public void CloseSession(long sessionId, string reason) => throw new NotSupportedException();
    public int CloseAllSessions(string reason) => throw new NotSupportedException();
    public void RecordAudit(AuditEntry entry) { }
    public IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100) => [];
    public string? GetSetting(string key) => null;
    public void SetSetting(string key, string? value) => throw new NotSupportedException();

    // ----- health -----
    public List<ClientHealth> Health { get; } = [];
    public IReadOnlyList<ClientHealth> ListHealth() => Health;
    public void RecordHealthSuccess(string uuid) => throw new NotSupportedException();
    public void RecordHealthFailure(string uuid, string error, int consecutiveFailures) => throw new NotSupportedException();
    public bool MarkUnhealthy(string uuid, long sessionId, string reason, int consecutiveFailures, bool closeSession = true) => throw new NotSupportedException();
    // ----- webhooks and rate limits -----
    public WebhookDelivery RecordEvent(string type, string? uuid, System.Text.Json.Nodes.JsonObject? data = null) => throw new NotSupportedException();
    public RateLimitAdmission BeginRequest(string uuid, RateLimitPolicy policy, AuditEntry refusal) => throw new NotSupportedException();
    public void CompleteRequest(long inflightId, AuditEntry entry, string? eventType = null, System.Text.Json.Nodes.JsonObject? eventData = null) => throw new NotSupportedException();
    public IReadOnlyList<RateLimitStats> GetRateLimitStats(IReadOnlyList<string>? uuids, RateLimitPolicy policy) => throw new NotSupportedException();
    public IReadOnlyList<WebhookDelivery> ListWebhookDeliveries(WebhookDeliveryQuery query) => throw new NotSupportedException();
    public WebhookDelivery? GetWebhookDelivery(string idOrDeliveryId) => throw new NotSupportedException();
    public IReadOnlyList<WebhookAttempt> ListWebhookAttempts(IReadOnlyCollection<long> eventIds) => throw new NotSupportedException();
    public WebhookDelivery ResendWebhookDelivery(string idOrDeliveryId, string actor) => throw new NotSupportedException();
    public IReadOnlyList<WebhookDelivery> ListPendingWebhookEvents(int limit) => throw new NotSupportedException();
    public void RecordWebhookAttempt(WebhookAttemptResult result) => throw new NotSupportedException();
    public void MarkWebhookNoDestination(long eventId) => throw new NotSupportedException();
    public bool TryAcquireWebhookLease(string owner, TimeSpan duration) => throw new NotSupportedException();
    public void ReleaseWebhookLease(string owner) => throw new NotSupportedException();
    // ----- registry: attributed decisions, removal, history -----
    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface) => ApproveKey(fingerprintOrUuid, $"{actor}@{surface}");
    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface) => RevokeKey(fingerprintOrUuid, $"{actor}@{surface}");
    public IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false) => throw new NotSupportedException();
    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface) => throw new NotSupportedException();
    public RemoveOutcome RemoveClient(string uuid, string actor, string surface) => throw new NotSupportedException();
    public IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query) => [];

    public int CountHistory(HistoryQuery query) => 0;
}
