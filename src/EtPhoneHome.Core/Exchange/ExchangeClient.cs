using System.Buffers;
using OperationStatus = EtPhoneHome.Core.Registry.OperationStatus;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Exchange;

/// <summary>Tuning of <see cref="ExchangeClient"/>; the defaults suit R2.</summary>
public sealed record ExchangeOptions
{
    /// <summary>Part size of multipart uploads (S3's minimum is 5 MiB).</summary>
    public int PartSize { get; init; } = 16 * 1024 * 1024;

    /// <summary>Files larger than this go up in parts; smaller ones in one PUT.</summary>
    public long MultipartThreshold { get; init; } = 16 * 1024 * 1024;

    /// <summary>Parts in flight at once (each holds one part in memory).</summary>
    public int Parallelism { get; init; } = 4;

    /// <summary>Keys per ListObjectsV2 page (S3's maximum is 1,000).</summary>
    public int ListPageSize { get; init; } = 1000;

    /// <summary>HEAD requests in flight at once while a listing reads metadata.</summary>
    public int MetadataParallelism { get; init; } = 8;

    /// <summary>
    /// Ranges in flight at once when a download is larger than one part (1 = one GET). The range size is the
    /// upload's part size when its manifest records one, else <see cref="PartSize"/>; each range in flight holds
    /// one buffer of that size.
    /// </summary>
    public int DownloadParallelism { get; init; } = 4;

    /// <summary>Hours a presigned URL used internally (a download by transfer id) lives.</summary>
    public int InternalUrlHours { get; init; } = 1;
}

/// <summary>
/// The exchange: transfers through an S3-compatible bucket (Cloudflare R2) with presigned, time-limited URLs.
/// Every upload, download, delete and listing is recorded in the history through the <see cref="OperationGuard"/>
/// (operations <c>exchange_upload</c>, <c>exchange_download</c>, <c>exchange_delete</c>, <c>exchange_list</c>).
/// AWS SDK types stay inside: callers see only the exchange's own records.
/// </summary>
public sealed partial class ExchangeClient : IDisposable
{
    private static readonly HttpClient SharedHttp = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    // Transfers sign their own requests (S3Presigner); the SDK serves only listing, deletion and lifecycle, and is built
    // on first use, so a process that uploads, downloads or presigns never pays for it.
    private readonly Lazy<AmazonS3Client> _sdk;
    private readonly S3Presigner _presigner;
    private readonly HttpClient _http;
    private readonly TimeProvider _time;

    public ExchangeClient(ExchangeSettings settings, OperationGuard? guard = null, ExchangeOptions? options = null, HttpClient? http = null, TimeProvider? time = null)
    {
        Settings = settings ?? throw new ArgumentNullException(nameof(settings));
        Guard = guard;
        Options = options ?? new ExchangeOptions();
        if (Options.PartSize < 5 * 1024 * 1024)
        {
            throw new ArgumentOutOfRangeException(nameof(options), Options.PartSize, "PartSize must be at least 5 MiB (the S3 minimum)");
        }

        _http = http ?? SharedHttp;
        _time = time ?? TimeProvider.System;
        _sdk = new Lazy<AmazonS3Client>(() => CreateSdk(settings));
        _presigner = new S3Presigner(settings.Endpoint, settings.Bucket, settings.AccessKey, settings.SecretKey, settings.Region);
    }

    private static AmazonS3Client CreateSdk(ExchangeSettings settings)
    {
        var checksums = settings.Checksums == ExchangeChecksumMode.WhenRequired;
        var config = new AmazonS3Config
        {
            ServiceURL = settings.Endpoint.GetLeftPart(UriPartial.Authority),
            ForcePathStyle = true,
            AuthenticationRegion = settings.Region,
            UseHttp = settings.Endpoint.Scheme == Uri.UriSchemeHttp,
            RequestChecksumCalculation = checksums ? RequestChecksumCalculation.WHEN_REQUIRED : RequestChecksumCalculation.WHEN_SUPPORTED,
            ResponseChecksumValidation = checksums ? ResponseChecksumValidation.WHEN_REQUIRED : ResponseChecksumValidation.WHEN_SUPPORTED,
        };
        return new AmazonS3Client(new BasicAWSCredentials(settings.AccessKey, settings.SecretKey), config);
    }

    /// <summary>A client from the ETPHONEHOME_R2_* environment (throws <see cref="ExchangeNotConfiguredException"/>).</summary>
    public static ExchangeClient FromEnvironment(OperationGuard? guard = null, ExchangeOptions? options = null) =>
        new(ExchangeSettings.FromEnvironment(), guard, options);

    public ExchangeSettings Settings { get; }

    private AmazonS3Client Sdk => _sdk.Value;

    public OperationGuard? Guard { get; }

    public ExchangeOptions Options { get; }

    // ================================================================ upload

    /// <summary>
    /// Uploads a file (<c>exchange_upload</c>). <paramref name="expiresHours"/> (1–12) is checked before anything
    /// is read or sent. The file is read once. Up to the multipart threshold it is read into memory, hashed there and
    /// sent in one PUT with its SHA-256 in the object metadata. Larger files go up in parts: the whole-file SHA-256 is
    /// computed in order as the parts are read (the only hash of the bytes), each part is one PUT to a presigned URL, and
    /// the hash is written to a manifest (<see cref="ExchangeManifest"/>) before the upload is completed, because
    /// metadata is sent when a multipart upload starts. A failure aborts the upload and removes the manifest.
    /// </summary>
    public async Task<ExchangeUploadResult> UploadAsync(
        string path,
        string? destClient = null,
        int expiresHours = ExchangeLimits.DefaultExpiresHours,
        string sourceClient = ExchangeLimits.ServerSource,
        IProgress<ExchangeProgress>? progress = null,
        CancellationToken ct = default)
    {
        ExchangeLimits.CheckExpiresHours(expiresHours);
        TransferNames.CheckSource(sourceClient);
        if (destClient is not null)
        {
            TransferNames.CheckSource(destClient, "dest_client");
        }

        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
        {
            throw new FileNotFoundException($"local_path '{path}' does not exist or is not a file", fullPath);
        }

        TransferNames.CheckFileName(fullPath); // before anything is read
        var size = new FileInfo(fullPath).Length;
        if (size <= Options.MultipartThreshold)
        {
            // A single PUT holds the whole file in memory anyway: it is read once and hashed from memory, and its hash is
            // signed into the URL as metadata (the payload itself is not hashed a second time for the signature).
            var whole = new byte[size];
            var sha = (await ReadPartAsync(fullPath, 0, whole, null, ct).ConfigureAwait(false))!;
            var single = await StartStagedUploadAsync(Path.GetFileName(fullPath), size, sha, destClient, expiresHours, sourceClient, ct).ConfigureAwait(false);
            return await SendStagedAsync(single, async token =>
            {
                progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, 0, size));
                await PutAsync(_http, PresignStagedPart(single, 1), single.Headers, whole, whole.Length, $"upload of '{single.Key}'", token).ConfigureAwait(false);
                progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, size, size));
                return (sha, []);
            }, ct).ConfigureAwait(false);
        }

        var staged = await StartStagedUploadAsync(Path.GetFileName(fullPath), size, null, destClient, expiresHours, sourceClient, ct).ConfigureAwait(false);
        return await SendStagedAsync(staged, async token =>
            await SendPartsAsync(fullPath, staged, number => Task.FromResult(PresignStagedPart(staged, number)), _http, Options.Parallelism, progress, token).ConfigureAwait(false),
            ct).ConfigureAwait(false);
    }

    /// <summary>Sends a started upload's bytes with <paramref name="send"/>, then completes it; any fault aborts it.</summary>
    private async Task<ExchangeUploadResult> SendStagedAsync(ExchangeStagedUpload staged, Func<CancellationToken, Task<(string Sha256, string[] ETags)>> send, CancellationToken ct)
    {
        (string Sha256, string[] ETags) sent;
        try
        {
            sent = await send(ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            await AbortStagedUploadAsync(staged, ex, ct.IsCancellationRequested).ConfigureAwait(false);
            throw;
        }

        try
        {
            return await CompleteStagedUploadAsync(staged, sent.Sha256, sent.ETags, verifyArrival: false, ct).ConfigureAwait(false);
        }
        catch (ArgumentException ex)
        {
            // A completion refused before it started (nobody here will retry it): ended, not left open.
            await AbortStagedUploadAsync(staged, ex, cancelled: false).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Reads the file once, in order, hashing as it goes, and sends its parts in parallel (at most
    /// <paramref name="parallelism"/>, each holding one part in memory) to the URLs <paramref name="partUrl"/> gives;
    /// returns the whole file's SHA-256 and the parts' ETags. The first fault stops the rest and is thrown.
    /// </summary>
    internal static async Task<(string Sha256, string[] ETags)> SendPartsAsync(string path, ExchangeStagedUpload staged, Func<int, Task<Uri>> partUrl,
        HttpClient http, int parallelism, IProgress<ExchangeProgress>? progress, CancellationToken ct)
    {
        var size = staged.Size;
        var partCount = staged.PartCount;
        var etags = new string[partCount];
        long sent = 0;
        using var slots = new SemaphoreSlim(parallelism, parallelism);
        using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var running = new List<Task>(partCount);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, 0, size));
        try
        {
            for (var part = 0; part < partCount; part++)
            {
                // Parts are read in order (hashing as they are read) and sent in parallel.
                await slots.WaitAsync(failed.Token).ConfigureAwait(false);
                var offset = (long)part * staged.PartSize;
                var length = (int)Math.Min(staged.PartSize, size - offset);
                var buffer = ArrayPool<byte>.Shared.Rent(length);
                try
                {
                    await ReadPartAsync(path, offset, buffer.AsMemory(0, length), hash, failed.Token).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    slots.Release();
                    throw;
                }

                var number = part + 1;
                running.Add(Task.Run(async () =>
                {
                    try
                    {
                        // One PUT of the part to a presigned UploadPart URL with plain HttpClient: the bytes are hashed
                        // once (the whole-file SHA-256 above), not a second time for a signed payload hash, and no SDK
                        // request pipeline runs per part. The whole-file SHA-256 is verified by every download.
                        var url = await partUrl(number).ConfigureAwait(false);
                        etags[number - 1] = await PutAsync(http, url, [], buffer, length, $"upload of part {number} of '{staged.Key}'", failed.Token).ConfigureAwait(false)
                            ?? throw new ExchangeException($"upload of part {number} of '{staged.Key}' failed: the endpoint returned no ETag", null);
                        progress?.Report(new ExchangeProgress(ExchangePhase.Uploading, Interlocked.Add(ref sent, length), size));
                    }
                    catch
                    {
                        await failed.CancelAsync().ConfigureAwait(false);
                        throw;
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        slots.Release();
                    }
                }, CancellationToken.None));
            }
        }
        catch (OperationCanceledException) when (failed.IsCancellationRequested && !ct.IsCancellationRequested)
        {
            // A part failed and stopped the loop: that part's fault is rethrown below, not this cancellation.
        }
        finally
        {
            try
            {
                await Task.WhenAll(running).ConfigureAwait(false);
            }
            catch when (running.Any(t => t.IsFaulted))
            {
                // The first part's fault is rethrown below; the loop's own cancellation is a consequence of it.
            }
        }

        var firstFault = running.FirstOrDefault(t => t.IsFaulted)?.Exception?.InnerException;
        if (firstFault is not null)
        {
            throw firstFault;
        }

        ct.ThrowIfCancellationRequested();
        return (Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant(), etags);
    }

    /// <summary>
    /// One PUT of <paramref name="length"/> bytes to a presigned URL with the <paramref name="headers"/> it was signed
    /// with; returns the ETag (null when the endpoint sent none). A refusal is an <see cref="ExchangeException"/> naming
    /// <paramref name="what"/>, never the URL.
    /// </summary>
    internal static async Task<string?> PutAsync(HttpClient http, Uri url, IReadOnlyList<KeyValuePair<string, string>> headers, byte[] buffer, int length, string what, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent(buffer, 0, length) };
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }

        using var response = await SendAsync(http, request, what, ct).ConfigureAwait(false);
        return response.Headers.ETag?.Tag is { Length: > 0 } etag ? etag : null;
    }

    private async Task BestEffortAsync(HttpMethod method, string key, IReadOnlyList<KeyValuePair<string, string>> query, string what)
    {
        // Bounded: a cleanup never holds up whoever waits for it (an endpoint gone quiet, a closing operator connection).
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            using (await SendSignedAsync(method, key, query, [], ReadOnlyMemory<byte>.Empty, null, what, bound.Token).ConfigureAwait(false))
            {
            }
        }
        catch (Exception ex) when (ex is ExchangeException or HttpRequestException or IOException or OperationCanceledException)
        {
        }
    }

    /// <summary>The object metadata as signed request headers (ASCII: a name such as "résumé.txt" goes RFC 2047-encoded).</summary>
    private static List<KeyValuePair<string, string>> Metadata(Dictionary<string, string> metadata) =>
        [.. metadata.Select(m => new KeyValuePair<string, string>("x-amz-meta-" + m.Key, ExchangeMetadata.Encode(m.Value)))];

    /// <summary>One request signed in its header (<see cref="S3Presigner.CreateRequest"/>), sent by <see cref="SendAsync"/>.</summary>
    private async Task<HttpResponseMessage> SendSignedAsync(HttpMethod method, string key, IReadOnlyList<KeyValuePair<string, string>> query,
        IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, string? contentType, string what, CancellationToken ct)
    {
        using var request = _presigner.CreateRequest(method, key, _time.GetUtcNow(), query, headers, body, contentType);
        return await SendAsync(_http, request, what, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Sends a request to the endpoint: the response when it succeeded, else an <see cref="ExchangeException"/> with the
    /// S3 error code, naming <paramref name="what"/> (never a URL or a secret).
    /// </summary>
    private static async Task<HttpResponseMessage> SendAsync(HttpClient http, HttpRequestMessage request, string what, CancellationToken ct)
    {
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new ExchangeException($"{what} failed: the endpoint could not be reached ({ex.HttpRequestError})", null, ex);
        }

        if (response.IsSuccessStatusCode)
        {
            return response;
        }

        using (response)
        {
            var code = await ErrorCodeAsync(response, ct).ConfigureAwait(false);
            throw code == "NotImplemented"
                ? new ExchangeException($"{what}: the storage endpoint does not implement this request (NotImplemented)", code)
                : new ExchangeException($"{what} failed: {code ?? "error"} (HTTP {(int)response.StatusCode})", code);
        }
    }

    /// <summary>The S3 error code of a refused request (<c>&lt;Code&gt;</c> of its XML body, read up to 4 KiB), or null.</summary>
    private static async Task<string?> ErrorCodeAsync(HttpResponseMessage response, CancellationToken ct)
    {
        try
        {
            var buffer = new byte[4096];
            var length = 0;
            await using (var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
            {
                int read;
                while (length < buffer.Length && (read = await stream.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false)) > 0)
                {
                    length += read;
                }
            }

            var text = System.Text.Encoding.UTF8.GetString(buffer, 0, length);
            var start = text.IndexOf("<Code>", StringComparison.Ordinal);
            var end = start < 0 ? -1 : text.IndexOf("</Code>", start, StringComparison.Ordinal);
            var code = end < 0 ? null : text[(start + "<Code>".Length)..end];
            return code is { Length: > 0 and <= 64 } && code.All(char.IsAsciiLetterOrDigit) ? code : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException)
        {
            return null;
        }
    }

    /// <summary>Reads exactly <paramref name="target"/>.Length bytes at <paramref name="offset"/>; hashes them into <paramref name="hash"/> (or returns their own hash).</summary>
    private static async Task<string?> ReadPartAsync(string path, long offset, Memory<byte> target, IncrementalHash? hash, CancellationToken ct)
    {
        using var handle = File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.Asynchronous);
        var done = 0;
        while (done < target.Length)
        {
            var read = await RandomAccess.ReadAsync(handle, target[done..], offset + done, ct).ConfigureAwait(false);
            if (read == 0)
            {
                throw new IOException($"'{path}' shrank while it was uploaded");
            }

            done += read;
        }

        if (hash is not null)
        {
            hash.AppendData(target.Span);
            return null;
        }

        return Convert.ToHexString(SHA256.HashData(target.Span)).ToLowerInvariant();
    }

    // ================================================================ download

    /// <summary>
    /// Downloads a presigned URL (<c>exchange_download</c>). Only URLs on the configured endpoint's host, port and
    /// scheme are fetched unless <paramref name="allowAnyHost"/>; streams to <c>&lt;destination&gt;.partial</c>,
    /// resumes from it with a range request, verifies SHA-256 when known, renames into place when complete.
    /// </summary>
    public async Task<ExchangeDownloadResult> DownloadUrlAsync(Uri url, string destination, bool allowAnyHost = false, string? expectedSha256 = null, IProgress<ExchangeProgress>? progress = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(url);
        CheckHost(url, allowAnyHost);
        var key = KeyFromUrl(url);
        var transferId = key is null ? null : TransferNames.Parse(key)?.TransferId;
        // A transfer of this bucket is looked up with the exchange's credentials: a multipart upload's SHA-256 is in
        // its manifest, not in the headers of the GET. A URL elsewhere relies on the caller's hash or the headers.
        var own = transferId is not null && IsEndpoint(url);
        return await DownloadCoreAsync(url, destination, transferId, null, expectedSha256, own ? key : null, progress, ct).ConfigureAwait(false);
    }

    /// <summary>Downloads a transfer by id (its source is the id's first part).</summary>
    public async Task<ExchangeDownloadResult> DownloadAsync(string transferId, string destination, string? expectedSha256 = null, IProgress<ExchangeProgress>? progress = null, CancellationToken ct = default)
    {
        var key = TransferNames.KeyOf(transferId);
        var url = Presign(key, HttpMethod.Get, TruncateToSeconds(_time.GetUtcNow().AddHours(Options.InternalUrlHours)));
        return await DownloadCoreAsync(url, destination, transferId, TransferNames.SourceOf(transferId), expectedSha256, key, progress, ct).ConfigureAwait(false);
    }

    private async Task<ExchangeDownloadResult> DownloadCoreAsync(Uri url, string destination, string? transferId, string? source, string? expectedSha256, string? lookupKey, IProgress<ExchangeProgress>? progress, CancellationToken ct)
    {
        var target = DownloadTarget(destination, transferId, url);
        using var lease = Guard?.Begin(NullIfServer(source), OperationNames.ExchangeDownload, $"{transferId ?? PresignedHttpTransfer.Describe(url)} → {target}");
        try
        {
            var partSize = Options.PartSize;
            if (string.IsNullOrWhiteSpace(expectedSha256) && lookupKey is not null)
            {
                // A local fault is known before the endpoint is asked anything (and reported as one).
                PresignedHttpTransfer.CheckDestination(target);
                // Before any byte is fetched: a missing or foreign manifest refuses the download, nothing is written.
                var info = await ResolveFullAsync(lookupKey, ct).ConfigureAwait(false);
                expectedSha256 = info?.Sha256;
                partSize = info?.PartSize ?? partSize;
            }

            var outcome = await FetchAsync(_http, url, target, transferId, expectedSha256, partSize, Options.DownloadParallelism, progress, ct).ConfigureAwait(false);
            lease?.Complete(OperationStatus.Succeeded, $"{outcome.Size} bytes{(outcome.Verified ? ", sha256 verified" : ", no sha256 to verify")}{(outcome.Resumed ? ", resumed" : "")}");
            return outcome;
        }
        catch (Exception ex)
        {
            lease?.Complete(ct.IsCancellationRequested ? OperationStatus.Cancelled : OperationStatus.Failed, Describe(ex));
            var translated = Translate(ex, $"download of '{transferId}'");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    /// <summary>The file a download writes: <paramref name="destination"/>, or in it (a directory) the transfer's file name.</summary>
    internal static string DownloadTarget(string destination, string? transferId, Uri url)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(destination);
        var target = Path.GetFullPath(destination);
        if (Directory.Exists(target))
        {
            // The id comes from a URL's (unescaped) path: its name is held to the transfer name rules before it is used.
            var name = transferId is null ? null : TransferNames.FileNameOf(transferId);
            target = Path.Combine(target, TransferNames.CheckFileName(name ?? Path.GetFileName(url.AbsolutePath)));
        }

        return target;
    }

    /// <summary>
    /// Fetches <paramref name="url"/> into <paramref name="target"/> (ranges of <paramref name="partSize"/>, resumable,
    /// verified against <paramref name="expectedSha256"/> when given); needs no credentials.
    /// </summary>
    internal static async Task<ExchangeDownloadResult> FetchAsync(HttpClient http, Uri url, string target, string? transferId, string? expectedSha256,
        int partSize, int parallelism, IProgress<ExchangeProgress>? progress, CancellationToken ct)
    {
        var ranges = new RangedDownloadOptions(Math.Clamp(partSize, RangedDownloadOptions.MinPartSize, RangedDownloadOptions.MaxPartSize), Math.Max(1, parallelism));
        var outcome = await PresignedHttpTransfer.DownloadAsync(http, url, target, expectedSha256, progress is null ? null : new SyncProgress(progress), ranges, ct).ConfigureAwait(false);
        return new ExchangeDownloadResult(outcome.Path, outcome.Size, outcome.Sha256, outcome.Verified, outcome.Resumed, transferId);
    }

    /// <summary>
    /// What another process needs to download a transfer without the credentials (an operator elsewhere): a presigned
    /// GET of <paramref name="transferId"/> for <see cref="ExchangeOptions.InternalUrlHours"/>, or <paramref name="url"/>
    /// once its host passed <see cref="CheckHost"/>; with the size, SHA-256 and part size the bucket records for a
    /// transfer of its own. A transfer that does not exist is NoSuchKey before any URL is handed out. Recorded as
    /// <c>exchange_download</c> (the bytes themselves never pass through here).
    /// </summary>
    public async Task<ExchangeDownloadSource> CreateDownloadSourceAsync(string? transferId, Uri? url, bool allowAnyHost, CancellationToken ct = default)
    {
        if ((transferId is null) == (url is null))
        {
            throw new ArgumentException("a download names a transfer id or a URL (one of them)");
        }

        string? key;
        if (url is not null)
        {
            CheckHost(url, allowAnyHost);
            key = KeyFromUrl(url);
            transferId = key is null ? null : TransferNames.Parse(key)?.TransferId;
            key = transferId is not null && IsEndpoint(url) ? key : null;
        }
        else
        {
            key = TransferNames.KeyOf(transferId!);
            url = Presign(key, HttpMethod.Get, TruncateToSeconds(_time.GetUtcNow().AddHours(Options.InternalUrlHours)));
        }

        var source = transferId is null ? null : TransferNames.SourceOf(transferId);
        using var lease = Guard?.Begin(NullIfServer(source), OperationNames.ExchangeDownload, $"{transferId ?? PresignedHttpTransfer.Describe(url)} → a URL handed to the operator's machine");
        try
        {
            var info = key is null ? null : await ResolveFullAsync(key, ct).ConfigureAwait(false);
            if (key is not null && info is null)
            {
                throw new ExchangeException($"no transfer '{transferId}' is in the bucket (it was deleted or expired)", "NoSuchKey");
            }

            lease?.Complete(OperationStatus.Succeeded, "presigned URL handed out; the bytes go straight from the bucket");
            return new ExchangeDownloadSource(url, transferId, info?.Sha256, info?.Size, info?.PartSize);
        }
        catch (Exception ex)
        {
            lease?.Complete(ct.IsCancellationRequested ? OperationStatus.Cancelled : OperationStatus.Failed, Describe(ex));
            throw;
        }
    }

    /// <summary>True when <paramref name="url"/> is on the configured endpoint (scheme, host, port).</summary>
    private bool IsEndpoint(Uri url) =>
        url.IsAbsoluteUri && url.Scheme == Settings.Endpoint.Scheme && url.Port == Settings.Endpoint.Port
        && string.Equals(url.Host, Settings.Endpoint.Host, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Size and SHA-256 of the object at <paramref name="key"/>, or null when it does not exist. The hash is the
    /// object's <c>sha256</c> metadata (single PUTs, and objects from before manifests); else, when the metadata
    /// names a manifest, the manifest's — verified to belong to this object (key, nonce, size), otherwise
    /// <see cref="ExchangeException"/> (ManifestMissing, ManifestInvalid). Presigned PUTs carry neither: null hash.
    /// </summary>
    /// <remarks>
    /// Both requests go through presigned URLs and plain <see cref="HttpClient"/>, not the SDK's request pipeline:
    /// in a short-lived process (a verb, a cmdlet) the SDK's first request costs about a quarter of a CPU-second of
    /// JIT, more than the lookup itself.
    /// </remarks>
    private async Task<(long Size, string? Sha256)?> ResolveCoreAsync(string key, CancellationToken ct) =>
        await ResolveFullAsync(key, ct).ConfigureAwait(false) is { } info ? (info.Size, info.Sha256) : null;

    /// <summary>As <see cref="ResolveCoreAsync"/>, with the upload's part size when its manifest records one.</summary>
    private async Task<(long Size, string? Sha256, int? PartSize)?> ResolveFullAsync(string key, CancellationToken ct)
    {
        using var head = await LookupAsync(HttpMethod.Head, key, ct).ConfigureAwait(false);
        if (head.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }

        var size = head.Content.Headers.ContentLength ?? throw new ExchangeException($"lookup of '{key}' failed: the endpoint gave no Content-Length", null);
        if (Header(head, "x-amz-meta-sha256") is { Length: > 0 } sha)
        {
            return (size, sha, null);
        }

        if (Header(head, "x-amz-meta-" + ExchangeLimits.ManifestMetadata) is not { Length: > 0 } nonce)
        {
            return (size, null, null);
        }

        var manifest = await ReadManifestCoreAsync(key, nonce, size, ct).ConfigureAwait(false);
        return (size, manifest.Sha256, manifest.PartSize);
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) || response.Content.Headers.TryGetValues(name, out values) ? values.FirstOrDefault() : null;

    /// <summary>The manifest's SHA-256 for the object at <paramref name="key"/>, verified to be this object's.</summary>
    private async Task<string> ReadManifestAsync(string key, string nonce, long size, CancellationToken ct) =>
        (await ReadManifestCoreAsync(key, nonce, size, ct).ConfigureAwait(false)).Sha256;

    private async Task<ExchangeManifest> ReadManifestCoreAsync(string key, string nonce, long size, CancellationToken ct)
    {
        using var response = await LookupAsync(HttpMethod.Get, TransferNames.ManifestKey(key), ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
        {
            throw ExchangeManifest.Missing(key);
        }

        var body = new byte[ExchangeManifest.MaxBytes + 1];
        var length = 0;
        await using (var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
        {
            int read;
            while (length < body.Length && (read = await stream.ReadAsync(body.AsMemory(length), ct).ConfigureAwait(false)) > 0)
            {
                length += read;
            }
        }

        if (length > ExchangeManifest.MaxBytes)
        {
            throw ExchangeManifest.Invalid(key, "it is too large to be a manifest");
        }

        return ExchangeManifest.VerifyManifest(body.AsSpan(0, length), key, nonce, size);
    }

    /// <summary>A HEAD or GET of <paramref name="key"/> by a short presigned URL: success or 404, else <see cref="ExchangeException"/>.</summary>
    private async Task<HttpResponseMessage> LookupAsync(HttpMethod method, string key, CancellationToken ct)
    {
        var url = Presign(key, method, TruncateToSeconds(_time.GetUtcNow().AddHours(Options.InternalUrlHours)));
        HttpResponseMessage response;
        try
        {
            response = await SharedHttp.SendAsync(new HttpRequestMessage(method, url), HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            // The URL is a bearer token: the message names the key and the kind of fault only.
            throw new ExchangeException($"lookup of '{key}' failed: the endpoint could not be reached ({ex.HttpRequestError})", null, ex);
        }

        if (response.IsSuccessStatusCode || response.StatusCode == HttpStatusCode.NotFound)
        {
            return response;
        }

        var status = (int)response.StatusCode;
        response.Dispose();
        throw new ExchangeException($"lookup of '{key}' failed: HTTP {status}", status.ToString(CultureInfo.InvariantCulture));
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; would post to a context and reorder reports).</summary>
    private sealed class SyncProgress(IProgress<ExchangeProgress> target) : IProgress<TransferProgress>
    {
        public void Report(TransferProgress value) => target.Report(new ExchangeProgress(ExchangePhase.Downloading, value.Done, value.Total));
    }

    /// <summary>Refuses URLs off the configured endpoint (scheme, host and port), unless explicitly allowed.</summary>
    public void CheckHost(Uri url, bool allowAnyHost)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (!url.IsAbsoluteUri || url.Scheme is not ("https" or "http"))
        {
            throw new ExchangeHostNotAllowedException($"download_url must be an absolute http(s) URL");
        }

        if (allowAnyHost)
        {
            return;
        }

        var endpoint = Settings.Endpoint;
        var sameHost = string.Equals(url.Host, endpoint.Host, StringComparison.OrdinalIgnoreCase)
            || url.Host.EndsWith("." + endpoint.Host, StringComparison.OrdinalIgnoreCase); // virtual-hosted bucket names
        if (!sameHost || url.Port != endpoint.Port || url.Scheme != endpoint.Scheme)
        {
            throw new ExchangeHostNotAllowedException(
                $"download_url {url.Scheme}://{url.Authority} is not the exchange endpoint {endpoint.Scheme}://{endpoint.Authority}; pass allow_any_host (-AllowAnyHost) to fetch it anyway");
        }
    }

    /// <summary>The object key a path-style URL of this bucket names, or null.</summary>
    private string? KeyFromUrl(Uri url)
    {
        var path = Uri.UnescapeDataString(url.AbsolutePath).TrimStart('/');
        var prefix = Settings.Bucket + "/";
        return path.StartsWith(prefix, StringComparison.Ordinal) ? path[prefix.Length..] : null;
    }

    // ================================================================ list

    /// <summary>
    /// Lists transfers (<c>exchange_list</c>), every page. ListObjectsV2 carries no user metadata, so each object
    /// is read with one HEAD (in parallel) when <paramref name="includeMetadata"/> or a destination filter asks for it.
    /// </summary>
    public async Task<IReadOnlyList<ExchangeObject>> ListAsync(string? sourceClient = null, string? destClient = null, bool includeMetadata = true, CancellationToken ct = default)
    {
        var prefix = sourceClient is null ? ExchangeLimits.Prefix : $"{ExchangeLimits.Prefix}{TransferNames.CheckSource(sourceClient)}/";
        if (destClient is not null)
        {
            TransferNames.CheckSource(destClient, "dest_client");
        }

        using var lease = Guard?.Begin(NullIfServer(sourceClient) ?? destClient, OperationNames.ExchangeList, prefix);
        try
        {
            var objects = new List<S3Object>();
            string? token = null;
            var pages = 0;
            do
            {
                var page = await Sdk.ListObjectsV2Async(new ListObjectsV2Request
                {
                    BucketName = Settings.Bucket,
                    Prefix = prefix,
                    MaxKeys = Options.ListPageSize,
                    ContinuationToken = token,
                }, ct).ConfigureAwait(false);
                pages++;
                // Manifests are internal: they live under transfers/ for the lifecycle rule, never shown as transfers.
                objects.AddRange((page.S3Objects ?? []).Where(o => !TransferNames.IsManifestKey(o.Key)));
                token = page.IsTruncated == true ? page.NextContinuationToken : null;
            }
            while (token is not null);

            var items = new ExchangeObject[objects.Count];
            var needMetadata = includeMetadata || destClient is not null;
            await Parallel.ForEachAsync(Enumerable.Range(0, objects.Count), new ParallelOptions { MaxDegreeOfParallelism = Options.MetadataParallelism, CancellationToken = ct }, async (i, token) =>
            {
                var o = objects[i];
                var parsed = TransferNames.Parse(o.Key);
                var metadata = needMetadata ? await ListedMetadataAsync(o.Key, token).ConfigureAwait(false) : Empty;
                items[i] = new ExchangeObject(o.Key, parsed?.TransferId, parsed?.Source, o.Size ?? 0,
                    o.LastModified is { } modified ? new DateTimeOffset(DateTime.SpecifyKind(modified, DateTimeKind.Utc)).ToUniversalTime() : null, metadata);
            }).ConfigureAwait(false);

            var result = destClient is null
                ? items.ToList()
                : items.Where(o => o.Metadata.TryGetValue("dest_client", out var d) && string.Equals(d, destClient, StringComparison.OrdinalIgnoreCase)).ToList();
            lease?.Complete(OperationStatus.Succeeded, $"{result.Count} of {objects.Count} object(s), {pages} page(s)");
            return result;
        }
        catch (Exception ex)
        {
            lease?.Complete(ct.IsCancellationRequested ? OperationStatus.Cancelled : OperationStatus.Failed, Describe(ex));
            var translated = Translate(ex, "listing");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    private static readonly IReadOnlyDictionary<string, string> Empty = new Dictionary<string, string>();

    /// <summary>
    /// Metadata as a listing shows it: a multipart upload's sha256 comes from its manifest (left out when the manifest
    /// cannot be trusted; a download then refuses it), and the manifest's nonce stays internal.
    /// </summary>
    private async Task<IReadOnlyDictionary<string, string>> ListedMetadataAsync(string key, CancellationToken ct)
    {
        if (await HeadMetadataAsync(key, ct).ConfigureAwait(false) is not var (metadata, size))
        {
            return Empty;
        }

        if (metadata.Remove(ExchangeLimits.ManifestMetadata, out var nonce) && nonce.Length > 0 && !metadata.ContainsKey("sha256"))
        {
            try
            {
                metadata["sha256"] = await ReadManifestAsync(key, nonce, size, ct).ConfigureAwait(false);
            }
            catch (ExchangeException)
            {
                // Not trusted: no hash shown.
            }
        }

        return metadata;
    }

    /// <summary>The object's user metadata (keys without x-amz-meta-), or null when it does not exist.</summary>
    private async Task<(Dictionary<string, string> Metadata, long Size)?> HeadMetadataAsync(string key, CancellationToken ct)
    {
        try
        {
            var head = await Sdk.GetObjectMetadataAsync(new GetObjectMetadataRequest { BucketName = Settings.Bucket, Key = key }, ct).ConfigureAwait(false);
            var metadata = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            foreach (var name in head.Metadata.Keys)
            {
                var shortName = name.StartsWith("x-amz-meta-", StringComparison.OrdinalIgnoreCase) ? name["x-amz-meta-".Length..] : name;
                metadata[shortName] = head.Metadata[name];
            }

            // Decoded from its header form and held to the transfer name rules; a malformed or hostile value is left
            // out (a listing then shows the name in the transfer id).
            if (metadata.Remove("filename", out var rawName) && ExchangeMetadata.FileName(rawName) is { } fileName)
            {
                metadata["filename"] = fileName;
            }

            return (metadata, head.ContentLength);
        }
        catch (AmazonS3Exception ex) when (ex.StatusCode == HttpStatusCode.NotFound)
        {
            return null;
        }
    }

    // ================================================================ delete

    /// <summary>
    /// Deletes a transfer (<c>exchange_delete</c>) and its SHA-256 manifest, if it has one. S3's DELETE succeeds whether
    /// or not the object existed, so a HEAD first tells the truth: <see cref="ExchangeDeleteResult.Deleted"/> is false
    /// when there was nothing.
    /// </summary>
    public async Task<ExchangeDeleteResult> DeleteAsync(string transferId, string sourceClient, CancellationToken ct = default)
    {
        var key = TransferNames.Key(sourceClient, transferId);
        using var lease = Guard?.Begin(NullIfServer(sourceClient), OperationNames.ExchangeDelete, key);
        try
        {
            var manifest = new DeleteObjectRequest { BucketName = Settings.Bucket, Key = TransferNames.ManifestKey(key) };
            if (await HeadMetadataAsync(key, ct).ConfigureAwait(false) is null)
            {
                // A manifest left by an upload that never completed goes too (S3's DELETE of nothing succeeds).
                await Sdk.DeleteObjectAsync(manifest, ct).ConfigureAwait(false);
                lease?.Complete(OperationStatus.NotFound, "no such transfer");
                return new ExchangeDeleteResult(key, transferId, Deleted: false);
            }

            // The object first: a manifest without its object is invisible and expires; the reverse would leave a
            // multipart object that every download refuses.
            await Sdk.DeleteObjectAsync(new DeleteObjectRequest { BucketName = Settings.Bucket, Key = key }, ct).ConfigureAwait(false);
            await Sdk.DeleteObjectAsync(manifest, ct).ConfigureAwait(false);
            lease?.Complete(OperationStatus.Succeeded, "deleted");
            return new ExchangeDeleteResult(key, transferId, Deleted: true);
        }
        catch (Exception ex)
        {
            lease?.Complete(ct.IsCancellationRequested ? OperationStatus.Cancelled : OperationStatus.Failed, Describe(ex));
            var translated = Translate(ex, $"delete of '{transferId}'");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    // ================================================================ presigned URLs

    /// <summary>
    /// A presigned PUT URL for a client → server upload (<c>curl -T FILE URL</c> is all a client needs). Only the
    /// host is signed, so no extra headers are required; the key carries source and file name, the object no metadata.
    /// </summary>
    public ExchangeUploadUrl CreateUploadUrl(string sourceClient, string fileName, int expiresHours = ExchangeLimits.DefaultExpiresHours)
    {
        ExchangeLimits.CheckExpiresHours(expiresHours);
        var now = _time.GetUtcNow();
        var transferId = TransferNames.NewTransferId(sourceClient, now, fileName);
        var key = TransferNames.Key(sourceClient, transferId);
        var expiresAt = TruncateToSeconds(now.AddHours(expiresHours));
        var url = Presign(key, HttpMethod.Put, expiresAt);
        return new ExchangeUploadUrl(transferId, key, url, expiresAt, sourceClient, TransferNames.CheckFileName(fileName));
    }

    /// <summary>A presigned GET URL for an existing transfer (1–12 hours), e.g. to hand an offline client later.</summary>
    public Uri CreateDownloadUrl(string transferId, int expiresHours = ExchangeLimits.DefaultExpiresHours)
    {
        ExchangeLimits.CheckExpiresHours(expiresHours);
        return Presign(TransferNames.KeyOf(transferId), HttpMethod.Get, TruncateToSeconds(_time.GetUtcNow().AddHours(expiresHours)));
    }

    /// <summary>
    /// Size and SHA-256 recorded with a transfer (in its metadata, or in its manifest for a multipart upload), or
    /// null when it does not exist. A missing or foreign manifest throws <see cref="ExchangeException"/>.
    /// </summary>
    public async Task<(long Size, string? Sha256)?> GetTransferInfoAsync(string transferId, CancellationToken ct = default)
    {
        try
        {
            return await ResolveCoreAsync(TransferNames.KeyOf(transferId), ct).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            var translated = Translate(ex, $"lookup of '{transferId}'");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    private Uri Presign(string key, HttpMethod method, DateTimeOffset expiresAt) =>
        _presigner.Presign(method.Method, key, _time.GetUtcNow(), expiresAt);

    // ================================================================ lifecycle

    /// <summary>The rule <see cref="InitializeAsync"/> installs: delete everything under transfers/ after 2 days.</summary>
    public static ExchangeLifecycleRule DesiredRule { get; } = new(ExchangeLimits.LifecycleRuleId, ExchangeLimits.Prefix, ExchangeLimits.LifecycleDays, Enabled: true);

    /// <summary>
    /// Installs the lifecycle rule that deletes transfers after 48 hours (keeping the bucket's other rules) and
    /// returns the rules now in force. Endpoints without lifecycle support answer NotImplemented (an <see cref="ExchangeException"/>).
    /// </summary>
    public async Task<IReadOnlyList<ExchangeLifecycleRule>> InitializeAsync(CancellationToken ct = default)
    {
        using var lease = Guard?.Begin(null, OperationNames.ExchangeInit, $"lifecycle {ExchangeLimits.LifecycleRuleId}");
        try
        {
            var current = await GetLifecycleRulesCoreAsync(ct).ConfigureAwait(false);
            var rules = current.Where(r => r.Id != ExchangeLimits.LifecycleRuleId).ToList();
            rules.Add(BuildRule(DesiredRule));
            await Sdk.PutLifecycleConfigurationAsync(new PutLifecycleConfigurationRequest
            {
                BucketName = Settings.Bucket,
                Configuration = new LifecycleConfiguration { Rules = rules },
            }, ct).ConfigureAwait(false);
            var now = (await GetLifecycleRulesCoreAsync(ct).ConfigureAwait(false)).Select(ToRule).ToList();
            lease?.Complete(OperationStatus.Succeeded, $"{now.Count} rule(s)");
            return now;
        }
        catch (Exception ex)
        {
            lease?.Complete(OperationStatus.Failed, Describe(ex));
            var translated = Translate(ex, "lifecycle configuration");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    /// <summary>The bucket's lifecycle rules (empty when it has none).</summary>
    public async Task<IReadOnlyList<ExchangeLifecycleRule>> GetLifecycleAsync(CancellationToken ct = default)
    {
        try
        {
            return (await GetLifecycleRulesCoreAsync(ct).ConfigureAwait(false)).Select(ToRule).ToList();
        }
        catch (Exception ex)
        {
            var translated = Translate(ex, "lifecycle configuration");
            if (!ReferenceEquals(translated, ex))
            {
                throw translated;
            }

            throw;
        }
    }

    private async Task<List<LifecycleRule>> GetLifecycleRulesCoreAsync(CancellationToken ct)
    {
        try
        {
            var response = await Sdk.GetLifecycleConfigurationAsync(new GetLifecycleConfigurationRequest { BucketName = Settings.Bucket }, ct).ConfigureAwait(false);
            return response.Configuration?.Rules ?? [];
        }
        catch (AmazonS3Exception ex) when (ex.ErrorCode == "NoSuchLifecycleConfiguration")
        {
            return [];
        }
    }

    internal static LifecycleRule BuildRule(ExchangeLifecycleRule rule) => new()
    {
        Id = rule.Id,
        Filter = new LifecycleFilter { LifecycleFilterPredicate = new LifecyclePrefixPredicate { Prefix = rule.Prefix } },
        Expiration = new LifecycleRuleExpiration { Days = rule.ExpirationDays },
        Status = rule.Enabled ? LifecycleRuleStatus.Enabled : LifecycleRuleStatus.Disabled,
    };

    internal static ExchangeLifecycleRule ToRule(LifecycleRule rule) => new(
        rule.Id ?? "",
        (rule.Filter?.LifecycleFilterPredicate as LifecyclePrefixPredicate)?.Prefix ?? "",
        rule.Expiration?.Days ?? 0,
        rule.Status == LifecycleRuleStatus.Enabled);

    // ================================================================ helpers

    private static string? NullIfServer(string? source) => source == ExchangeLimits.ServerSource ? null : source;

    private static DateTimeOffset TruncateToSeconds(DateTimeOffset t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerSecond), TimeSpan.Zero);

    internal static string Iso(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    private static string Describe(Exception ex) => ex switch
    {
        AmazonS3Exception s3 => $"{s3.ErrorCode ?? ((int)s3.StatusCode).ToString(CultureInfo.InvariantCulture)}",
        ExchangeException { ErrorCode: { Length: > 0 } code } => code,
        _ => ex.GetType().Name,
    };

    /// <summary>S3 faults become <see cref="ExchangeException"/> (with the S3 error code); others pass through.</summary>
    private static Exception Translate(Exception ex, string what) => ex switch
    {
        AmazonS3Exception { ErrorCode: "NotImplemented" } s3 => new ExchangeException($"{what}: the storage endpoint does not implement this request (NotImplemented)", s3.ErrorCode, s3),
        AmazonS3Exception s3 => new ExchangeException($"{what} failed: {s3.ErrorCode ?? "error"} (HTTP {(int)s3.StatusCode}): {s3.Message}", s3.ErrorCode, s3),
        AmazonServiceException service => new ExchangeException($"{what} failed: {service.Message}", service.ErrorCode, service),
        AmazonClientException client => new ExchangeException($"{what} failed: {client.Message}", null, client),
        _ => ex,
    };

    public void Dispose()
    {
        if (_sdk.IsValueCreated)
        {
            _sdk.Value.Dispose();
        }
    }
}
