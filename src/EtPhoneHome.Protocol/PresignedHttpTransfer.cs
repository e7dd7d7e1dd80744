using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Runtime.ExceptionServices;
using System.Security.Cryptography;
using Microsoft.Win32.SafeHandles;

namespace EtPhoneHome.Protocol;

/// <summary>Bytes moved so far, and the total when known.</summary>
public readonly record struct TransferProgress(long Done, long? Total);

/// <summary>
/// How a download larger than one part is fetched: ranges of <see cref="PartSize"/> bytes, <see cref="Parallelism"/>
/// at once (each range in flight or waiting to be hashed holds one buffer of <see cref="PartSize"/> bytes).
/// A parallelism of 1 fetches everything with one GET.
/// </summary>
public sealed record RangedDownloadOptions(int PartSize = RangedDownloadOptions.DefaultPartSize, int Parallelism = RangedDownloadOptions.DefaultParallelism)
{
    public const int DefaultPartSize = 16 * 1024 * 1024;

    public const int DefaultParallelism = 4;

    /// <summary>Smallest and largest range accepted (a part size from elsewhere outside these bounds is not used).</summary>
    public const int MinPartSize = 1024 * 1024;

    public const int MaxPartSize = 64 * 1024 * 1024;

    public static RangedDownloadOptions Default { get; } = new();

    /// <summary>One GET for everything (the behaviour before ranged downloads).</summary>
    public static RangedDownloadOptions SingleStream { get; } = new(DefaultPartSize, 1);

    internal bool Ranged => Parallelism > 1;

    internal void Check()
    {
        if (PartSize is < MinPartSize or > MaxPartSize)
        {
            throw new ArgumentOutOfRangeException(nameof(PartSize), PartSize, $"the range size must be between {MinPartSize} and {MaxPartSize} bytes");
        }

        if (Parallelism is < 1 or > 32)
        {
            throw new ArgumentOutOfRangeException(nameof(Parallelism), Parallelism, "between 1 and 32 ranges may be in flight");
        }
    }
}

/// <summary>Outcome of a <c>PresignedHttpTransfer.DownloadAsync</c>.</summary>
public sealed record HttpDownloadOutcome(string Path, long Size, string Sha256, bool Resumed, bool Verified);

/// <summary>Outcome of <see cref="PresignedHttpTransfer.UploadAsync"/>.</summary>
public sealed record HttpUploadOutcome(long Size, string Sha256);

/// <summary>A transfer the storage endpoint refused or broke. The message never carries the URL's query (its signature).</summary>
public sealed class HttpTransferException(string message, HttpStatusCode? status = null, Exception? inner = null) : Exception(message, inner)
{
    public HttpStatusCode? Status { get; } = status;
}

/// <summary>
/// A local file or directory could not be used (missing directory, permission denied, disk full): the fault is
/// here, not on the connection, so it is neither retried nor reported as a transfer failure. Names the local path.
/// </summary>
public sealed class LocalFileException(string path, string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The local path that could not be used.</summary>
    public string Path { get; } = path;
}

/// <summary>The received bytes do not hash to the expected SHA-256; nothing was written to the destination.</summary>
public sealed class ChecksumMismatchException(string expected, string actual, string path)
    : Exception($"SHA-256 mismatch for '{path}': expected {expected}, got {actual}; nothing was written")
{
    public string Expected { get; } = expected;
    public string Actual { get; } = actual;
}

/// <summary>
/// Downloads from and uploads to presigned URLs with nothing but <see cref="HttpClient"/> (AOT-safe; the agent
/// and the server share it). Downloads write into <c>&lt;destination&gt;.partial</c>, verify SHA-256 (the expected
/// value, else the object's <c>x-amz-meta-sha256</c>), and rename into place only when complete and verified.
/// An object larger than one part is fetched as parallel ranged GETs (<see cref="RangedDownloadOptions"/>), each
/// written at its offset; the SHA-256 is computed over the ranges in order, from memory, as the in-order prefix
/// completes. An interrupted transfer keeps the verified-in-order prefix and resumes from it with a range request.
/// </summary>
public static class PresignedHttpTransfer
{
    /// <summary>Suffix of the file a download writes before it is complete.</summary>
    public const string PartialSuffix = ".partial";

    /// <summary>Response header carrying the SHA-256 the uploader recorded in the object's metadata.</summary>
    public const string Sha256MetadataHeader = "x-amz-meta-sha256";

    /// <summary>How many times one call continues a download after the connection broke.</summary>
    public const int MaxResumeAttempts = 5;

    private const int BufferSize = 1024 * 1024;

    /// <summary>The URL without its query string (the signature), for messages and logs.</summary>
    public static string Describe(Uri url) => url.GetLeftPart(UriPartial.Path);

    public static Task<HttpDownloadOutcome> DownloadAsync(
        HttpClient http,
        Uri url,
        string destination,
        string? expectedSha256,
        IProgress<TransferProgress>? progress,
        CancellationToken ct) =>
        DownloadAsync(http, url, destination, expectedSha256, progress, RangedDownloadOptions.Default, ct);

    public static async Task<HttpDownloadOutcome> DownloadAsync(
        HttpClient http,
        Uri url,
        string destination,
        string? expectedSha256,
        IProgress<TransferProgress>? progress,
        RangedDownloadOptions? ranges,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(url);
        ranges ??= RangedDownloadOptions.Default;
        ranges.Check();
        var target = Path.GetFullPath(destination);
        var partial = target + PartialSuffix;
        CheckDestination(target, partial);
        var resumedAny = false;
        var restartedAfterMismatch = false;
        var breaks = 0;
        while (true)
        {
            var offset = File.Exists(partial) ? new FileInfo(partial).Length : 0;
            Attempt attempt;
            try
            {
                attempt = offset == 0 && ranges.Ranged
                    ? await DownloadRangedAsync(http, url, partial, ranges, progress, ct).ConfigureAwait(false)
                    : await DownloadOnceAsync(http, url, partial, offset, progress, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsBrokenTransfer(ex, ct) && breaks < MaxResumeAttempts)
            {
                breaks++; // the partial file keeps what arrived; the next attempt asks for the rest
                continue;
            }
            catch (Exception ex) when (IsBrokenTransfer(ex, ct))
            {
                throw new HttpTransferException($"download from {Describe(url)} broke {breaks + 1} times; the partial file is kept for a later resume", null, ex);
            }

            resumedAny |= attempt.Resumed;
            var expected = Normalize(expectedSha256) ?? Normalize(attempt.MetadataSha256);
            if (expected is not null && !string.Equals(expected, attempt.Sha256, StringComparison.Ordinal))
            {
                File.Delete(partial);
                if (attempt.Resumed && !restartedAfterMismatch)
                {
                    // The kept bytes may belong to an older object under the same URL: start over once.
                    restartedAfterMismatch = true;
                    continue;
                }

                throw new ChecksumMismatchException(expected, attempt.Sha256, target);
            }

            Local(target, () => File.Move(partial, target, overwrite: true));
            return new HttpDownloadOutcome(target, attempt.Size, attempt.Sha256, resumedAny, expected is not null);
        }
    }

    /// <summary>
    /// Before anything is downloaded: the destination's directory exists and the partial file can be created there,
    /// so a wrong path fails at once, naming it, instead of after a download (or as a "broken" connection).
    /// </summary>
    public static void CheckDestination(string destination)
    {
        var target = Path.GetFullPath(destination);
        CheckDestination(target, target + PartialSuffix);
    }

    private static void CheckDestination(string target, string partial)
    {
        var directory = Path.GetDirectoryName(target);
        if (directory is not null && !Directory.Exists(directory))
        {
            throw new LocalFileException(directory, File.Exists(directory)
                ? $"cannot download to '{target}': '{directory}' is a file, not a directory; nothing was downloaded"
                : $"cannot download to '{target}': the directory '{directory}' does not exist (create it first); nothing was downloaded");
        }

        if (Directory.Exists(target))
        {
            throw new LocalFileException(target, $"cannot download to '{target}': it is a directory; nothing was downloaded");
        }

        // Opening the partial file (kept as it is when it exists) proves the directory is writable.
        Local(partial, () =>
        {
            var kept = File.Exists(partial);
            using var probe = new FileStream(partial, FileMode.OpenOrCreate, FileAccess.Write, FileShare.None, 1, kept ? FileOptions.None : FileOptions.DeleteOnClose);
        });
    }

    /// <summary>Runs a local file operation; its I/O faults become <see cref="LocalFileException"/> naming <paramref name="path"/>.</summary>
    private static void Local(string path, Action action)
    {
        try
        {
            action();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new LocalFileException(path, $"cannot write '{path}': {ex.Message}", ex);
        }
    }

    private static async Task LocalAsync(string path, Func<Task> action)
    {
        try
        {
            await action().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new LocalFileException(path, $"cannot write '{path}': {ex.Message}", ex);
        }
    }

    /// <summary>Uploads a file to a presigned PUT URL, streaming, hashing while it reads.</summary>
    public static async Task<HttpUploadOutcome> UploadAsync(HttpClient http, Uri url, string path, IProgress<TransferProgress>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(http);
        ArgumentNullException.ThrowIfNull(url);
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize, FileOptions.Asynchronous | FileOptions.SequentialScan);
        var length = file.Length;
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        await using var reader = new HashingReadStream(file, hash, length, progress);
        using var content = new StreamContent(reader, BufferSize);
        content.Headers.ContentLength = length;
        using var request = new HttpRequestMessage(HttpMethod.Put, url) { Content = content };
        HttpResponseMessage response;
        try
        {
            response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }
        catch (HttpRequestException ex)
        {
            throw new HttpTransferException($"upload to {Describe(url)} failed: {ex.Message}", null, ex);
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                throw new HttpTransferException($"upload to {Describe(url)} was refused: HTTP {(int)response.StatusCode} {response.ReasonPhrase}", response.StatusCode);
            }
        }

        if (reader.BytesRead != length)
        {
            throw new HttpTransferException($"upload of '{path}' sent {reader.BytesRead} of {length} bytes (the file changed while it was read)");
        }

        return new HttpUploadOutcome(length, Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant());
    }

    private static bool IsBrokenTransfer(Exception ex, CancellationToken ct) =>
        !ct.IsCancellationRequested && ex is IOException or HttpRequestException { StatusCode: null };

    private static string? Normalize(string? sha) => string.IsNullOrWhiteSpace(sha) ? null : sha.Trim().ToLowerInvariant();

    private sealed record Attempt(long Size, string Sha256, string? MetadataSha256, bool Resumed);

    private static async Task<Attempt> DownloadOnceAsync(HttpClient http, Uri url, string partial, long offset, IProgress<TransferProgress>? progress, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, url);
        if (offset > 0)
        {
            request.Headers.Range = new RangeHeaderValue(offset, null);
        }

        using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && offset > 0)
        {
            // The kept part is not a prefix of this object (or is all of it, with no way to tell): start over.
            Local(partial, () => File.Delete(partial));
            return await DownloadOnceAsync(http, url, partial, 0, progress, ct).ConfigureAwait(false);
        }

        return await ReceiveAsync(url, response, partial, offset, progress, ct).ConfigureAwait(false);
    }

    /// <summary>Streams one response into the partial file from <paramref name="offset"/>, hashing the kept prefix first.</summary>
    private static async Task<Attempt> ReceiveAsync(Uri url, HttpResponseMessage response, string partial, long offset, IProgress<TransferProgress>? progress, CancellationToken ct)
    {

        if (!response.IsSuccessStatusCode)
        {
            throw new HttpTransferException($"download from {Describe(url)} was refused: HTTP {(int)response.StatusCode} {response.ReasonPhrase}", response.StatusCode);
        }

        var resumed = false;
        if (response.StatusCode == HttpStatusCode.PartialContent)
        {
            var range = response.Content.Headers.ContentRange;
            if (range?.From != offset)
            {
                throw new HttpTransferException($"download from {Describe(url)}: the server answered range {range?.From?.ToString(CultureInfo.InvariantCulture) ?? "?"}, asked for {offset}");
            }

            resumed = offset > 0;
        }
        else
        {
            offset = 0; // a full answer: the range was ignored
        }

        long? total = response.Content.Headers.ContentLength is { } length ? offset + length : null;
        var metadataSha = response.Headers.TryGetValues(Sha256MetadataHeader, out var values) ? values.FirstOrDefault() : null;

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[BufferSize];
        FileStream? opened = null;
        Local(partial, () => opened = new FileStream(partial, offset > 0 ? FileMode.OpenOrCreate : FileMode.Create, FileAccess.ReadWrite, FileShare.None, BufferSize, FileOptions.Asynchronous));
        await using var file = opened!;
        if (offset > 0)
        {
            // Hash what an earlier attempt kept, then append from there.
            file.Position = 0;
            var remaining = offset;
            while (remaining > 0)
            {
                var read = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, remaining)), ct).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new HttpTransferException("the partial file shrank while it was resumed");
                }

                hash.AppendData(buffer, 0, read);
                remaining -= read;
            }
        }

        Local(partial, () => file.SetLength(offset));
        file.Position = offset;
        var done = offset;
        await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        progress?.Report(new TransferProgress(done, total));
        while (true)
        {
            var read = await body.ReadAsync(buffer, ct).ConfigureAwait(false);
            if (read == 0)
            {
                break;
            }

            await LocalAsync(partial, () => file.WriteAsync(buffer.AsMemory(0, read), ct).AsTask()).ConfigureAwait(false);
            hash.AppendData(buffer, 0, read);
            done += read;
            progress?.Report(new TransferProgress(done, total));
        }

        await LocalAsync(partial, () => file.FlushAsync(ct)).ConfigureAwait(false);
        if (total is { } expectedTotal && done != expectedTotal)
        {
            throw new IOException($"the connection ended after {done} of {expectedTotal} bytes");
        }

        return new Attempt(done, Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant(), metadataSha, resumed);
    }

    /// <summary>
    /// A download from the start. The first GET asks for the first range only: an object of at most one range (or a
    /// server that ignores ranges) arrives whole in that one response and is streamed as before. A larger object is
    /// fetched as ranges of <see cref="RangedDownloadOptions.PartSize"/>, up to <see cref="RangedDownloadOptions.Parallelism"/>
    /// at once: each range is read into its own buffer, written at its offset, then hashed in order once every range
    /// before it has been; memory is bounded by <c>Parallelism × PartSize</c> (64 MiB by default). Every range must
    /// answer exactly the bytes asked, of the same object (same total size and ETag; later ranges also send
    /// <c>If-Match</c>). A broken connection keeps the hashed prefix for a resume; anything else removes the partial file.
    /// </summary>
    private static async Task<Attempt> DownloadRangedAsync(HttpClient http, Uri url, string partial, RangedDownloadOptions options, IProgress<TransferProgress>? progress, CancellationToken ct)
    {
        var part = options.PartSize;
        HttpResponseMessage first;
        using (var request = new HttpRequestMessage(HttpMethod.Get, url))
        {
            request.Headers.Range = new RangeHeaderValue(0, part - 1);
            first = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
        }

        long total;
        using (first)
        {
            if (first.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
            {
                // An empty object has no first byte to ask for: one plain GET.
                first.Dispose();
                return await DownloadOnceAsync(http, url, partial, 0, progress, ct).ConfigureAwait(false);
            }

            if (!first.IsSuccessStatusCode)
            {
                throw new HttpTransferException($"download from {Describe(url)} was refused: HTTP {(int)first.StatusCode} {first.ReasonPhrase}", first.StatusCode);
            }

            if (first.StatusCode != HttpStatusCode.PartialContent)
            {
                // The server ignored the range: the whole object is in this response.
                return await ReceiveAsync(url, first, partial, 0, progress, ct).ConfigureAwait(false);
            }

            var range = first.Content.Headers.ContentRange;
            if (range is null or { HasLength: false })
            {
                // The server does not say how large the object is (a partial answer without a range is what an empty
                // object's range gets from some servers): no ranges to plan, one plain GET, verified as any other.
                first.Dispose();
                return await DownloadOnceAsync(http, url, partial, 0, progress, ct).ConfigureAwait(false);
            }

            if (range is not { HasRange: true, HasLength: true, From: 0, To: { } to, Length: { } length } || to != Math.Min(part, length) - 1)
            {
                throw new HttpTransferException($"download from {Describe(url)}: the server answered range {DescribeRange(range)}, asked for 0-{part - 1}");
            }

            total = length;
            if (total <= part)
            {
                // Small: this one GET is the whole object.
                return await ReceiveAsync(url, first, partial, 0, progress, ct).ConfigureAwait(false);
            }

            var download = new RangedDownload(http, url, partial, part, total, first.Headers.ETag,
                first.Headers.TryGetValues(Sha256MetadataHeader, out var values) ? values.FirstOrDefault() : null);
            return await download.RunAsync(first, options.Parallelism, progress, ct).ConfigureAwait(false);
        }
    }

    private static string DescribeRange(ContentRangeHeaderValue? range) => range is null
        ? "(none)"
        : string.Create(CultureInfo.InvariantCulture, $"{range.From?.ToString(CultureInfo.InvariantCulture) ?? "*"}-{range.To?.ToString(CultureInfo.InvariantCulture) ?? "*"}/{range.Length?.ToString(CultureInfo.InvariantCulture) ?? "*"}");

    /// <summary>One download of <c>total</c> bytes as parallel ranges (see <see cref="DownloadRangedAsync"/>).</summary>
    private sealed class RangedDownload(HttpClient http, Uri url, string partial, int part, long total, EntityTagHeaderValue? etag, string? metadataSha)
    {
        /// <summary>Bytes of a range read and written to the file at a time.</summary>
        private const int WriteChunk = 256 * 1024;

        private readonly ConcurrentBag<byte[]> _buffers = [];
        private readonly long _count = (total + part - 1) / part;

        public async Task<Attempt> RunAsync(HttpResponseMessage first, int parallelism, IProgress<TransferProgress>? progress, CancellationToken ct)
        {
            SafeFileHandle? opened = null;
            Local(partial, () => opened = File.OpenHandle(partial, FileMode.Create, FileAccess.ReadWrite, FileShare.None, FileOptions.Asynchronous));
            using var handle = opened!;
            using var failed = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            // A ring of the ranges in the window (the total comes from the server: nothing is sized by it).
            var ranges = new Task<(byte[] Buffer, int Length)>[parallelism];
            long launched = 0;
            long hashed = 0;
            progress?.Report(new TransferProgress(0, total));
            try
            {
                for (long next = 0; next < _count; next++)
                {
                    // The window: ranges next .. next+parallelism-1 are in flight or waiting to be hashed.
                    for (; launched < _count && launched < next + parallelism; launched++)
                    {
                        ranges[launched % parallelism] = FetchAsync(launched, launched == 0 ? first : null, handle, failed, failed.Token);
                    }

                    var (buffer, length) = await ranges[next % parallelism].ConfigureAwait(false);
                    hash.AppendData(buffer, 0, length);
                    _buffers.Add(buffer);
                    hashed += length;
                    progress?.Report(new TransferProgress(hashed, total));
                }
            }
            catch (Exception caught)
            {
                await failed.CancelAsync().ConfigureAwait(false);
                var fault = caught;
                foreach (var range in ranges)
                {
                    if (range is null)
                    {
                        continue;
                    }

                    try
                    {
                        await range.ConfigureAwait(false);
                    }
                    catch (Exception ex) when (fault is OperationCanceledException && ex is not OperationCanceledException)
                    {
                        fault = ex; // the first real fault, not the cancellation it caused
                    }
                    catch (Exception)
                    {
                        // Consequences of the first fault.
                    }
                }

                if (fault is OperationCanceledException && ct.IsCancellationRequested || IsBrokenTransfer(fault, ct))
                {
                    // Keep what was verified in order (written before it was hashed) for a resume; drop the rest.
                    try
                    {
                        RandomAccess.SetLength(handle, hashed);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        handle.Dispose();
                        File.Delete(partial);
                    }
                }
                else
                {
                    handle.Dispose();
                    try
                    {
                        File.Delete(partial);
                    }
                    catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                    {
                        // Reported below through the fault itself.
                    }
                }

                if (ReferenceEquals(fault, caught))
                {
                    throw;
                }

                ExceptionDispatchInfo.Capture(fault).Throw();
                throw;
            }

            return new Attempt(total, Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant(), metadataSha, Resumed: false);
        }

        /// <summary>Fetches range <paramref name="index"/> (from <paramref name="response"/> when given) into a buffer and writes it at its offset.</summary>
        private async Task<(byte[] Buffer, int Length)> FetchAsync(long index, HttpResponseMessage? response, SafeFileHandle handle, CancellationTokenSource failed, CancellationToken ct)
        {
            await Task.Yield();
            var start = index * part;
            var length = (int)Math.Min(part, total - start);
            var end = start + length - 1;
            var buffer = _buffers.TryTake(out var kept) ? kept : new byte[part];
            try
            {
                if (response is null)
                {
                    using var request = new HttpRequestMessage(HttpMethod.Get, url);
                    request.Headers.Range = new RangeHeaderValue(start, end);
                    if (etag is { IsWeak: false })
                    {
                        // Stores that honour it refuse a replaced object (412); the ETag is compared below anyway.
                        request.Headers.IfMatch.Add(etag);
                    }

                    response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
                }

                using (response)
                {
                    Check(response, start, end);
                    await using var body = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
                    var done = 0;
                    var written = 0;
                    while (done < length)
                    {
                        var read = await body.ReadAsync(buffer.AsMemory(done, Math.Min(length - done, WriteChunk)), ct).ConfigureAwait(false);
                        if (read == 0)
                        {
                            throw new IOException(string.Create(CultureInfo.InvariantCulture, $"the connection ended after {done} of {length} bytes of range {start}-{end}"));
                        }

                        done += read;
                        if (done - written >= WriteChunk || done == length)
                        {
                            // Written while the bytes are still in the CPU's cache: copying a whole range into the page
                            // cache after it arrived cost twice the system time (the data had left the cache).
                            var chunk = buffer.AsMemory(written, done - written);
                            var at = start + written;
                            await LocalAsync(partial, () => RandomAccess.WriteAsync(handle, chunk, at, ct).AsTask()).ConfigureAwait(false);
                            written = done;
                        }
                    }

                    var extra = new byte[1];
                    if (await body.ReadAsync(extra, ct).ConfigureAwait(false) > 0)
                    {
                        throw new HttpTransferException($"download from {Describe(url)}: the server sent more than the {length} bytes of range {start}-{end}");
                    }
                }

                return (buffer, length);
            }
            catch
            {
                _buffers.Add(buffer);
                await failed.CancelAsync().ConfigureAwait(false);
                throw;
            }
        }

        /// <summary>The answer is exactly range <paramref name="start"/>-<paramref name="end"/> of the same object.</summary>
        private void Check(HttpResponseMessage response, long start, long end)
        {
            if (response.StatusCode == HttpStatusCode.PreconditionFailed)
            {
                throw new HttpTransferException($"download from {Describe(url)}: the object changed during the download (its ETag no longer matches); nothing was written", response.StatusCode);
            }

            if (response.StatusCode != HttpStatusCode.PartialContent)
            {
                throw new HttpTransferException(response.IsSuccessStatusCode
                    ? $"download from {Describe(url)}: the server answered HTTP {(int)response.StatusCode} to a request for range {start}-{end}"
                    : $"download from {Describe(url)} was refused: HTTP {(int)response.StatusCode} {response.ReasonPhrase}", response.StatusCode);
            }

            var range = response.Content.Headers.ContentRange;
            if (range is not { HasRange: true, HasLength: true } || range.From != start || range.To != end || range.Length != total
                || response.Content.Headers.ContentLength is { } length && length != end - start + 1)
            {
                throw new HttpTransferException(string.Create(CultureInfo.InvariantCulture,
                    $"download from {Describe(url)}: the server answered range {DescribeRange(range)}, asked for {start}-{end}/{total}"));
            }

            if (etag is not null && !Equals(response.Headers.ETag, etag))
            {
                throw new HttpTransferException($"download from {Describe(url)}: the object changed during the download (its ETag no longer matches); nothing was written");
            }
        }
    }

    /// <summary>A read-only stream that hashes and counts what passes through it.</summary>
    private sealed class HashingReadStream(Stream inner, IncrementalHash hash, long length, IProgress<TransferProgress>? progress) : Stream
    {
        public long BytesRead { get; private set; }

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => length;

        public override long Position
        {
            get => BytesRead;
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var read = inner.Read(buffer);
            Account(buffer[..read]);
            return read;
        }

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            var read = await inner.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
            Account(buffer.Span[..read]);
            return read;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        private void Account(ReadOnlySpan<byte> data)
        {
            hash.AppendData(data);
            BytesRead += data.Length;
            progress?.Report(new TransferProgress(BytesRead, length));
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
