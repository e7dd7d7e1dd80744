using System.Text.RegularExpressions;

namespace EtPhoneHome.Core.Registry;

/// <summary>One hub of a registry: its id, where it runs and when it last said it was alive.</summary>
public sealed record HubRecord(string Id, string Host, int Pid, DateTimeOffset StartedAt, DateTimeOffset LastSeen)
{
    /// <summary>Where the other hubs reach this hub's sshd to relay to its clients; null when it serves no relay.</summary>
    public HubRelayEndpoint? Relay { get; init; }

    /// <summary>Whether the hub beat within <paramref name="deadAfter"/> of <paramref name="now"/>.</summary>
    public bool IsAlive(DateTimeOffset now, TimeSpan deadAfter) => now - LastSeen < deadAfter;
}

/// <summary>
/// How the other hubs relay to a hub's clients: its sshd's address (<c>user@host:port</c>), that sshd's host public key
/// (pinned by the relaying hub, read from the registry every hub trusts), and the public key the hub itself logs in
/// with when it relays (accepted by every hub's sshd while the hub is alive: the registry is the trust root).
/// </summary>
public sealed record HubRelayEndpoint(string Address, string HostKey, string Key, string KeyFingerprint);

/// <summary>
/// The hubs sharing one registry (several hubs on one PostgreSQL). Each hub writes a heartbeat row; a hub whose row is
/// older than a timeout is dead, and the first surviving hub to notice closes its sessions — once, in one writer
/// transaction, so the client.disconnected events are emitted once whatever the number of survivors.
/// </summary>
public interface IHubStore
{
    /// <summary>Records that hub <paramref name="hubId"/> on <paramref name="host"/> (process <paramref name="pid"/>) is alive now.</summary>
    HubRecord BeatHub(string hubId, string host, int pid);

    /// <summary>Publishes how other hubs relay to hub <paramref name="hubId"/> (its row must exist: <see cref="BeatHub"/> first).</summary>
    void PublishHubRelay(string hubId, HubRelayEndpoint relay);

    /// <summary>Every hub that ever beat, oldest first.</summary>
    IReadOnlyList<HubRecord> ListHubs();

    /// <summary>The sessions hub <paramref name="hubId"/> holds.</summary>
    IReadOnlyList<SessionRecord> ListOpenSessionsOf(string hubId);

    /// <summary>
    /// Closes the open sessions of every hub but <paramref name="survivor"/> whose heartbeat is older than
    /// <paramref name="deadAfter"/> (marking them offline, client.disconnected once each). Returns what was closed.
    /// </summary>
    IReadOnlyList<SessionRecord> CloseSessionsOfDeadHubs(string survivor, TimeSpan deadAfter);
}

/// <summary>What a hub id may be: short, printable, safe in logs and file names.</summary>
public static partial class HubIds
{
    /// <summary>Throws a clear <see cref="ArgumentException"/> unless <paramref name="id"/> is 1–64 of A–Z a–z 0–9 . _ -.</summary>
    public static string Validate(string id)
    {
        if (id is null || !Pattern().IsMatch(id))
        {
            throw new ArgumentException("a hub id is 1 to 64 characters of A-Z, a-z, 0-9, '.', '_' and '-', starting with a letter or digit", nameof(id));
        }

        return id;
    }

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex Pattern();
}
