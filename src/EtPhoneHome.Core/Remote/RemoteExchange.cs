using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The exchange from an operator's machine, through the server's operator service. The server keeps the bucket's
/// credentials and signs; this side receives presigned, time-limited URLs and moves the bytes straight to and from the
/// bucket (they never pass through the server). Uploads are read once and hashed as they are read, as on the server host.
/// </summary>
public sealed class RemoteExchange(RemoteOperator op, HttpClient? http = null) : IExchangeOperations
{
    private static readonly HttpClient SharedHttp = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly HttpClient _http = http ?? SharedHttp;

    /// <summary>Parts in flight at once (each holds one part in memory).</summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>Ranges in flight at once on a download.</summary>
    public int DownloadParallelism { get; init; } = 4;

    /// <summary>The clients the server finds for <paramref name="names"/>; a name it does not know refuses (NOT_FOUND naming it).</summary>
    public async Task<IReadOnlyList<FleetTarget>> ResolveClientsAsync(IReadOnlyList<string> names, CancellationToken ct)
    {
        var lookup = await op.SearchAsync(new ClientQuery { Names = names.Distinct(StringComparer.OrdinalIgnoreCase).ToList() }, ct).ConfigureAwait(false);
        if (lookup.NotFound.Count > 0)
        {
            throw new UnknownClientsException(lookup.NotFound);
        }

        return [.. lookup.Clients.Select(c => new FleetTarget(c.Uuid, c.DisplayName, null))];
    }

    public IAsyncEnumerable<ExchangeDeliveryResult> DeliverAsync(IReadOnlyList<string> clients, string transferId, string remotePath, int throttleLimit, CancellationToken ct) =>
        DeliverAsync(new TargetSelection { Clients = clients }, transferId, remotePath, throttleLimit, null, ct);

    public async Task<IReadOnlyList<ExchangeObject>> ListAsync(string? sourceClient, string? destClient, CancellationToken ct) =>
        OperatorOperations.FromElement<List<ExchangeObject>>(await op.InvokeAsync(OperatorOperations.ExchangeList,
            new ExchangeListArgs { SourceClient = sourceClient, DestClient = destClient }, ct).ConfigureAwait(false));

    public async Task<ExchangeDeleteResult> DeleteAsync(string transferId, string sourceClient, CancellationToken ct) =>
        OperatorOperations.FromElement<ExchangeDeleteResult>(await op.InvokeAsync(OperatorOperations.ExchangeDelete,
            new ExchangeDeleteArgs { TransferId = transferId, SourceClient = sourceClient }, ct).ConfigureAwait(false));

    public async Task<ExchangeUploadUrl> CreateUploadUrlAsync(string sourceClient, string fileName, int expiresHours, CancellationToken ct) =>
        OperatorOperations.FromElement<ExchangeUploadUrl>(await op.InvokeAsync(OperatorOperations.ExchangeUploadUrl,
            new ExchangeUploadUrlArgs { SourceClient = sourceClient, FileName = fileName, ExpiresHours = expiresHours }, ct).ConfigureAwait(false));

    /// <summary>The bucket's lifecycle rules (a reader's); with <paramref name="apply"/> the transfers' rule is installed first (an admin's).</summary>
    public async Task<IReadOnlyList<ExchangeLifecycleRule>> LifecycleAsync(bool apply, CancellationToken ct) =>
        OperatorOperations.FromElement<List<ExchangeLifecycleRule>>(await op.InvokeAsync(apply ? OperatorOperations.ExchangeInitialize : OperatorOperations.ExchangeLifecycle,
            null, ct).ConfigureAwait(false));

    /// <summary>
    /// Uploads a local file (<c>exchange_upload</c>, recorded on the server). A file up to
    /// <see cref="ExchangeOperationLimits.HashFirstLimit"/> is hashed first (the server may sign its hash into one PUT);
    /// larger files are read once, hashed as their parts go. Any fault, Ctrl+C included, aborts the upload on the server.
    /// </summary>
    public async Task<ExchangeUploadResult> UploadAsync(string path, string? destClient, int expiresHours, IProgress<ExchangeProgress>? progress, CancellationToken ct)
    {
        ExchangeLimits.CheckExpiresHours(expiresHours);
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw new FileNotFoundException($"local_path '{path}' does not exist or is not a file", fullPath);
        }

        var fileName = TransferNames.CheckFileName(fullPath);
        var size = new FileInfo(fullPath).Length;
        byte[]? whole = null;
        string? sha = null;
        if (size <= ExchangeOperationLimits.HashFirstLimit)
        {
            whole = await File.ReadAllBytesAsync(fullPath, ct).ConfigureAwait(false);
            if (whole.LongLength != size)
            {
                throw new IOException($"'{path}' changed while it was read");
            }

            sha = Convert.ToHexString(SHA256.HashData(whole)).ToLowerInvariant();
        }

        var plan = OperatorOperations.FromElement<ExchangeUploadPlan>(await op.InvokeAsync(OperatorOperations.ExchangeUploadStart, new ExchangeUploadStartArgs
        {
            FileName = fileName,
            Size = size,
            Sha256 = sha,
            DestClient = destClient,
            ExpiresHours = expiresHours,
        }, ct).ConfigureAwait(false));
        (string Sha256, string[] ETags) sent;
        try
        {
            CheckPlan(plan, size);
            if (!plan.Multipart)
            {
                if (whole is null || sha is null)
                {
                    throw new InvalidOperationException("the server planned one PUT for a file it had no hash of");
                }

                var url = (await PartUrlsAsync(plan.TransferId, 1, 1, ct).ConfigureAwait(false))[0];
                progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, 0, size));
                await ExchangeClient.PutAsync(_http, url, plan.Headers, whole, whole.Length, $"upload of '{plan.Key}'", ct).ConfigureAwait(false);
                progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, size, size));
                sent = (sha, []);
            }
            else
            {
                var staged = new ExchangeStagedUpload(plan.TransferId, plan.Key, fileName, ExchangeLimits.ServerSource, destClient, size, default,
                    plan.PartSize, plan.PartCount, "remote", "", null, [], null);
                var urls = new PartUrlWindow(this, plan, ct);
                sent = await ExchangeClient.SendPartsAsync(fullPath, staged, urls.GetAsync, _http, Parallelism, progress, ct).ConfigureAwait(false);
            }
        }
        catch (Exception)
        {
            // The server aborts it and records why; if the connection is gone, the server aborts it when it notices.
            await AbortQuietlyAsync(plan.TransferId).ConfigureAwait(false);
            throw;
        }

        try
        {
            return OperatorOperations.FromElement<ExchangeUploadResult>(await op.InvokeAsync(OperatorOperations.ExchangeUploadComplete, new ExchangeUploadCompleteArgs
            {
                TransferId = plan.TransferId,
                Sha256 = sent.Sha256,
                ETags = sent.ETags,
            }, ct).ConfigureAwait(false));
        }
        catch (OperatorRemoteException)
        {
            // A completion the server refused and left open (a malformed one) is not retried here: ended, not left.
            await AbortQuietlyAsync(plan.TransferId).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Asks the server to abort an upload; best effort and bounded (the server aborts it anyway when the connection closes).</summary>
    private async Task AbortQuietlyAsync(string transferId)
    {
        try
        {
            using var abort = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            await op.InvokeAsync(OperatorOperations.ExchangeUploadAbort, new ExchangeUploadAbortArgs { TransferId = transferId }, abort.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperatorRemoteException or OperatorConnectionLostException or OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
    }

    /// <summary>
    /// Downloads a transfer, or a URL (the server checks its host against the exchange endpoint unless
    /// <paramref name="allowAnyHost"/>), into <paramref name="destination"/>: straight from the bucket, resumable,
    /// verified against the hash the bucket records and <paramref name="expectedSha256"/>.
    /// </summary>
    public async Task<ExchangeDownloadResult> DownloadAsync(string? transferId, Uri? url, string destination, bool allowAnyHost, string? expectedSha256,
        IProgress<ExchangeProgress>? progress, CancellationToken ct)
    {
        var ticket = OperatorOperations.FromElement<ExchangeDownloadTicket>(await op.InvokeAsync(OperatorOperations.ExchangeDownload, new ExchangeDownloadArgs
        {
            TransferId = transferId,
            Url = url?.AbsoluteUri,
            AllowAnyHost = allowAnyHost,
        }, ct).ConfigureAwait(false));
        // What the server says is used only for what it is asked: a URL of its own for a transfer id, a hash of the
        // transfer asked for. The name written here comes from this side (the id asked for, or the operator's own URL),
        // and a URL the operator gave is fetched as given.
        Uri source;
        string? id;
        if (url is null)
        {
            if (!string.Equals(ticket.TransferId, transferId, StringComparison.Ordinal))
            {
                throw new ProtocolException(ProtocolError.Malformed, "the server answered for another transfer than the one asked for");
            }

            source = ServerUrl(ticket.Url, "download");
            id = transferId;
        }
        else
        {
            source = url;
            id = TransferIdOf(url);
        }

        var sha = ticket.TransferId is not null && string.Equals(ticket.TransferId, id, StringComparison.Ordinal) && ticket.Sha256 is { Length: 64 } recorded ? recorded : null;
        if (expectedSha256 is not null && sha is not null && !string.Equals(expectedSha256, sha, StringComparison.OrdinalIgnoreCase))
        {
            throw new ChecksumMismatchException(expectedSha256.ToLowerInvariant(), sha, destination);
        }

        var target = ExchangeClient.DownloadTarget(destination, id, source);
        var partSize = ticket.PartSize is >= RangedDownloadOptions.MinPartSize and <= RangedDownloadOptions.MaxPartSize ? ticket.PartSize.Value : 16 * 1024 * 1024;
        return await ExchangeClient.FetchAsync(_http, source, target, id, expectedSha256 ?? sha, partSize, DownloadParallelism, progress, ct).ConfigureAwait(false);
    }

    /// <summary>Has <paramref name="client"/>'s agent upload <paramref name="remotePath"/> into the bucket, then downloads it here, verified against the agent's hash.</summary>
    public async Task<ExchangeDeliveryResult> CollectAsync(string client, string remotePath, string destination, CancellationToken ct)
    {
        var full = Path.GetFullPath(destination);
        if (!Directory.Exists(full) && Path.GetDirectoryName(full) is { } directory && !Directory.Exists(directory))
        {
            // The same answer as on the server host: the client's row with the local fault, before its agent uploads anything.
            var target = (await ResolveClientsAsync([client], ct).ConfigureAwait(false)) switch
            {
                [var one] => one,
                var many => throw new ArgumentException($"'{client}' names {many.Count} clients; name one"),
            };
            return new ExchangeDeliveryResult(target.Uuid, target.DisplayName, CommandStatus.Error, "", remotePath, null, null, false, null,
                $"cannot download to '{full}': the directory '{directory}' does not exist (create it first); nothing was collected");
        }

        var put = OperatorOperations.FromElement<ExchangeDeliveryResult>(await op.InvokeAsync(OperatorOperations.ExchangeCollect,
            new ExchangeCollectArgs { Client = client, RemotePath = remotePath }, ct).ConfigureAwait(false));
        if (put.Status != CommandStatus.Succeeded)
        {
            return put;
        }

        try
        {
            var download = await DownloadAsync(put.TransferId, null, destination, false, put.Sha256, null, ct).ConfigureAwait(false);
            return put with { Size = download.Size, Sha256 = download.Sha256, Verified = download.Verified, LocalPath = download.LocalPath };
        }
        catch (Exception ex) when (ex is ChecksumMismatchException or HttpTransferException or LocalFileException or IOException or ExchangeException)
        {
            return put with { Status = CommandStatus.Error, Error = ex.Message };
        }
    }

    /// <summary>Tells each target's agent to fetch a transfer into <paramref name="remotePath"/>; one result per target as each finishes.</summary>
    public async IAsyncEnumerable<ExchangeDeliveryResult> DeliverAsync(TargetSelection targets, string transferId, string remotePath, int throttleLimit,
        Action<IReadOnlyList<RemoteTarget>>? onTargets, [EnumeratorCancellation] CancellationToken ct)
    {
        var args = new ExchangeDeliverArgs { Targets = targets, TransferId = transferId, RemotePath = remotePath, ThrottleLimit = throttleLimit };
        await foreach (var delivery in op.DeliverExchangeAsync(args, onTargets, ct).ConfigureAwait(false))
        {
            yield return delivery;
        }
    }

    private async Task<IReadOnlyList<Uri>> PartUrlsAsync(string transferId, int first, int count, CancellationToken ct)
    {
        var urls = OperatorOperations.FromElement<ExchangeUploadPartUrls>(await op.InvokeAsync(OperatorOperations.ExchangeUploadParts,
            new ExchangeUploadPartsArgs { TransferId = transferId, First = first, Count = count }, ct).ConfigureAwait(false));
        if (urls.Urls.Count != count)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"the server sent {urls.Urls.Count} part URLs for {count} parts");
        }

        return urls.Urls.Select(u => ServerUrl(u, "part upload")).ToList();
    }

    /// <summary>The transfer id a path-style URL of a transfer ends with (<c>…/transfers/&lt;source&gt;/&lt;id&gt;</c>), or null.</summary>
    private static string? TransferIdOf(Uri url)
    {
        var segments = Uri.UnescapeDataString(url.AbsolutePath).Split('/');
        if (segments.Length < 3 || segments[^3] != ExchangeLimits.Prefix.TrimEnd('/'))
        {
            return null;
        }

        try
        {
            return TransferNames.SourceOf(segments[^1]) == segments[^2] && TransferNames.FileNameOf(segments[^1]) is not null ? segments[^1] : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>A URL the server handed out: absolute http(s) only (the bytes of a file go nowhere else).</summary>
    private static Uri ServerUrl(string text, string what) =>
        Uri.TryCreate(text, UriKind.Absolute, out var url) && url.Scheme is "https" or "http"
            ? url
            : throw new ProtocolException(ProtocolError.Malformed, $"the server's {what} URL is not an absolute http(s) URL");

    /// <summary>Largest part a server may plan (each part in flight is held in memory here).</summary>
    public const int MaxPlannedPartSize = 256 * 1024 * 1024;

    private static void CheckPlan(ExchangeUploadPlan plan, long size)
    {
        var fits = plan.Multipart
            ? plan.PartSize is >= 5 * 1024 * 1024 and <= MaxPlannedPartSize && plan.PartCount is >= 1 and <= ExchangeClient.MaxParts && (long)plan.PartSize * plan.PartCount >= size
                && (long)plan.PartSize * (plan.PartCount - 1) < Math.Max(size, 1)
            : plan.PartCount == 1 && plan.PartSize == size;
        // Only the object's metadata and the create-only condition may be asked of a PUT (never an authorization or a host).
        var headersFit = plan.Headers.All(h => (h.Key.StartsWith("x-amz-meta-", StringComparison.Ordinal) || h.Key == "if-none-match")
            && h.Key.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_') && h.Value.All(c => c is >= ' ' and <= '~'));
        if (!fits || !headersFit || string.IsNullOrEmpty(plan.TransferId))
        {
            throw new ProtocolException(ProtocolError.Malformed, $"the server's upload plan does not fit a file of {size} bytes");
        }
    }

    /// <summary>Part URLs fetched from the server a window at a time, as the parts need them.</summary>
    private sealed class PartUrlWindow(RemoteExchange owner, ExchangeUploadPlan plan, CancellationToken ct)
    {
        private readonly SemaphoreSlim _gate = new(1, 1);
        private readonly Dictionary<int, Uri> _urls = [];

        public async Task<Uri> GetAsync(int number)
        {
            await _gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                if (!_urls.TryGetValue(number, out var url))
                {
                    var count = Math.Min(ExchangeOperationLimits.MaxPartUrls, plan.PartCount - number + 1);
                    var fetched = await owner.PartUrlsAsync(plan.TransferId, number, count, ct).ConfigureAwait(false);
                    for (var i = 0; i < fetched.Count; i++)
                    {
                        _urls[number + i] = fetched[i];
                    }

                    url = _urls[number];
                }

                _urls.Remove(number);
                return url;
            }
            finally
            {
                _gate.Release();
            }
        }
    }
}
