using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EtPhoneHome.Core.Operations;

namespace EtPhoneHome.Core.Files;

/// <summary>The outcome of a file operation on one target of a fan-out; every target gets one.</summary>
public sealed record FleetFileOutcome<T>(FleetTarget Target, CommandStatus Status, T? Value, string? Error, long DurationMs)
    where T : class;

/// <summary>
/// Fan-out of a file operation (read, write, list, upload, download) over many targets with the same rules as
/// <see cref="FleetExecutor"/>: offline and denied targets answered at once, at most <c>throttleLimit</c> at a time,
/// one failure never stops the others, faults classified like command faults (PATH_DENIED → Denied, …), and on
/// cancellation in-flight targets end as Error "cancelled" and unstarted ones as Skipped.
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
        ArgumentOutOfRangeException.ThrowIfLessThan(throttleLimit, 1);
        var channel = Channel.CreateUnbounded<FleetFileOutcome<T>>(new UnboundedChannelOptions { SingleReader = true });
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var producer = Task.Run(() => ProduceAsync(targets, work, throttleLimit, channel.Writer, run.Token), CancellationToken.None);
        try
        {
            await foreach (var outcome in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                yield return outcome;
            }
        }
        finally
        {
            await run.CancelAsync().ConfigureAwait(false);
            await producer.ConfigureAwait(false);
        }
    }

    private static async Task ProduceAsync<T>(
        IReadOnlyList<FleetTarget> targets, Func<FleetTarget, CancellationToken, Task<T>> work, int throttleLimit,
        ChannelWriter<FleetFileOutcome<T>> writer, CancellationToken ct)
        where T : class
    {
        try
        {
            var online = new List<FleetTarget>(targets.Count);
            foreach (var target in targets)
            {
                if (target.DeniedReason is { } reason)
                {
                    writer.TryWrite(new(target, CommandStatus.Denied, null, reason, 0));
                }
                else if (target.Session is null)
                {
                    writer.TryWrite(new(target, CommandStatus.Offline, null, "the client is offline", 0));
                }
                else
                {
                    online.Add(target);
                }
            }

            using var throttle = new SemaphoreSlim(throttleLimit, throttleLimit);
            var running = new List<Task>(online.Count);
            for (var i = 0; i < online.Count; i++)
            {
                var started = false;
                try
                {
                    await throttle.WaitAsync(ct).ConfigureAwait(false);
                    started = !ct.IsCancellationRequested;
                    if (!started)
                    {
                        throttle.Release();
                    }
                }
                catch (OperationCanceledException)
                {
                }

                if (!started)
                {
                    for (var j = i; j < online.Count; j++)
                    {
                        writer.TryWrite(new(online[j], CommandStatus.Skipped, null, "cancelled before it started", 0));
                    }

                    break;
                }

                var target = online[i];
                running.Add(Task.Run(async () =>
                {
                    var clock = Stopwatch.StartNew();
                    FleetFileOutcome<T> outcome;
                    try
                    {
                        var value = await work(target, ct).WaitAsync(ct).ConfigureAwait(false);
                        outcome = new(target, CommandStatus.Succeeded, value, null, clock.ElapsedMilliseconds);
                    }
                    catch (Exception ex)
                    {
                        var classified = FleetCommandResult.FromException(target, ex, clock.ElapsedMilliseconds);
                        outcome = new(target, classified.Status, null, classified.Error, clock.ElapsedMilliseconds);
                    }

                    writer.TryWrite(outcome);
                    throttle.Release();
                }, CancellationToken.None));
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }
}
