using System.Text.Json.Serialization.Metadata;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Files;

/// <summary>
/// read_file, write_file and list_files on one client: one tunnel connection per request, every request recorded
/// through the <see cref="OperationGuard"/> (operations <c>read_file</c>, <c>write_file</c>, <c>list_files</c>).
/// </summary>
public sealed class RemoteFileOperations
{
    /// <summary>Records each request in the history; null runs unrecorded (tests).</summary>
    public OperationGuard? Guard { get; init; }

    public string Host { get; init; } = "127.0.0.1";

    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Longest wait for one answer (a 10 MiB read through a slow tunnel needs a while).</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(120);

    public Task<ReadFileResult> ReadAsync(FleetTarget target, ReadFileParams parameters, CancellationToken ct)
        => InvokeAsync(target, OperationNames.ReadFile, parameters.Path, FileMethods.ReadFile, parameters, FileJson.Default.ReadFileParams, FileJson.Default.ReadFileResult,
            r => $"{r.Size} bytes{(r.Truncated ? ", truncated" : "")}", ct);

    public Task<WriteFileResult> WriteAsync(FleetTarget target, WriteFileParams parameters, CancellationToken ct)
        => InvokeAsync(target, OperationNames.WriteFile, parameters.Path, FileMethods.WriteFile, parameters, FileJson.Default.WriteFileParams, FileJson.Default.WriteFileResult,
            r => $"{r.Size} bytes, sha256 {r.Sha256[..12]}…", ct);

    public Task<ListFilesResult> ListAsync(FleetTarget target, ListFilesParams parameters, CancellationToken ct)
        => InvokeAsync(target, OperationNames.ListFiles, parameters.Path, FileMethods.ListFiles, parameters, FileJson.Default.ListFilesParams, FileJson.Default.ListFilesResult,
            r => $"{r.Entries.Length} entries{(r.Truncated ? ", truncated" : "")}", ct);

    private async Task<TResult> InvokeAsync<TParams, TResult>(
        FleetTarget target, string operation, string detail, string method, TParams parameters,
        JsonTypeInfo<TParams> paramsType, JsonTypeInfo<TResult> resultType, Func<TResult, string> outcome, CancellationToken ct)
        where TResult : class
    {
        ArgumentNullException.ThrowIfNull(target);
        var session = FileTransferClient.SessionOf(target);
        using var lease = Guard is null ? null : await Guard.BeginAsync(target.Uuid, operation, detail).ConfigureAwait(false);
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(RequestTimeout);
        try
        {
            await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, wait.Token, target.Policy).ConfigureAwait(false);
            var result = await tunnel.InvokeAsync(method, parameters, paramsType, resultType, wait.Token).ConfigureAwait(false);
            await lease.RecordAsync(OperationStatus.Succeeded, outcome(result)).ConfigureAwait(false);
            return result;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && wait.IsCancellationRequested)
        {
            await lease.RecordAsync(OperationStatus.TimedOut, "no answer").ConfigureAwait(false);
            throw new TimeoutException($"no answer within {RequestTimeout.TotalSeconds:0} s");
        }
        catch (RpcException ex)
        {
            await lease.RecordAsync(ex.Code == RpcErrorCodes.PathDenied ? OperationStatus.Denied : OperationStatus.Error, $"{ex.CodeName}: {ex.Message}").ConfigureAwait(false);
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
