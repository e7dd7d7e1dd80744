namespace EtPhoneHome.Agent;

/// <summary>How one SSH session ended, which decides how long the supervisor waits before the next.</summary>
public sealed record SessionOutcome
{
    /// <summary>The hub sent welcome during this session (the backoff resets).</summary>
    public bool ReachedWelcome { get; init; }
    /// <summary>The hub asked for an immediate reconnect.</summary>
    public bool ReconnectNow { get; init; }
    /// <summary>The hub refused the agent.</summary>
    public bool Refused { get; init; }
    /// <summary>Why the session ended, for status.json; null for a requested reconnect.</summary>
    public string? Error { get; init; }
}
