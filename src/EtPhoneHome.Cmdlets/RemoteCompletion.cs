using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Read-only stores over what the server sent (cached briefly by <see cref="EphRemoteSession"/>), so Core's completion
/// sources answer the same way through a server connection as over the local registry. Only reads are possible.
/// </summary>
internal sealed class SnapshotClientStore(IReadOnlyList<ClientRecord> clients) : IClientStore
{
    public ClientRecord? GetClient(string uuid) => clients.FirstOrDefault(c => string.Equals(c.Uuid, uuid, StringComparison.OrdinalIgnoreCase));

    /// <summary>The name patterns of the query (what completion asks); the other filters are the server's business.</summary>
    public IReadOnlyList<ClientRecord> QueryClients(ClientQuery query) =>
        query.Names is { Count: > 0 } names ? [.. clients.Where(c => names.Any(n => ClientNameMatcher.IsMatch(n, c)))] : clients;

    public ClientRecord AdmitClient(string fingerprint, AgentIdentity identity) => throw ReadOnly();

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor) => throw ReadOnly();

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface) => throw ReadOnly();

    public RemoveOutcome RemoveClient(string uuid, string actor, string surface) => throw ReadOnly();

    internal static NotSupportedException ReadOnly() => new("a snapshot of the server's registry is read-only");
}

/// <summary>The server's keys as listed for completion; read-only.</summary>
internal sealed class SnapshotKeyStore(IReadOnlyList<KeyRecord> keys) : IKeyStore
{
    public KeyRecord? GetKey(string fingerprint) => keys.FirstOrDefault(k => k.Fingerprint == fingerprint);

    public IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null)
    {
        if (status is null)
        {
            return keys;
        }

        // A loop, not a lambda: a closure would put the Core enum in a compiler-made type's layout, which PowerShell
        // reads before the module's dependency resolver is registered.
        var matching = new List<KeyRecord>();
        foreach (var key in keys)
        {
            if (key.Status == status)
            {
                matching.Add(key);
            }
        }

        return matching;
    }

    public KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity) => throw SnapshotClientStore.ReadOnly();

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor) => throw SnapshotClientStore.ReadOnly();

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface) => throw SnapshotClientStore.ReadOnly();

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor) => throw SnapshotClientStore.ReadOnly();

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface) => throw SnapshotClientStore.ReadOnly();

    public int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree) => throw SnapshotClientStore.ReadOnly();

    public IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false) => throw SnapshotClientStore.ReadOnly();
}
