using System.Globalization;
using System.Security.Cryptography;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using OperationStatus = EtPhoneHome.Core.Registry.OperationStatus;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// An upload started by the exchange's credentials whose bytes are sent to presigned URLs: by this process
/// (<see cref="ExchangeClient.UploadAsync"/>), or by an operator elsewhere through the operator service, so the
/// credentials never leave the server. Up to the multipart threshold it is one PUT whose metadata (the file's SHA-256
/// included) is signed into its URL; larger, a multipart upload whose SHA-256 goes into a manifest at completion.
/// </summary>
public sealed class ExchangeStagedUpload
{
    internal ExchangeStagedUpload(string transferId, string key, string fileName, string sourceClient, string? destClient, long size,
        DateTimeOffset expiresAt, int partSize, int partCount, string? uploadId, string nonce, string? sha256,
        IReadOnlyList<KeyValuePair<string, string>> headers, OperationLease? lease)
    {
        TransferId = transferId;
        Key = key;
        FileName = fileName;
        SourceClient = sourceClient;
        DestClient = destClient;
        Size = size;
        ExpiresAt = expiresAt;
        PartSize = partSize;
        PartCount = partCount;
        UploadId = uploadId;
        Nonce = nonce;
        Sha256 = sha256;
        Headers = headers;
        Lease = lease;
    }

    public string TransferId { get; }
    public string Key { get; }
    public string FileName { get; }
    public string SourceClient { get; }
    public string? DestClient { get; }
    public long Size { get; }
    public DateTimeOffset ExpiresAt { get; }

    /// <summary>Bytes per part (the last may be shorter); a single PUT is one part of the whole size.</summary>
    public int PartSize { get; }

    public int PartCount { get; }

    /// <summary>True for a multipart upload; false for one PUT.</summary>
    public bool Multipart => UploadId is not null;

    /// <summary>Headers a single PUT must carry exactly as signed (its metadata); none for parts.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; }

    internal string? UploadId { get; }
    internal string Nonce { get; }
    internal string? Sha256 { get; }
    internal OperationLease? Lease { get; }
    private int _ended;

    /// <summary>True once, for whoever ends the upload (completion or abort); that one frees the key once its work is done.</summary>
    internal bool TryEnd() => Interlocked.Exchange(ref _ended, 1) == 0;
}

public sealed partial class ExchangeClient
{
    /// <summary>S3's most parts in one multipart upload.</summary>
    public const int MaxParts = 10_000;

    /// <summary>How long a single PUT's URL stays valid: minutes, not the transfer's hours (the bytes follow at once).</summary>
    public static readonly TimeSpan SinglePutUrlLifetime = TimeSpan.FromMinutes(15);

    /// <summary>Seconds tried past the current one when a transfer id of the same name and second is taken.</summary>
    private const int MaxIdAttempts = 60;

    /// <summary>Keys of the uploads this process started and has not ended: two of them never share a key.</summary>
    private static readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> Reserved = new(StringComparer.Ordinal);

    internal static void Release(string key) => Reserved.TryRemove(key, out _);

    /// <summary>
    /// Starts an upload of <paramref name="size"/> bytes named <paramref name="fileName"/> (<c>exchange_upload</c>, recorded
    /// when it ends). Up to the multipart threshold <paramref name="sha256"/> is required: it is signed into the PUT's
    /// metadata. Larger files start a multipart upload (its metadata names a manifest nonce); their hash is given at
    /// completion. Nothing is sent for an argument that does not hold.
    /// </summary>
    public async Task<ExchangeStagedUpload> StartStagedUploadAsync(string fileName, long size, string? sha256, string? destClient,
        int expiresHours, string sourceClient, CancellationToken ct = default)
    {
        ExchangeLimits.CheckExpiresHours(expiresHours);
        TransferNames.CheckSource(sourceClient);
        if (destClient is not null)
        {
            TransferNames.CheckSource(destClient, "dest_client");
        }

        fileName = TransferNames.CheckFileName(fileName);
        var multipart = size > Options.MultipartThreshold;
        if (size < 0 || (long)Options.PartSize * MaxParts < size)
        {
            throw new ArgumentException($"size {size} is not an uploadable size (0 to {(long)Options.PartSize * MaxParts} bytes in {MaxParts} parts of {Options.PartSize})");
        }

        if (!multipart && !IsSha256(sha256))
        {
            throw new ArgumentException("sha256 (64 hex digits) is required for an upload in one PUT");
        }

        var now = _time.GetUtcNow();
        var expiresAt = TruncateToSeconds(now.AddHours(expiresHours));
        var metadata = new Dictionary<string, string>
        {
            ["source_client"] = sourceClient,
            ["dest_client"] = destClient ?? "",
            ["filename"] = fileName,
            ["uploaded_at"] = Iso(now),
            ["expires_at"] = Iso(expiresAt),
        };
        var nonce = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();
        var lease = Guard?.Begin(destClient ?? NullIfServer(sourceClient), OperationNames.ExchangeUpload,
            $"{fileName} → {TransferNames.Key(sourceClient, TransferNames.NewTransferId(sourceClient, now, fileName))}");
        string? key = null;
        try
        {
            (var transferId, key) = await ReserveIdAsync(sourceClient, now, fileName, ct).ConfigureAwait(false);
            if (!multipart)
            {
                metadata["sha256"] = sha256!.ToLowerInvariant();
                metadata[UploadNonceMetadata] = nonce;
                // If-None-Match: the PUT creates the object or fails; it never replaces a transfer of the same id.
                var headers = Metadata(metadata);
                headers.Add(new("if-none-match", "*"));
                return new ExchangeStagedUpload(transferId, key, fileName, sourceClient, destClient, size, expiresAt, (int)size, 1, null, nonce,
                    metadata["sha256"], headers, lease);
            }

            var startHeaders = Metadata(metadata);
            startHeaders.Add(new("x-amz-meta-" + ExchangeLimits.ManifestMetadata, nonce));
            string uploadId;
            using (var started = await SendSignedAsync(HttpMethod.Post, key, [new("uploads", "")], startHeaders, ReadOnlyMemory<byte>.Empty, null, $"start of the multipart upload of '{key}'", ct).ConfigureAwait(false))
            {
                uploadId = await S3Xml.ReadUploadIdAsync(started, ct).ConfigureAwait(false)
                    ?? throw new ExchangeException($"start of the multipart upload of '{key}' failed: the endpoint returned no upload id", null);
            }

            var partCount = (int)((size + Options.PartSize - 1) / Options.PartSize);
            return new ExchangeStagedUpload(transferId, key, fileName, sourceClient, destClient, size, expiresAt, Options.PartSize, partCount, uploadId, nonce, null, [], lease);
        }
        catch (Exception ex)
        {
            if (key is not null)
            {
                Release(key);
            }

            lease?.Complete(ct.IsCancellationRequested ? OperationStatus.Cancelled : OperationStatus.Failed, Describe(ex));
            throw;
        }
    }

    /// <summary>
    /// A transfer id for <paramref name="fileName"/> at <paramref name="now"/> that no upload of this process holds and no
    /// object of the bucket has (<see cref="ExistsAsync"/>; a single PUT's If-None-Match also closes the moment between
    /// that probe and the PUT on stores that honour it): the next second's id when one is taken. Two uploads of one name in one second are
    /// two transfers; neither replaces the other.
    /// </summary>
    private async Task<(string TransferId, string Key)> ReserveIdAsync(string sourceClient, DateTimeOffset now, string fileName, CancellationToken ct)
    {
        for (var i = 0; i < MaxIdAttempts; i++)
        {
            var transferId = TransferNames.NewTransferId(sourceClient, now.AddSeconds(i), fileName);
            var key = TransferNames.Key(sourceClient, transferId);
            if (!Reserved.TryAdd(key, 0))
            {
                continue;
            }

            try
            {
                if (!await ExistsAsync(key, ct).ConfigureAwait(false))
                {
                    return (transferId, key);
                }
            }
            catch
            {
                Release(key);
                throw;
            }

            Release(key);
        }

        throw new ExchangeException($"no free transfer id for '{fileName}' within {MaxIdAttempts} s of now; try again", "TransferIdTaken");
    }

    /// <summary>
    /// The presigned URL of part <paramref name="number"/> (1-based) of a started upload: an UploadPart URL valid for
    /// <see cref="ExchangeOptions.InternalUrlHours"/>, or for a single PUT the PUT itself, signed with its
    /// <see cref="ExchangeStagedUpload.Headers"/> and valid for <see cref="SinglePutUrlLifetime"/>.
    /// </summary>
    public Uri PresignStagedPart(ExchangeStagedUpload upload, int number)
    {
        ArgumentNullException.ThrowIfNull(upload);
        if (number < 1 || number > upload.PartCount)
        {
            throw new ArgumentException($"part {number} is not a part of this upload (1 to {upload.PartCount})");
        }

        var now = _time.GetUtcNow();
        var expires = upload.UploadId is null ? now + SinglePutUrlLifetime : now.AddHours(Options.InternalUrlHours);
        return upload.UploadId is { } uploadId
            ? _presigner.Presign("PUT", upload.Key, now, expires, [new("partNumber", number.ToString(CultureInfo.InvariantCulture)), new("uploadId", uploadId)])
            : _presigner.Presign("PUT", upload.Key, now, expires, null, upload.Headers);
    }

    /// <summary>
    /// Completes a started upload: for parts, writes the manifest with <paramref name="sha256"/> and completes the
    /// multipart upload with <paramref name="etags"/> (one per part, in order). With <paramref name="verifyArrival"/>
    /// (the bytes were sent by another process) the object must then exist with the upload's size, else it is removed
    /// and the completion fails. Returns the transfer with a download URL; any fault aborts the upload.
    /// </summary>
    public async Task<ExchangeUploadResult> CompleteStagedUploadAsync(ExchangeStagedUpload upload, string sha256, IReadOnlyList<string> etags, bool verifyArrival, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(upload);
        ArgumentNullException.ThrowIfNull(etags);
        if (!IsSha256(sha256))
        {
            throw new ArgumentException("sha256 must be 64 hex digits");
        }

        sha256 = sha256.ToLowerInvariant();
        if (upload.Sha256 is { } signed && signed != sha256)
        {
            throw new ArgumentException("sha256 is not the one the upload was started with");
        }

        if (upload.Multipart && (etags.Count != upload.PartCount || etags.Any(e => e is not { Length: > 0 and <= 128 } || !e.All(c => c is > ' ' and <= '~'))))
        {
            throw new ArgumentException($"etags must name each of the {upload.PartCount} parts once, in order, as the endpoint returned them");
        }

        try
        {
            if (_time.GetUtcNow() >= upload.ExpiresAt)
            {
                // Its download URL could not be signed any more: nothing is kept of an upload that outlived its transfer.
                throw new ExchangeException($"the upload of '{upload.Key}' took longer than the transfer's lifetime (it expired at {Iso(upload.ExpiresAt)}); upload again with more expires_hours", "UploadExpired");
            }

            if (upload.Multipart)
            {
                var manifest = new ExchangeManifest(upload.Key, upload.Nonce, upload.Size, sha256, upload.PartSize, upload.PartCount);
                using (await SendSignedAsync(HttpMethod.Put, TransferNames.ManifestKey(upload.Key), [], [new("x-amz-meta-sha256", sha256)], manifest.ToJson(), "application/json", $"manifest of '{upload.Key}'", ct).ConfigureAwait(false))
                {
                }

                using (var completed = await SendSignedAsync(HttpMethod.Post, upload.Key, [new("uploadId", upload.UploadId!)], [], S3Xml.CompleteMultipartUpload(etags), "application/xml", $"completion of the multipart upload of '{upload.Key}'", ct).ConfigureAwait(false))
                {
                    // S3 may answer 200 and still report a failure in the body (it sends the status before the work is done).
                    await S3Xml.EnsureCompletedAsync(completed, $"completion of the multipart upload of '{upload.Key}'", ct).ConfigureAwait(false);
                }
            }

            if (verifyArrival)
            {
                using var head = await LookupAsync(HttpMethod.Head, upload.Key, ct).ConfigureAwait(false);
                var arrived = head.StatusCode != System.Net.HttpStatusCode.NotFound ? head.Content.Headers.ContentLength : null;
                if (arrived != upload.Size)
                {
                    throw new ExchangeException(arrived is null
                        ? $"the upload of '{upload.Key}' did not arrive: the endpoint has no such object"
                        : $"the upload of '{upload.Key}' arrived with {arrived} bytes, not the {upload.Size} announced", "IncompleteUpload");
                }
            }
        }
        catch (Exception ex)
        {
            await AbortStagedUploadAsync(upload, ex, ct.IsCancellationRequested, removeObject: verifyArrival).ConfigureAwait(false);
            throw;
        }

        if (upload.TryEnd())
        {
            Release(upload.Key);
            // The detail named the id the upload asked for; a taken id moved it on by a second or more: the outcome says which.
            var moved = upload.Lease?.Detail is { } detail && !detail.EndsWith(upload.Key, StringComparison.Ordinal) ? $", as {upload.TransferId}" : "";
            upload.Lease?.Complete(OperationStatus.Succeeded, $"{upload.Size} bytes, sha256 {sha256[..12]}…{(upload.Multipart ? ", multipart" : "")}{moved}");
        }

        var url = Presign(upload.Key, HttpMethod.Get, upload.ExpiresAt);
        return new ExchangeUploadResult(upload.TransferId, upload.Key, url, upload.ExpiresAt, upload.Size, upload.FileName, sha256, upload.SourceClient, upload.DestClient, upload.Multipart);
    }

    /// <summary>
    /// Ends a started upload that will not complete: aborts the multipart upload and removes its manifest (and with
    /// <paramref name="removeObject"/> whatever arrived), each on its own and best effort — what is left expires with the
    /// lifecycle rule — and records the outcome once.
    /// </summary>
    public async Task AbortStagedUploadAsync(ExchangeStagedUpload upload, Exception? why, bool cancelled, bool removeObject = false)
    {
        ArgumentNullException.ThrowIfNull(upload);
        if (!upload.TryEnd())
        {
            return;
        }

        try
        {
            if (upload.UploadId is { } uploadId)
            {
                await BestEffortAsync(HttpMethod.Delete, upload.Key, [new("uploadId", uploadId)], "abort").ConfigureAwait(false);
                await BestEffortAsync(HttpMethod.Delete, TransferNames.ManifestKey(upload.Key), [], "removal of the manifest").ConfigureAwait(false);
            }

            if (removeObject || upload.UploadId is null)
            {
                // A single PUT that another process sent, or a completion that failed after the object existed: removed
                // only if the object there is this upload's (its nonce in the metadata), never one another writer made.
                await RemoveIfOwnAsync(upload).ConfigureAwait(false);
            }
        }
        finally
        {
            upload.Lease?.Complete(cancelled ? OperationStatus.Cancelled : OperationStatus.Failed, why is null ? "abandoned" : Describe(why));
            Release(upload.Key);
        }
    }

    /// <summary>The metadata entry naming the upload that wrote an object (a single PUT's nonce; a multipart upload's is its manifest nonce).</summary>
    private const string UploadNonceMetadata = "upload_nonce";

    /// <summary>Deletes the object at the upload's key when its metadata carries this upload's nonce; best effort and bounded.</summary>
    private async Task RemoveIfOwnAsync(ExchangeStagedUpload upload)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            using var head = await LookupAsync(HttpMethod.Head, upload.Key, bound.Token).ConfigureAwait(false);
            var mark = "x-amz-meta-" + (upload.Multipart ? ExchangeLimits.ManifestMetadata : UploadNonceMetadata);
            if (head.StatusCode == System.Net.HttpStatusCode.NotFound
                || !head.Headers.TryGetValues(mark, out var values) || !values.Contains(upload.Nonce, StringComparer.Ordinal))
            {
                return;
            }
        }
        catch (Exception ex) when (ex is ExchangeException or HttpRequestException or IOException or OperationCanceledException)
        {
            return;
        }

        await BestEffortAsync(HttpMethod.Delete, upload.Key, [], "removal of the object").ConfigureAwait(false);
    }

    /// <summary>
    /// Whether an object is at <paramref name="key"/>: a GET of its first byte (not a HEAD: a refusal's body names the S3
    /// error, such as SignatureDoesNotMatch, which a HEAD's answer cannot carry).
    /// </summary>
    private async Task<bool> ExistsAsync(string key, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, Presign(key, HttpMethod.Get, TruncateToSeconds(_time.GetUtcNow().AddHours(Options.InternalUrlHours))));
        request.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(0, 0);
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new ExchangeException($"lookup of '{key}' failed: the endpoint could not be reached ({ex.HttpRequestError})", null, ex);
        }

        using (response)
        {
            if (response.StatusCode == System.Net.HttpStatusCode.NotFound)
            {
                return false;
            }

            if (response.IsSuccessStatusCode || response.StatusCode == System.Net.HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                return true; // 416: an empty object, which has no first byte
            }

            var code = await ErrorCodeAsync(response, ct).ConfigureAwait(false);
            if (code == "AccessDenied")
            {
                // Keys that may write but not read (or list): a missing object is AccessDenied to them. The single PUT's
                // If-None-Match still guards it; a multipart upload's completion does not.
                return false;
            }

            throw new ExchangeException($"lookup of '{key}' failed: {code ?? "error"} (HTTP {(int)response.StatusCode})", code);
        }
    }

    private static bool IsSha256(string? value) => value is { Length: 64 } && value.All(char.IsAsciiHexDigit);
}
