using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// The result of handing a transfer to one client (server → client), or of collecting a file from it
/// (client → server). Every target gets one; an offline client is answered at once with
/// <see cref="CommandStatus.Offline"/> and the transfer stays in the bucket until the lifecycle rule removes it.
/// </summary>
public sealed record ExchangeDeliveryResult(
    string Uuid,
    string DisplayName,
    CommandStatus Status,
    string TransferId,
    string RemotePath,
    long? Size,
    string? Sha256,
    bool Verified,
    string? LocalPath,
    string? Error);

/// <summary>
/// Transfers that involve agents. Server → client: the file is uploaded once, then each agent is told
/// (<c>exchange_fetch</c>) to download a presigned GET URL into a path inside its own path policy, verifying
/// SHA-256. Client → server: the agent uploads a file (<c>exchange_put</c>) to a presigned PUT URL and answers
/// its SHA-256; the server then downloads the object and verifies it against that value.
/// </summary>
public sealed class ExchangeDelivery(ExchangeClient exchange)
{
    /// <summary>How long the tunnel handshake may take.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long one agent may take to move the bytes.</summary>
    public TimeSpan TransferTimeout { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Where tunnel ports listen.</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Hours the URLs handed to agents live (1–12).</summary>
    public int UrlHours { get; init; } = 2;

    public ExchangeClient Exchange { get; } = exchange ?? throw new ArgumentNullException(nameof(exchange));

    /// <summary>
    /// Tells every target to fetch an uploaded transfer into <paramref name="remotePath"/>; one result per target,
    /// streamed as each finishes, at most <paramref name="throttleLimit"/> at a time.
    /// </summary>
    public async IAsyncEnumerable<ExchangeDeliveryResult> DeliverAsync(
        IReadOnlyList<FleetTarget> targets,
        string transferId,
        string remotePath,
        int throttleLimit = 16,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        ArgumentException.ThrowIfNullOrWhiteSpace(remotePath);
        ArgumentOutOfRangeException.ThrowIfLessThan(throttleLimit, 1);
        var info = await Exchange.GetTransferInfoAsync(transferId, ct).ConfigureAwait(false)
            ?? throw new ExchangeException($"transfer '{transferId}' does not exist (expired or deleted)", "NoSuchKey");
        var url = Exchange.CreateDownloadUrl(transferId, UrlHours);
        var parameters = new ExchangeFetchParams { Url = url.AbsoluteUri, Path = remotePath, Sha256 = info.Sha256, Size = info.Size };

        var channel = Channel.CreateUnbounded<ExchangeDeliveryResult>(new UnboundedChannelOptions { SingleReader = true });
        var producer = Task.Run(async () =>
        {
            try
            {
                await Parallel.ForEachAsync(targets, new ParallelOptions { MaxDegreeOfParallelism = throttleLimit, CancellationToken = CancellationToken.None }, async (target, _) =>
                    channel.Writer.TryWrite(await FetchOneAsync(target, transferId, parameters, ct).ConfigureAwait(false))).ConfigureAwait(false);
            }
            finally
            {
                channel.Writer.TryComplete();
            }
        }, CancellationToken.None);

        await foreach (var result in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
        {
            yield return result;
        }

        await producer.ConfigureAwait(false);
    }

    private async Task<ExchangeDeliveryResult> FetchOneAsync(FleetTarget target, string transferId, ExchangeFetchParams parameters, CancellationToken ct)
    {
        ExchangeDeliveryResult Result(CommandStatus status, string? error, ExchangeFetchResult? fetched = null) =>
            new(target.Uuid, target.DisplayName, status, transferId, parameters.Path, fetched?.Size, fetched?.Sha256, fetched?.Verified ?? false, null, error);

        if (target.DeniedReason is { } reason)
        {
            return Result(CommandStatus.Denied, reason);
        }

        if (target.Session is null)
        {
            return Result(CommandStatus.Offline, $"the client is offline; transfer {transferId} waits in the bucket until it expires");
        }

        using var lease = Exchange.Guard?.Begin(target.Uuid, OperationNames.ExchangeDownload, $"agent fetch {transferId} → {parameters.Path}");
        try
        {
            var fetched = await InvokeAsync(target, ExchangeMethods.Fetch, parameters, ExchangeJson.Default.ExchangeFetchParams, ExchangeJson.Default.ExchangeFetchResult, ct).ConfigureAwait(false);
            if (fetched.Size < 0 || !IsSha256(fetched.Sha256))
            {
                // What an agent claims reaches the history, webhooks and terminals only once it has the shape of an answer.
                throw new ProtocolException(ProtocolError.Malformed, "the agent's answer has no valid size and SHA-256");
            }

            lease?.Complete(OperationStatus.Succeeded, $"{fetched.Size} bytes{(fetched.Verified ? ", sha256 verified" : "")}");
            return Result(CommandStatus.Succeeded, null, fetched);
        }
        catch (Exception ex) when (Classify(ex, ct) is { } status)
        {
            lease?.Complete((OperationStatus)(int)status, ex.Message);
            return Result(status, ex.Message);
        }
    }

    /// <summary>
    /// Has the agent upload <paramref name="remotePath"/> to a presigned PUT URL, then downloads the object to
    /// <paramref name="destination"/> and verifies it against the SHA-256 the agent computed while reading.
    /// </summary>
    public async Task<ExchangeDeliveryResult> CollectAsync(FleetTarget target, string remotePath, string destination, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrWhiteSpace(remotePath);
        if (target.DeniedReason is null && target.Session is not null)
        {
            // A local destination that cannot exist is known before the agent uploads anything.
            var full = Path.GetFullPath(destination);
            if (!Directory.Exists(full) && Path.GetDirectoryName(full) is { } directory && !Directory.Exists(directory))
            {
                return new(target.Uuid, target.DisplayName, CommandStatus.Error, "", remotePath, null, null, false, null,
                    $"cannot download to '{full}': the directory '{directory}' does not exist (create it first); nothing was collected");
            }
        }

        var put = await CollectToBucketAsync(target, remotePath, ct).ConfigureAwait(false);
        if (put.Status != CommandStatus.Succeeded)
        {
            return put;
        }

        try
        {
            var download = await Exchange.DownloadAsync(put.TransferId, destination, put.Sha256, null, ct).ConfigureAwait(false);
            return put with { Size = download.Size, Sha256 = download.Sha256, Verified = download.Verified, LocalPath = download.LocalPath };
        }
        catch (Exception ex) when (ex is ChecksumMismatchException or HttpTransferException or LocalFileException or IOException or ExchangeException)
        {
            return put with { Status = CommandStatus.Error, Error = ex.Message };
        }
    }

    /// <summary>
    /// Has the agent upload <paramref name="remotePath"/> to a presigned PUT URL of a new transfer; the result names the
    /// transfer and the size and SHA-256 the agent computed while reading (what a download of it is verified against).
    /// </summary>
    public async Task<ExchangeDeliveryResult> CollectToBucketAsync(FleetTarget target, string remotePath, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrWhiteSpace(remotePath);
        var upload = Exchange.CreateUploadUrl(target.Uuid, Path.GetFileName(remotePath.Replace('\\', '/')), UrlHours);
        ExchangeDeliveryResult Result(CommandStatus status, string? error, long? size = null, string? sha = null) =>
            new(target.Uuid, target.DisplayName, status, upload.TransferId, remotePath, size, sha, false, null, error);

        if (target.DeniedReason is { } reason)
        {
            return Result(CommandStatus.Denied, reason);
        }

        if (target.Session is null)
        {
            return Result(CommandStatus.Offline, "the client is offline");
        }

        using var lease = Exchange.Guard?.Begin(target.Uuid, OperationNames.ExchangeUpload, $"agent put {remotePath} → {upload.Key}");
        try
        {
            var put = await InvokeAsync(target, ExchangeMethods.Put, new ExchangePutParams { Path = remotePath, Url = upload.UploadUrl.AbsoluteUri },
                ExchangeJson.Default.ExchangePutParams, ExchangeJson.Default.ExchangePutResult, ct).ConfigureAwait(false);
            if (put.Size < 0 || !IsSha256(put.Sha256))
            {
                throw new ProtocolException(ProtocolError.Malformed, "the agent's answer has no valid size and SHA-256");
            }

            lease?.Complete(OperationStatus.Succeeded, $"{put.Size} bytes, sha256 {put.Sha256[..12]}…");
            return Result(CommandStatus.Succeeded, null, put.Size, put.Sha256);
        }
        catch (Exception ex) when (Classify(ex, ct) is { } status)
        {
            lease?.Complete((OperationStatus)(int)status, ex.Message);
            return Result(status, ex.Message);
        }
    }

    private async Task<TResult> InvokeAsync<TParams, TResult>(FleetTarget target, string method, TParams parameters,
        System.Text.Json.Serialization.Metadata.JsonTypeInfo<TParams> paramsType, System.Text.Json.Serialization.Metadata.JsonTypeInfo<TResult> resultType, CancellationToken ct)
        where TResult : class
    {
        var session = target.Session!;
        using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
        wait.CancelAfter(TransferTimeout);
        try
        {
            await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, wait.Token, target.Policy).ConfigureAwait(false);
            return await tunnel.InvokeAsync(method, parameters, paramsType, resultType, wait.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested && wait.IsCancellationRequested)
        {
            throw new TimeoutException($"no answer within {TransferTimeout.TotalMinutes:0} min");
        }
    }

    private static bool IsSha256(string? value) => value is { Length: 64 } && value.All(char.IsAsciiHexDigit);

    private static CommandStatus? Classify(Exception ex, CancellationToken ct) => ex switch
    {
        RpcException { Code: RpcErrorCodes.PathDenied } => CommandStatus.Denied,
        RpcException => CommandStatus.Failed,
        TimeoutException => CommandStatus.TimedOut,
        OperationCanceledException when ct.IsCancellationRequested => CommandStatus.Error,
        ProtocolException or IOException or System.Net.Sockets.SocketException => CommandStatus.Error,
        _ => null,
    };

}
