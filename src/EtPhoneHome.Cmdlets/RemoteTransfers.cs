using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>
/// Transfers through the server, one client per operator-service call, fanned out here: at most a throttle's worth at
/// once, one outcome per target as each ends, a failing target never stopping the others. A refusal for the operator's
/// role is not a target's fault: it ends the whole run (the cmdlet reports it once, naming the role).
/// </summary>
internal static class RemoteTransfers
{
    public static async IAsyncEnumerable<FleetFileOutcome<FileTransferResult>> RunAsync(IReadOnlyList<FleetTarget> targets, int throttleLimit,
        Func<FleetTarget, CancellationToken, Task<FileTransferResult>> transfer, [EnumeratorCancellation] CancellationToken ct)
    {
        var results = Channel.CreateUnbounded<FleetFileOutcome<FileTransferResult>>();
        using var gate = new SemaphoreSlim(Math.Max(1, throttleLimit));
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        OperatorRemoteException? forbidden = null;
        var running = targets.Select(async target =>
        {
            var clock = System.Diagnostics.Stopwatch.StartNew();
            FleetFileOutcome<FileTransferResult> outcome;
            try
            {
                await gate.WaitAsync(stop.Token).ConfigureAwait(false);
                try
                {
                    var value = await transfer(target, stop.Token).ConfigureAwait(false);
                    outcome = new(target, CommandStatus.Succeeded, value with { Uuid = target.Uuid, DisplayName = target.DisplayName }, null, clock.ElapsedMilliseconds);
                }
                finally
                {
                    gate.Release();
                }
            }
            catch (OperatorRemoteException ex) when (ex.Code == OperatorErrorCodes.Forbidden)
            {
                Interlocked.CompareExchange(ref forbidden, ex, null);
                await stop.CancelAsync().ConfigureAwait(false);
                return;
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                outcome = Failed(target, ex, clock.ElapsedMilliseconds);
            }

            await results.Writer.WriteAsync(outcome, CancellationToken.None).ConfigureAwait(false);
        }).ToList();
        var all = Task.WhenAll(running).ContinueWith(t => results.Writer.TryComplete(t.Exception?.GetBaseException()), CancellationToken.None,
            TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

        await foreach (var outcome in results.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            yield return outcome;
        }

        await all.ConfigureAwait(false);
        if (forbidden is not null)
        {
            throw forbidden;
        }

        ct.ThrowIfCancellationRequested();
    }

    /// <summary>A target's failure as the local transfers classify theirs.</summary>
    internal static FleetFileOutcome<FileTransferResult> Failed(FleetTarget target, Exception ex, long durationMs)
    {
        var (status, failure) = ex switch
        {
            OperatorRemoteException { Code: OperatorErrorCodes.NotFound } => (CommandStatus.Error, FailureKind.NotFound),
            OperatorRemoteException { Code: OperatorErrorCodes.InvalidArgument } => (CommandStatus.Error, FailureKind.Invalid),
            OperatorRemoteException { Code: OperatorErrorCodes.RateLimited } => (CommandStatus.RateLimited, FailureKind.RateLimited),
            OperatorRemoteException { Code: OperatorErrorCodes.Cancelled } => (CommandStatus.Error, FailureKind.None),
            OperatorRemoteException => (CommandStatus.Error, FailureKind.Unreachable),
            RemoteConnectionException => (CommandStatus.Error, FailureKind.Unreachable),
            OperationCanceledException => (CommandStatus.Error, FailureKind.TimedOut),
            IOException or UnauthorizedAccessException => (CommandStatus.Error, FailureKind.Invalid),
            _ when ex.Message.Contains("checksum", StringComparison.OrdinalIgnoreCase) || ex.Message.Contains("SHA-256", StringComparison.OrdinalIgnoreCase)
                => (CommandStatus.Error, FailureKind.ChecksumMismatch),
            _ => (CommandStatus.Error, FailureKind.None),
        };
        return new(target, status, null, ex.Message, durationMs, failure);
    }
}
