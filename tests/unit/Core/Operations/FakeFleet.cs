using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>
/// An in-memory fleet: the keys, clients, sessions, history, settings and health stores that operator code reads and the
/// key verbs change, and a rate-limit ledger without limits (every request is admitted; its completion goes to the
/// history). It is no webhook outbox: code that needs one gets a real registry.
/// </summary>
internal sealed class FakeFleet : IKeyStore, IClientStore, ISessionStore, IHistoryStore, ISettingsStore, IHealthStore, IRateLimitLedger, IDisposable
{
    public List<ClientRecord> Clients { get; } = [];
    public List<KeyRecord> Keys { get; } = [];
    public Dictionary<string, SessionRecord> Sessions { get; } = new(StringComparer.OrdinalIgnoreCase);
    public List<(string Op, string Id, string Actor)> Calls { get; } = [];
    public List<AuditEntry> Audit { get; } = [];
    public Dictionary<string, string> Settings { get; } = new(StringComparer.Ordinal);
    public List<ClientHealth> Health { get; } = [];
    public RevokeOutcome? NextRevoke { get; set; }
    public bool Disposed { get; private set; }

    public const string DataDirectory = "/tmp/fake";

    private static readonly DateTimeOffset T0 = new(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);

    /// <summary>The stores this fake is, as the operator front ends' composition root takes them; disposing them disposes the fake.</summary>
    public RegistryStores Stores() => new()
    {
        Keys = this,
        Clients = this,
        Sessions = this,
        History = this,
        Settings = this,
        Health = this,
        RateLimits = this,
        DataDirectory = DataDirectory,
        Owner = this,
    };

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

    public void Dispose() => Disposed = true;

    // ----- keys -----
    public KeyRecord? GetKey(string fingerprint) => Keys.FirstOrDefault(k => k.Fingerprint == fingerprint);

    public IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null) =>
        Keys.Where(k => status is null || k.Status == status).ToList();

    public KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity)
    {
        if (GetKey(fingerprint) is { } known)
        {
            return Replace(known, known with { LastSeen = T0 });
        }

        var key = new KeyRecord
        {
            Fingerprint = fingerprint,
            PublicKey = publicKey,
            Status = KeyStatus.Pending,
            ClaimedUuid = identity.ClaimedUuid,
            ClaimedHostname = identity.Hostname,
            ClaimedPlatform = identity.Platform,
            ClaimedUsername = identity.Username,
            ClaimedDisplayName = identity.DisplayName,
            FirstSeen = T0,
            LastSeen = T0,
        };
        Keys.Add(key);
        return key;
    }

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor)
    {
        Calls.Add(("approve", fingerprintOrUuid, actor));
        var key = Keys.FirstOrDefault(k => k.Fingerprint == fingerprintOrUuid || k.Uuid == fingerprintOrUuid)
            ?? throw new RegistryNotFoundException($"no key or client '{fingerprintOrUuid}'");
        return new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid, AlreadyApproved = key.Status == KeyStatus.Approved };
    }

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface) => ApproveKey(fingerprintOrUuid, $"{actor}@{surface}");

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

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface) => RevokeKey(fingerprintOrUuid, $"{actor}@{surface}");

    public int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree)
    {
        var key = GetKey(fingerprint) is { Status: KeyStatus.Approved } approved ? approved
            : throw new InvalidOperationException($"key {fingerprint} is not approved");
        for (var port = range.First; port <= range.Last; port++)
        {
            if (port != key.TunnelPort && Keys.All(k => k.TunnelPort != port) && isFree(port))
            {
                Replace(key, key with { TunnelPort = port });
                return port;
            }
        }

        throw new InvalidOperationException($"no port of {range} is free");
    }

    public IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false)
    {
        var cutoff = DateTimeOffset.UtcNow - unseenFor;
        var stale = Keys.Where(k => k.Status == KeyStatus.Pending && k.LastSeen < cutoff).OrderBy(k => k.LastSeen).ToList();
        if (!dryRun)
        {
            Keys.RemoveAll(stale.Contains);
            Calls.Add(("purge", stale.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), $"{actor}@{surface}"));
        }

        return stale;
    }

    // ----- clients -----
    public ClientRecord? GetClient(string uuid) => Clients.FirstOrDefault(c => c.Uuid == uuid);

    public IReadOnlyList<ClientRecord> QueryClients(ClientQuery query) => ClientIndex.Build(Clients).Search(query);

    public ClientRecord AdmitClient(string fingerprint, AgentIdentity identity)
    {
        var key = GetKey(fingerprint) is { Status: KeyStatus.Approved } approved ? approved
            : throw new InvalidOperationException($"key {fingerprint} is not approved");
        if (key.Uuid is { } uuid && GetClient(uuid) is { } bound)
        {
            return Replace(bound, bound with
            {
                Hostname = identity.Hostname,
                Platform = identity.Platform,
                Username = identity.Username,
                AgentVersion = identity.AgentVersion,
                Capabilities = identity.Capabilities,
            });
        }

        var client = new ClientRecord
        {
            Uuid = key.Uuid ?? identity.ClaimedUuid ?? Guid.NewGuid().ToString(),
            DisplayName = identity.DisplayName ?? identity.Hostname ?? fingerprint,
            Purpose = identity.Purpose,
            Tags = identity.Tags,
            Hostname = identity.Hostname,
            Platform = identity.Platform,
            Username = identity.Username,
            AgentVersion = identity.AgentVersion,
            Capabilities = identity.Capabilities,
            KeyFingerprint = fingerprint,
            FirstSeen = T0,
            LastSeen = T0,
        };
        Clients.Add(client);
        Replace(key, key with { Uuid = client.Uuid });
        return client;
    }

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor)
    {
        Calls.Add(("update", uuid, actor));
        var client = GetClient(uuid) ?? throw new RegistryNotFoundException($"no client '{uuid}'");
        var tags = (update.Tags ?? client.Tags).Concat(update.AddTags ?? []).Except(update.RemoveTags ?? [], StringComparer.OrdinalIgnoreCase)
            .Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        return Replace(client, client with
        {
            DisplayName = update.DisplayName ?? client.DisplayName,
            Purpose = update.Purpose ?? client.Purpose,
            Tags = tags,
            AllowedPaths = update.ClearAllowedPaths ? null : update.AllowedPaths ?? client.AllowedPaths,
            WebhookUrl = update.WebhookUrl ?? client.WebhookUrl,
            RateLimitRpm = update.RateLimitRpm ?? client.RateLimitRpm,
            RateLimitConcurrent = update.RateLimitConcurrent ?? client.RateLimitConcurrent,
        });
    }

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface) => UpdateClient(uuid, update, $"{actor}@{surface}");

    public RemoveOutcome RemoveClient(string uuid, string actor, string surface)
    {
        Calls.Add(("remove", uuid, $"{actor}@{surface}"));
        var client = GetClient(uuid) ?? throw new RegistryNotFoundException($"no client '{uuid}'");
        if (client.RemovedAt is { } removedAt)
        {
            return new RemoveOutcome { Uuid = uuid, DisplayName = client.DisplayName, AlreadyRemoved = true, RemovedAt = removedAt };
        }

        var revoked = Keys.Where(k => k.Uuid == uuid && k.Status != KeyStatus.Revoked).ToList();
        foreach (var key in revoked)
        {
            Replace(key, key with { Status = KeyStatus.Revoked });
        }

        var closed = Sessions.Remove(uuid, out var session) ? new[] { session } : [];
        Replace(client, client with { RemovedAt = T0, Online = false, TunnelPort = null, SessionId = null });
        return new RemoveOutcome
        {
            Uuid = uuid,
            DisplayName = client.DisplayName,
            RevokedFingerprints = revoked.Select(k => k.Fingerprint).ToList(),
            ClosedSessions = closed,
            RemovedAt = T0,
        };
    }

    // ----- sessions -----
    public SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid, string? hubId = null)
    {
        var session = new SessionRecord
        {
            Id = Sessions.Values.Select(s => s.Id).DefaultIfEmpty(0).Max() + 1,
            Uuid = uuid,
            Fingerprint = fingerprint,
            Host = host,
            TunnelPort = tunnelPort,
            Secret = secret,
            GatePid = gatePid,
            HubPid = hubPid,
            HubId = hubId,
            ConnectedAt = T0,
            LastHeartbeat = T0,
        };
        Sessions[uuid] = session;
        return session;
    }

    public void MarkSessionOnline(long sessionId) => ChangeSession(sessionId, s => s with { OnlineAt = T0 });

    public void TouchSession(long sessionId) => ChangeSession(sessionId, s => s with { LastHeartbeat = T0 });

    public void CloseSession(long sessionId, string reason)
    {
        if (Sessions.Values.FirstOrDefault(s => s.Id == sessionId) is { } session)
        {
            Sessions.Remove(session.Uuid);
        }
    }

    public int CloseAllSessions(string reason)
    {
        var count = Sessions.Count;
        Sessions.Clear();
        return count;
    }

    public SessionRecord? GetOpenSession(string uuid) => Sessions.GetValueOrDefault(uuid);

    public IReadOnlyList<SessionRecord> ListOpenSessions() => Sessions.Values.ToList();

    // ----- history and settings -----
    public void RecordAudit(AuditEntry entry) => Audit.Add(entry);

    public IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100) =>
        Audit.Where(e => uuid is null || e.Uuid == uuid).Reverse().Take(limit).ToList();

    public IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query) => History(query).Skip(query.Skip).Take(query.Take).ToList();

    public int CountHistory(HistoryQuery query) => History(query).Count();

    public string? GetSetting(string key) => Settings.GetValueOrDefault(key);

    public void SetSetting(string key, string? value)
    {
        if (value is null)
        {
            Settings.Remove(key);
        }
        else
        {
            Settings[key] = value;
        }
    }

    // ----- health -----
    public IReadOnlyList<ClientHealth> ListHealth() => Health;

    public void RecordHealthSuccess(string uuid) =>
        SetHealth(uuid, h => h with { ConsecutiveFailures = 0, LastOkAt = T0, UnhealthySince = null });

    public void RecordHealthFailure(string uuid, string error, int consecutiveFailures) =>
        SetHealth(uuid, h => h with { ConsecutiveFailures = consecutiveFailures, LastError = error, LastFailureAt = T0 });

    public bool MarkUnhealthy(string uuid, long sessionId, string reason, int consecutiveFailures, bool closeSession = true)
    {
        if (Sessions.Values.All(s => s.Id != sessionId))
        {
            return false;
        }

        SetHealth(uuid, h => h with { ConsecutiveFailures = consecutiveFailures, LastError = reason, LastFailureAt = T0, UnhealthySince = T0 });
        if (closeSession)
        {
            CloseSession(sessionId, "unhealthy");
        }

        return true;
    }

    // ----- rate limits: none -----
    public RateLimitAdmission BeginRequest(string uuid, RateLimitPolicy policy, AuditEntry refusal) => new()
    {
        Allowed = true,
        InflightId = 0,
        OverRpm = false,
        OverConcurrent = false,
        Stats = Unlimited(uuid, policy),
    };

    public void CompleteRequest(long inflightId, AuditEntry entry, string? eventType = null, System.Text.Json.Nodes.JsonObject? eventData = null) =>
        Audit.Add(entry);

    public IReadOnlyList<RateLimitStats> GetRateLimitStats(IReadOnlyList<string>? uuids, RateLimitPolicy policy) =>
        (uuids ?? Clients.Select(c => c.Uuid).ToList()).Select(u => Unlimited(u, policy)).ToList();

    private static RateLimitStats Unlimited(string uuid, RateLimitPolicy policy) => new()
    {
        Uuid = uuid,
        RequestsPerMinute = 0,
        CurrentConcurrent = 0,
        RpmLimit = policy.Rpm,
        ConcurrentLimit = policy.Concurrent,
        RpmWarnings = 0,
        ConcurrentWarnings = 0,
        Mode = RateLimitMode.Warn,
    };

    private IEnumerable<AuditEntry> History(HistoryQuery query) =>
        Audit.Where(e => (query.Uuids is null || (e.Uuid is not null && query.Uuids.Contains(e.Uuid)))
                         && (query.Operations is null || query.Operations.Contains(e.Operation))
                         && (query.Statuses is null || query.Statuses.Contains(e.Status)))
            .Reverse();

    private void SetHealth(string uuid, Func<ClientHealth, ClientHealth> change)
    {
        var index = Health.FindIndex(h => h.Uuid == uuid);
        var current = index >= 0 ? Health[index] : new ClientHealth { Uuid = uuid };
        if (index >= 0)
        {
            Health[index] = change(current);
        }
        else
        {
            Health.Add(change(current));
        }
    }

    private void ChangeSession(long sessionId, Func<SessionRecord, SessionRecord> change)
    {
        if (Sessions.Values.FirstOrDefault(s => s.Id == sessionId) is { } session)
        {
            Sessions[session.Uuid] = change(session);
        }
    }

    private KeyRecord Replace(KeyRecord old, KeyRecord now)
    {
        Keys[Keys.IndexOf(old)] = now;
        return now;
    }

    private ClientRecord Replace(ClientRecord old, ClientRecord now)
    {
        Clients[Clients.IndexOf(old)] = now;
        return now;
    }
}
