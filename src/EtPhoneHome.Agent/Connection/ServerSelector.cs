namespace EtPhoneHome.Agent;

/// <summary>One server (a hub's sshd) the agent may connect to, with the known_hosts file that pins its host key.</summary>
public sealed record AgentServer
{
    public required string Host { get; init; }
    public int Port { get; set; } = 22;
    /// <summary>The account on the server; the configuration's <c>server_user</c> when absent.</summary>
    public string? User { get; init; }
    /// <summary>known_hosts holding this server's pinned host key only; relative to the config directory.</summary>
    public required string KnownHostsFile { get; init; }

    public override string ToString() => $"{User}@{Host}:{Port}";
}

/// <summary>
/// Which server the next connection goes to, and after how long. A session that reached the hub's welcome keeps the
/// agent on its server and resets the backoff; any other ending (unreachable, host key refused, ssh failed) moves it to
/// the next server in the list, after the jittered exponential delay of <see cref="ReconnectBackoff"/> — so when a hub
/// dies, its agents spread over the next server over the jitter window instead of arriving together, and when every
/// server is down the delay keeps growing up to the maximum. A reconnect the hub asked for stays on the same server.
/// </summary>
public sealed class ServerSelector
{
    private readonly IReadOnlyList<AgentServer> _servers;
    private readonly ReconnectBackoff _backoff;
    private int _index;

    /// <param name="servers">The servers in order of preference (at least one).</param>
    /// <param name="backoff">The delay between attempts.</param>
    /// <param name="start">Index of the first server to try (the first by default).</param>
    public ServerSelector(IReadOnlyList<AgentServer> servers, ReconnectBackoff backoff, int start = 0)
    {
        ArgumentNullException.ThrowIfNull(servers);
        ArgumentNullException.ThrowIfNull(backoff);
        if (servers.Count == 0)
        {
            throw new ArgumentException("at least one server is needed", nameof(servers));
        }

        _servers = servers;
        _backoff = backoff;
        _index = ((start % servers.Count) + servers.Count) % servers.Count;
    }

    /// <summary>The server the next attempt goes to.</summary>
    public AgentServer Current => _servers[_index];

    /// <summary>
    /// Records how the session on <see cref="Current"/> ended and returns the wait before the next attempt (zero when
    /// the hub asked to reconnect). <see cref="Current"/> is then the server of that attempt.
    /// </summary>
    public TimeSpan After(SessionOutcome outcome)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        if (outcome.ReachedWelcome)
        {
            _backoff.Reset();
        }

        if (outcome.ReconnectNow)
        {
            return TimeSpan.Zero;
        }

        if (!outcome.ReachedWelcome)
        {
            _index = (_index + 1) % _servers.Count;
        }

        return _backoff.NextDelay();
    }
}
