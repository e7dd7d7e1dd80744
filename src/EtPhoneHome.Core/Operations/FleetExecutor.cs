using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// Fan-out of one command over many targets.
/// <list type="bullet">
/// <item>Every target gets exactly one <see cref="FleetCommandResult"/>, streamed as it finishes.</item>
/// <item>Offline and denied targets are answered at once, before any command is launched.</item>
/// <item>At most <see cref="FleetOptions.ThrottleLimit"/> targets run at a time; one failure never stops the others.</item>
/// <item>Once <see cref="FleetOptions.MaxErrors"/> is reached no new target is launched; those are reported Skipped.</item>
/// <item>Cancellation does not throw: in-flight targets end at once as <see cref="CommandStatus.Error"/> "cancelled",
/// targets not started yet as <see cref="CommandStatus.Skipped"/> "cancelled", and the enumeration completes,
/// so a caller still holds a result for every target. A consumer that stops enumerating early cancels the rest.</item>
/// </list>
/// </summary>
public sealed class FleetExecutor
{
    private readonly ICommandTransport _transport;

    public FleetExecutor(ICommandTransport? transport = null)
    {
        _transport = transport ?? new TunnelCommandTransport();
    }

    public async IAsyncEnumerable<FleetCommandResult> RunAsync(
        IReadOnlyList<FleetTarget> targets,
        RunCommandParams parameters,
        FleetOptions? options = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentNullException.ThrowIfNull(parameters);
        options ??= new FleetOptions();
        if (options.ThrottleLimit < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ThrottleLimit, "ThrottleLimit must be at least 1");
        }

        var channel = Channel.CreateUnbounded<FleetCommandResult>(new UnboundedChannelOptions { SingleReader = true });
        using var run = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var producer = Task.Run(() => ProduceAsync(targets, parameters, options, channel.Writer, run.Token), CancellationToken.None);
        try
        {
            // Reading is not tied to the token: after cancellation the producer still writes the
            // cancelled and skipped results, then completes the channel.
            await foreach (var result in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                yield return result;
            }
        }
        finally
        {
            run.Cancel();
            await producer.ConfigureAwait(false);
        }
    }

    private async Task ProduceAsync(
        IReadOnlyList<FleetTarget> targets,
        RunCommandParams parameters,
        FleetOptions options,
        ChannelWriter<FleetCommandResult> writer,
        CancellationToken ct)
    {
        var errors = 0;
        var threshold = options.MaxErrors?.Threshold(targets.Count) ?? int.MaxValue;
        void Report(FleetCommandResult result)
        {
            if (result.Status is not CommandStatus.Succeeded and not CommandStatus.Skipped)
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
                    Report(FleetCommandResult.Unstarted(target, CommandStatus.Denied, reason));
                }
                else if (target.Session is null)
                {
                    Report(FleetCommandResult.Unstarted(target, CommandStatus.Offline, "the client is offline"));
                }
                else
                {
                    online.Add(target);
                }
            }

            using var throttle = new SemaphoreSlim(options.ThrottleLimit, options.ThrottleLimit);
            var running = new List<Task>(online.Count);
            for (var i = 0; i < online.Count; i++)
            {
                var target = online[i];
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
                else if (skipReason is null && Volatile.Read(ref errors) >= threshold)
                {
                    throttle.Release();
                    skipReason = $"not started: the error limit ({options.MaxErrors}) was reached";
                }

                if (skipReason is not null)
                {
                    for (var j = i; j < online.Count; j++)
                    {
                        Report(FleetCommandResult.Unstarted(online[j], CommandStatus.Skipped, skipReason));
                    }

                    break;
                }

                running.Add(RunOneAsync(target, parameters, options, throttle, Report, ct));
            }

            await Task.WhenAll(running).ConfigureAwait(false);
        }
        finally
        {
            writer.TryComplete();
        }
    }

    private async Task RunOneAsync(
        FleetTarget target,
        RunCommandParams parameters,
        FleetOptions options,
        SemaphoreSlim throttle,
        Action<FleetCommandResult> report,
        CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        FleetCommandResult result;
        using var perTarget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (options.PerTargetTimeout is { } limit)
        {
            perTarget.CancelAfter(limit);
        }

        try
        {
            // Yield first so a transport that blocks synchronously cannot hold up the launch loop.
            await Task.Yield();
            // WaitAsync makes cancellation prompt even for a transport that ignores its token.
            var answer = await _transport.RunAsync(target, parameters, perTarget.Token).WaitAsync(perTarget.Token).ConfigureAwait(false);
            result = FleetCommandResult.FromAnswer(target, answer, clock.ElapsedMilliseconds);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && perTarget.IsCancellationRequested)
        {
            result = FleetCommandResult.Unstarted(target, CommandStatus.TimedOut, $"no answer within {options.PerTargetTimeout!.Value.TotalSeconds:0.#} s")
                with { DurationMs = clock.ElapsedMilliseconds };
        }
        catch (Exception ex)
        {
            result = FleetCommandResult.FromException(target, ex, clock.ElapsedMilliseconds);
        }

        // Report before releasing the slot, so the launch loop sees this error when it checks the limit.
        report(result);
        throttle.Release();
    }
}
