using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

using EtPhoneHome.Core;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Operations;
namespace EtPhoneHome.Hub;

/// <summary>Settings of the hub daemon.</summary>
public sealed class HubOptions
{
    /// <summary>The data directory: registry and the hub socket.</summary>
    public required DataDirectory DataDirectory { get; init; }

    /// <summary>Path of eph-gate as sshd runs it; written into the forced command of every key line.</summary>
    public string GatePath { get; init; } = "eph-gate";

    /// <summary>Heartbeat interval the agents are told to use; three missed intervals close a session.</summary>
    public int HeartbeatSeconds { get; init; } = 15;

    /// <summary>How often the hub re-reads the registry (approvals, revocations, replaced sessions).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Per-stream output cap the agents are told to apply.</summary>
    public long MaxOutputBytes { get; init; } = CommandLimits.DefaultMaxOutputBytes;

    /// <summary>Host whose loopback serves the tunnel ports; defaults to this machine's name.</summary>
    public string? Host { get; init; }

    /// <summary>Admissions (hello → online) in progress at once; the rest wait their turn.</summary>
    public int MaxConcurrentAdmissions { get; init; } = 32;

    /// <summary>Time an agent has to send its hello.</summary>
    public TimeSpan HelloTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Time the tunnel check (handshake and heartbeat RPC) may take.</summary>
    public TimeSpan TunnelTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Sessions one unapproved key may hold at once; a session past it is refused and closed.</summary>
    public int MaxSessionsPerPendingKey { get; init; } = KeyLimits.DefaultMaxSessionsPerPendingKey;

    /// <summary>Sessions one approved key may hold at once (its session and reconnects racing it).</summary>
    public int MaxSessionsPerApprovedKey { get; init; } = KeyLimits.DefaultMaxSessionsPerApprovedKey;

    /// <summary>Pending keys unseen for longer are purged by the hub; null keeps them until an operator purges them.</summary>
    public TimeSpan? PendingKeyMaxAge { get; init; } = KeyLimits.DefaultPendingKeyMaxAge;

    /// <summary>How often the hub looks for expired pending keys.</summary>
    public TimeSpan PendingKeyExpiryInterval { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How often a waiting agent's pending key is marked seen (so expiry and eviction spare keys whose agent still waits).</summary>
    public TimeSpan PendingKeyRefreshInterval { get; init; } = TimeSpan.FromMinutes(1);

    /// <summary>Bound of the in-memory cache of offered public keys.</summary>
    public int MaxOfferedKeys { get; init; } = 10_000;

    /// <summary>Server ports handed to approved keys, one each (sshd's permitlisten); the server's own services stay outside.</summary>
    public TunnelPortRange TunnelPorts { get; init; } = TunnelPortRange.Default;

    /// <summary>Host for tunnel connections (the loopback sshd listens on for reverse forwards).</summary>
    public string TunnelHost { get; init; } = "127.0.0.1";

    /// <summary>
    /// Where the hub's log entries go (eph-server run: stderr); dropped when not set. Entries never contain session
    /// secrets.
    /// </summary>
    public IEphLog Log { get; init; } = NullLog.Instance;

    /// <summary>The health monitor's interval, timeout and threshold; null turns the monitor off.</summary>
    public HealthOptions? Health { get; init; } = new();

    /// <summary>How the monitor checks a session; the tunnel heartbeat when null (tests plug in fakes).</summary>
    public IHealthProbe? HealthProbe { get; init; }

    /// <summary>
    /// How long sessions a previous hub left open wait for their gates to re-attach them; those not back by then are
    /// closed. Zero closes them all at start. The gates retry every half second, so a running gate is back at once.
    /// </summary>
    public TimeSpan ResumeGrace { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// This hub's id among the hubs sharing the registry; null takes the data directory's (<see cref="HubIdentity"/>).
    /// </summary>
    public string? HubId { get; init; }

    /// <summary>How often the hub writes its heartbeat row and looks for dead hubs.</summary>
    public TimeSpan HubHeartbeatInterval { get; init; } = DefaultHubHeartbeatInterval;

    /// <summary>The hub heartbeat of <c>eph-server run</c> (not an option there).</summary>
    public static readonly TimeSpan DefaultHubHeartbeatInterval = TimeSpan.FromSeconds(5);

    /// <summary>The dead-hub timeout when none is given (<c>eph-server run --dead-hub-timeout</c>).</summary>
    public static readonly TimeSpan DefaultDeadHubTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// A hub whose heartbeat is older is dead: the others close its sessions. Longer than a restart of a hub (which
    /// adopts its own sessions again), far longer than the clock skew between hub hosts, and never shorter than
    /// <see cref="MinimumDeadHubTimeout"/>.
    /// </summary>
    public TimeSpan DeadHubTimeout { get; init; } = DefaultDeadHubTimeout;

    /// <summary>Heartbeats a live hub may miss in a row (a slow or failed registry write) before the others may call it dead.</summary>
    public const int HubHeartbeatsMissedBeforeDead = 3;

    /// <summary>
    /// The shortest dead-hub timeout for a heartbeat interval: a live hub writes its row every interval (the next write
    /// waits for the last one), so its row is at most one interval old, plus the write's time; after a failed or slow
    /// write it may be two. Three intervals leave that margin (agents' sessions follow the same rule).
    /// </summary>
    public static TimeSpan MinimumDeadHubTimeout(TimeSpan hubHeartbeatInterval) => hubHeartbeatInterval * HubHeartbeatsMissedBeforeDead;

    /// <summary>Whether a pid runs a session's gate; the process table (an eph-gate naming the key) when null. Tests replace it.</summary>
    internal Func<SessionRecord, int, bool>? GateProcessCheck { get; init; }

    /// <summary>
    /// Where the other hubs sharing the registry reach this hub's sshd to relay operators' requests to its clients
    /// (<c>user@host:port</c>, the fleet account); null serves no relay and relays nothing. With it the hub keeps a relay
    /// key in its data directory and publishes the address, the sshd host key and its relay public key in the registry.
    /// </summary>
    public string? RelayAddress { get; init; }

    /// <summary>This host's sshd public host key the other hubs pin (<c>.pub</c> file); read when <see cref="RelayAddress"/> is set.</summary>
    public string RelayHostKeyFile { get; init; } = "/etc/ssh/ssh_host_ed25519_key.pub";

    /// <summary>How the relay runs ssh (tests name the client and its config).</summary>
    public EtPhoneHome.Core.Remote.SshLinkOptions? RelaySsh { get; init; }
}
