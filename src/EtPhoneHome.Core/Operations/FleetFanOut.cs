using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace EtPhoneHome.Core.Operations;

/// <summary>What one kind of fleet operation plugs into <see cref="FleetFanOut"/>: how to run a target and how to word the targets it does not run.</summary>
/// <typeparam name="TResult">The per-target result.</typeparam>
internal sealed record FanOutPlan<TResult>
{
    /// <summary>Runs one online, permitted target. Faults are the plan's to turn into results; a cancellation of the fan-out may escape (it becomes <see cref="Cancelled"/>).</summary>
    public required Func<FleetTarget, CancellationToken, Task<TResult>> Run { get; init; }

    /// <summary>A target refused before anything ran (revoked or mismatched key…), with the reason.</summary>
    public required Func<FleetTarget, string, TResult> Denied { get; init; }

    /// <summary>A target without an online session.</summary>
    public required Func<FleetTarget, TResult> Offline { get; init; }

    /// <summary>A target never started (cancellation, or the error limit), with the reason.</summary>
    public required Func<FleetTarget, string, TResult> Skipped { get; init; }

    /// <summary>A target whose run was cut by cancellation while in flight, with the milliseconds it ran.</summary>
    public required Func<FleetTarget, long, TResult> Cancelled { get; init; }

    /// <summary>Whether a result counts toward <see cref="ErrorLimit"/>.</summary>
    public Func<TResult, bool>? IsError { get; init; }

    /// <summary>Once this many results are errors, no new target starts; null: no limit.</summary>
    public int? ErrorLimit { get; init; }

    /// <summary>How the error limit is named in the reason given to the targets it skips.</summary>
    public string? ErrorLimitText { get; init; }
}

/// <summary>
/// The fan-out rules every fleet operation shares (commands, file operations, metrics):
/// <list type="bullet">
/// <item>every target gets exactly one result, streamed as it finishes;</item>
/// <item>denied and offline targets are answered at once, before anything runs;</item>
/// <item>at most <c>throttleLimit</c> targets run at a time; one failure never stops the others;</item>
/// <item>once the plan's error limit is reached no new target starts — those are Skipped;</item>
/// <item>cancellation does not throw: in-flight targets end as the plan's Cancelled, unstarted ones as Skipped
/// "cancelled before it started", and the enumeration completes; a consumer that stops early cancels the rest.</item>
/// </list>
/// </summary>
internal static class FleetFanOut
{
    public static async IAsyncEnumerable<TResult> RunAsync<TResult>(
        IReadOnlyList<FleetTarget> targets,
        FanOutPlan<TResult> plan,
        int throttleLimit,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(plan);
        ArgumentOutOfRangeException.ThrowIfLessThan(throttleLimit, 1);
        var channel = Channel.CreateUnbounded<TResult>(new UnboundedChannelOptions { SingleReader = true });
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var producer = Task.Run(() => ProduceAsync(targets, plan, throttleLimit, channel.Writer, run.Token), CancellationToken.None);
        try
        {
            // Reading is not tied to the token: after cancellation the producer still writes the cancelled and
            // skipped results, then completes the channel.
            await foreach (var result in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                yield return result;
            }
        }
        finally
        {
            await run.CancelAsync().ConfigureAwait(false);
            await producer.ConfigureAwait(false);
        }
    }

    private static async Task ProduceAsync<TResult>(
        IReadOnlyList<FleetTarget> targets, FanOutPlan<TResult> plan, int throttleLimit, ChannelWriter<TResult> writer, CancellationToken ct)
    {
        var errors = 0;
        var limit = plan.ErrorLimit ?? int.MaxValue;
        void Report(TResult result)
        {
            if (plan.IsError?.Invoke(result) == true)
            {
                Interlocked.Increment(ref errors);
            }

            writer.TryWrite(result);
        }

        try
        {
            var online = new List<FleetTarget>(targets.Count);
            foreach (var target in targets)
            {
                if (target.DeniedReason is { } reason)
                {
                    Report(plan.Denied(target, reason));
                }
                else if (target.Session is null)
                {
                    Report(plan.Offline(target));
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
                string? skipReason = null;
                try
                {
                    await throttle.WaitAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    skipReason = "cancelled before it started";
                }

                if (skipReason is null && ct.IsCancellationRequested)
                {
                    // A slot freed by a cancelled target can win the race against the cancelled wait.
                    throttle.Release();
                    skipReason = "cancelled before it started";
                }
                else if (skipReason is null && Volatile.Read(ref errors) >= limit)
                {
                    throttle.Release();
                    skipReason = $"not started: the error limit ({plan.ErrorLimitText ?? limit.ToString(System.Globalization.CultureInfo.InvariantCulture)}) was reached";
                }

                if (skipReason is not null)
                {
                    for (var j = i; j < online.Count; j++)
                    {
                        Report(plan.Skipped(online[j], skipReason));
                    }

                    break;
                }

                running.Add(RunOneAsync(online[i], plan, throttle, Report, ct));
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private static async Task RunOneAsync<TResult>(FleetTarget target, FanOutPlan<TResult> plan, SemaphoreSlim throttle, Action<TResult> report, CancellationToken ct)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        TResult result;
        try
        {
            // Yield first so a run that blocks synchronously cannot hold up the launch loop; WaitAsync makes
            // cancellation prompt even for a run that ignores its token.
            await Task.Yield();
            result = await plan.Run(target, ct).WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            result = plan.Cancelled(target, clock.ElapsedMilliseconds);
        }

        // Report before releasing the slot, so the launch loop sees this error when it checks the limit.
        report(result);
        throttle.Release();
    }
}
