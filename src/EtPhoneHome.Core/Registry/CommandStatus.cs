namespace EtPhoneHome.Core.Registry;

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
    /// <summary>Any other fault (tunnel, protocol, cancellation); <c>FleetCommandResult.Error</c> says which.</summary>
    Error,
    /// <summary>Not started: the error limit was reached or the run was cancelled first.</summary>
    Skipped,
}

/// <summary>What a status means for the caller, the same on every surface.</summary>
public static class CommandStatuses
{
    /// <summary>
    /// True when the target was not reached or the command never ran there (offline, timed out, denied, rate
    /// limited, a tunnel or protocol fault): the cmdlets write an error record for it, as Invoke-Command does for a
    /// broken connection. A command that ran and exited non-zero (<see cref="CommandStatus.Failed"/>) was reached:
    /// its exit code is its answer, as a native command's is. <see cref="CommandStatus.Skipped"/> was never tried
    /// (the error limit said so) and is not an error of its own.
    /// </summary>
    public static bool IsUnreachable(CommandStatus status) =>
        status is CommandStatus.Offline or CommandStatus.TimedOut or CommandStatus.Denied or CommandStatus.RateLimited or CommandStatus.Error;
}
