using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Runs one command on one online target. Faults are thrown; the executor classifies them.</summary>
public interface ICommandTransport
{
    Task<RunCommandResult> RunAsync(FleetTarget target, RunCommandParams parameters, CancellationToken ct);
}

/// <summary>
/// The default transport: one tunnel connection per command (sshd carries each as its own channel, so a
/// slow command never blocks another), mutual handshake, then <c>run_command</c>.
/// </summary>
public sealed class TunnelCommandTransport : ICommandTransport
{
    /// <summary>How long the handshake may take before the target is reported unreachable.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Extra wait after the command's own timeout: the agent needs time to kill the process tree and answer,
    /// so the operator never cuts a command shorter than the timeout it asked for.
    /// </summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Where tunnel ports listen; sshd binds forwards on the gateway's loopback.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Records each command in the history (and applies rate limits); null runs unrecorded (tests).</summary>
    public OperationGuard? Guard { get; init; }

    public async Task<RunCommandResult> RunAsync(FleetTarget target, RunCommandParams parameters, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(parameters);
        var session = target.Session ?? throw new InvalidOperationException($"{target.Describe()} has no online session");
        var commandTimeout = TimeSpan.FromSeconds(parameters.TimeoutS ?? CommandLimits.DefaultTimeoutSeconds);
        var deadline = commandTimeout + Grace;

        // Recorded without blocking a thread: a fan-out's starts and ends share the registry's transactions.
        using var lease = Guard is null ? null : await Guard.BeginAsync(target.Uuid, OperationNames.RunCommand, parameters.Cmd).ConfigureAwait(false);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(deadline);
        try
        {
            await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, wait.Token, target.Policy).ConfigureAwait(false);
            var result = await tunnel.InvokeAsync(RpcMethods.RunCommand, parameters, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, wait.Token).ConfigureAwait(false);
            await lease.RecordAsync(result.TimedOut ? OperationStatus.TimedOut : result.ExitCode == 0 ? OperationStatus.Succeeded : OperationStatus.Failed, $"exit {result.ExitCode}", result.TimedOut ? null : result.ExitCode).ConfigureAwait(false);
            return result;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && wait.IsCancellationRequested)
        {
            await lease.RecordAsync(OperationStatus.TimedOut, "no answer").ConfigureAwait(false);
            throw new TimeoutException($"no answer within {deadline.TotalSeconds:0} s (command timeout {commandTimeout.TotalSeconds:0} s plus {Grace.TotalSeconds:0} s grace)");
        }
        catch (RpcException ex)
        {
            await lease.RecordAsync(ex.Code == RpcErrorCodes.PathDenied ? OperationStatus.Denied : OperationStatus.Error, ex.CodeName).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException)
        {
            await lease.RecordAsync(OperationStatus.Cancelled).ConfigureAwait(false);
            throw;
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or System.Net.Sockets.SocketException)
        {
            // The tunnel refused, closed or broke the protocol: recorded here (not by the lease's Dispose, which writes
            // alone and blocks a thread), so a fan-out to many unreachable targets still shares transactions.
            await lease.RecordAsync(OperationStatus.Error, "unreachable").ConfigureAwait(false);
            throw;
        }
    }
}
