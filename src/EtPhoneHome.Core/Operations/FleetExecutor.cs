using System.Diagnostics;
using System.Runtime.CompilerServices;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// Fan-out of one command over many targets (the rules of <see cref="FleetFanOut"/>).
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

        var plan = new FanOutPlan<FleetCommandResult>
        {
            Run = (target, token) => RunOneAsync(target, parameters, options, token),
            Denied = (target, reason) => FleetCommandResult.Unstarted(target, CommandStatus.Denied, reason),
            Offline = target => FleetCommandResult.Unstarted(target, CommandStatus.Offline, "the client is offline"),
            Skipped = (target, reason) => FleetCommandResult.Unstarted(target, CommandStatus.Skipped, reason),
            Cancelled = (target, ms) => FleetCommandResult.FromException(target, new OperationCanceledException(), ms),
            IsError = result => result.Status is not CommandStatus.Succeeded and not CommandStatus.Skipped,
            ErrorLimit = options.MaxErrors?.Threshold(targets.Count),
            ErrorLimitText = options.MaxErrors?.ToString(),
        };
        await foreach (var result in FleetFanOut.RunAsync(targets, plan, options.ThrottleLimit, ct).ConfigureAwait(false))
        {
            yield return result;
        }
    }

    private async Task<FleetCommandResult> RunOneAsync(FleetTarget target, RunCommandParams parameters, FleetOptions options, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var perTarget = CancellationTokenSource.CreateLinkedTokenSource(ct);
        if (options.PerTargetTimeout is { } limit)
        {
            perTarget.CancelAfter(limit);
        }

        try
        {
            // WaitAsync makes cancellation prompt even for a transport that ignores its token.
            var answer = await _transport.RunAsync(target, parameters, perTarget.Token).WaitAsync(perTarget.Token).ConfigureAwait(false);
            return FleetCommandResult.FromAnswer(target, answer, clock.ElapsedMilliseconds);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && perTarget.IsCancellationRequested)
        {
            return FleetCommandResult.Unstarted(target, CommandStatus.TimedOut, $"no answer within {options.PerTargetTimeout!.Value.TotalSeconds:0.#} s")
                with { DurationMs = clock.ElapsedMilliseconds };
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
        {
            return FleetCommandResult.FromException(target, ex, clock.ElapsedMilliseconds);
        }
    }
}
