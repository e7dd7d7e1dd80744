namespace EtPhoneHome.Core.Operations;

/// <summary>Outcome of running one command on one target of a fan-out.</summary>
public enum CommandStatus
{
    /// <summary>The command ran and exited with code 0.</summary>
    Succeeded,
    /// <summary>The command ran and exited with a non-zero code.</summary>
    Failed,
    /// <summary>The command (or the wait for its answer) ran out of time.</summary>
    TimedOut,
    /// <summary>The client has no online session; nothing was sent.</summary>
    Offline,
    /// <summary>Refused by policy: a path outside the allowed paths, or a key that is not approved.</summary>
    Denied,
    /// <summary>Refused by an enforced rate limit.</summary>
    RateLimited,
    /// <summary>Any other fault (tunnel, protocol, cancellation); <see cref="FleetCommandResult.Error"/> says which.</summary>
    Error,
    /// <summary>Not started: the error limit was reached or the run was cancelled first.</summary>
    Skipped,
}
