using System.Diagnostics;
using System.Runtime.CompilerServices;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Files;

/// <summary>
/// The outcome of a file operation on one target of a fan-out; every target gets one. <paramref name="Failure"/> says why
/// it did not succeed (from the RPC code or the fault's type), so no caller reads the error text to decide.
/// </summary>
public sealed record FleetFileOutcome<T>(FleetTarget Target, CommandStatus Status, T? Value, string? Error, long DurationMs,
    FailureKind Failure = FailureKind.None)
    where T : class;

/// <summary>
/// Fan-out of a file operation (read, write, list, upload, download) over many targets with the rules of
/// <see cref="FleetFanOut"/> (offline and denied targets answered at once, at most <c>throttleLimit</c> at a time,
/// one failure never stops the others; on cancellation in-flight targets end as Error "cancelled" and unstarted
/// ones as Skipped); faults are classified like command faults (PATH_DENIED → Denied, …).
/// </summary>
public static class FleetFileRunner
{
    public static async IAsyncEnumerable<FleetFileOutcome<T>> RunAsync<T>(
        IReadOnlyList<FleetTarget> targets,
        Func<FleetTarget, CancellationToken, Task<T>> work,
        int throttleLimit = FleetOptions.DefaultThrottleLimit,
        [EnumeratorCancellation] CancellationToken ct = default)
        where T : class
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(work);
        var plan = new FanOutPlan<FleetFileOutcome<T>>
        {
            Run = async (target, token) =>
            {
                var clock = Stopwatch.StartNew();
                try
                {
                    var value = await work(target, token).WaitAsync(token).ConfigureAwait(false);
                    return new FleetFileOutcome<T>(target, CommandStatus.Succeeded, value, null, clock.ElapsedMilliseconds);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !token.IsCancellationRequested)
                {
                    var classified = FleetCommandResult.FromException(target, ex, clock.ElapsedMilliseconds);
                    return new FleetFileOutcome<T>(target, classified.Status, null, classified.Error, clock.ElapsedMilliseconds, classified.Failure);
                }
            },
            Denied = (target, reason) => new(target, CommandStatus.Denied, null, reason, 0, FailureKind.Denied),
            Offline = target => new(target, CommandStatus.Offline, null, "the client is offline", 0, FailureKind.Offline),
            Skipped = (target, reason) => new(target, CommandStatus.Skipped, null, reason, 0),
            Cancelled = (target, ms) => new(target, CommandStatus.Error, null, "cancelled", ms, FailureKind.Cancelled),
        };
        await foreach (var outcome in FleetFanOut.RunAsync(targets, plan, throttleLimit, ct).ConfigureAwait(false))
        {
            yield return outcome;
        }
    }
}
