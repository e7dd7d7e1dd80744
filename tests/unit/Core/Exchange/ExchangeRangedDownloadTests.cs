using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// Downloads larger than one part are fetched as parallel ranged GETs written at their offsets, hashed in order and
/// verified before the rename; an object of one part is still one GET. Against s3rver.
/// </summary>
public sealed class ExchangeRangedDownloadTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private const int MiB = 1024 * 1024;

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-ranged-");

    public void Dispose() => _work.Delete(recursive: true);

    private (string Path, byte[] Bytes) NewFile(string name, int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        var path = Path.Combine(_work.FullName, name);
        File.WriteAllBytes(path, bytes);
        return (path, bytes);
    }

    private static string Sha(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

    [Fact]
    public async Task AMultipartObject_IsFetchedAsParallelRangesOfItsUploadPartSize_AndArrivesExactAndVerified()
    {
        const int Part = 5 * MiB;
        var (source, bytes) = NewFile("ranged.bin", 4 * Part + 12345, seed: 21); // 5 ranges, the last one short
        using var uploader = new ExchangeClient(s3.Strict.Settings, options: new ExchangeOptions { PartSize = Part, MultipartThreshold = Part });
        var upload = await uploader.UploadAsync(source);
        Assert.True(upload.Multipart);

        // The downloader's own part size is the default (16 MiB): the ranges must follow the manifest's 5 MiB.
        using var recorder = new RecordingHandler(holdUntilConcurrent: 2);
        using var http = new HttpClient(recorder);
        using var client = new ExchangeClient(s3.Strict.Settings, http: http);
        var target = Path.Combine(_work.FullName, "ranged.out");
        var reports = new List<ExchangeProgress>();

        var download = await client.DownloadAsync(upload.TransferId, target, progress: new Inline(reports.Add));

        Assert.True(download.Verified);
        Assert.False(download.Resumed);
        Assert.Equal(bytes.Length, download.Size);
        Assert.Equal(Sha(bytes), download.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(target));
        Assert.False(File.Exists(target + PresignedHttpTransfer.PartialSuffix));
        var expected = Enumerable.Range(0, 5).Select(i => $"bytes={i * (long)Part}-{Math.Min((i + 1) * (long)Part, bytes.Length) - 1}").ToList();
        Assert.Equal(expected, recorder.Ranges.OrderBy(r => long.Parse(r["bytes=".Length..r.IndexOf('-')], System.Globalization.CultureInfo.InvariantCulture)).ToList());
        Assert.True(recorder.MaxConcurrent >= 2, $"at most {recorder.MaxConcurrent} range(s) were in flight at once");
        Assert.Equal(bytes.Length, reports.Last().Done);
        Assert.True(reports.Zip(reports.Skip(1)).All(p => p.First.Done <= p.Second.Done), "progress went backwards");
    }

    [Fact]
    public async Task AnObjectOfOnePart_IsStillOneGet()
    {
        var (source, bytes) = NewFile("small.bin", 3 * MiB + 7, seed: 22);
        using var uploader = new ExchangeClient(s3.Strict.Settings);
        var upload = await uploader.UploadAsync(source);
        using var recorder = new RecordingHandler(holdUntilConcurrent: 0);
        using var http = new HttpClient(recorder);
        using var client = new ExchangeClient(s3.Strict.Settings, http: http);
        var target = Path.Combine(_work.FullName, "small.out");

        var download = await client.DownloadUrlAsync(upload.DownloadUrl, target);

        Assert.True(download.Verified);
        Assert.Equal(bytes, File.ReadAllBytes(target));
        Assert.Equal(1, recorder.Gets);
    }

    [Fact]
    public async Task AnObjectReplacedBetweenRanges_IsRefused_AndNothingIsWritten()
    {
        const int Part = 5 * MiB;
        var (source, bytes) = NewFile("replaced.bin", 3 * Part, seed: 23);
        using var uploader = new ExchangeClient(s3.Strict.Settings, options: new ExchangeOptions { PartSize = Part, MultipartThreshold = Part });
        var upload = await uploader.UploadAsync(source);
        var other = bytes.ToArray();
        other[^1] ^= 0xff; // same size, another last byte: only the ranges after the first differ
        using var raw = RawBucket.Client(s3.Strict);
        using var recorder = new RecordingHandler(holdUntilConcurrent: 0)
        {
            // The first range has arrived: the object is replaced before any other range is asked for.
            AfterFirstRange = () => raw.PutObjectAsync(new PutObjectRequest { BucketName = S3TestServer.Bucket, Key = upload.Key, InputStream = new MemoryStream(other) }),
        };
        using var http = new HttpClient(recorder);
        using var client = new ExchangeClient(s3.Strict.Settings, options: new ExchangeOptions { PartSize = Part }, http: http);
        var target = Path.Combine(_work.FullName, "replaced.out");

        var ex = await Record.ExceptionAsync(() => client.DownloadUrlAsync(upload.DownloadUrl, target, expectedSha256: upload.Sha256));

        var refused = Assert.IsType<HttpTransferException>(ex);
        Assert.Contains("changed during the download", refused.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("X-Amz-Signature", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.False(File.Exists(target));
        Assert.False(File.Exists(target + PresignedHttpTransfer.PartialSuffix));
        Assert.Contains(recorder.IfMatch, v => v.Length > 0);
    }

    public enum Fault
    {
        WrongRange,
        Oversized,
        ShortDeclared,
        WholeObject,
        OtherETag,
        FlippedByte,
        Refused,
    }

    [Theory]
    [InlineData(Fault.WrongRange)]
    [InlineData(Fault.Oversized)]
    [InlineData(Fault.ShortDeclared)]
    [InlineData(Fault.WholeObject)]
    [InlineData(Fault.OtherETag)]
    [InlineData(Fault.FlippedByte)]
    [InlineData(Fault.Refused)]
    public async Task AServerAnsweringOneRangeWrongly_IsRefused_AndNothingIsWritten(Fault fault)
    {
        var data = new byte[3 * MiB + 1000];
        new Random(24).NextBytes(data);
        using var server = new FakeRangeServer(data, fault);
        using var http = new HttpClient(server);
        var target = Path.Combine(_work.FullName, $"fake-{fault}.out");

        var ex = await Record.ExceptionAsync(() => PresignedHttpTransfer.DownloadAsync(http, new Uri("http://127.0.0.1:9/b/k?X-Amz-Signature=secret"), target, Sha(data), null,
            new RangedDownloadOptions(MiB, 3), CancellationToken.None));

        Assert.NotNull(ex);
        if (fault == Fault.FlippedByte)
        {
            Assert.IsType<ChecksumMismatchException>(ex);
        }
        else
        {
            Assert.IsType<HttpTransferException>(ex);
        }

        Assert.DoesNotContain("secret", ex.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(target));
        Assert.False(File.Exists(target + PresignedHttpTransfer.PartialSuffix));
        Assert.True(server.Ranges.Count >= 2);
    }

    [Fact]
    public async Task ARangeCutShort_KeepsTheVerifiedPrefix_AndResumesFromIt()
    {
        var data = new byte[4 * MiB + 10];
        new Random(25).NextBytes(data);
        using var server = new FakeRangeServer(data, fault: null) { CutRangeOnce = 2 };
        using var http = new HttpClient(server);
        var target = Path.Combine(_work.FullName, "cut.out");

        var outcome = await PresignedHttpTransfer.DownloadAsync(http, new Uri("http://127.0.0.1:9/b/k"), target, Sha(data), null, new RangedDownloadOptions(MiB, 2), CancellationToken.None);

        Assert.True(outcome.Verified);
        Assert.True(outcome.Resumed);
        Assert.Equal(data, File.ReadAllBytes(target));
        // The resume asks for the rest after the prefix hashed in order (range 0, and range 1 unless the cut
        // cancelled it first), not the whole object.
        Assert.Contains(server.Ranges, r => r == $"bytes={MiB}-" || r == $"bytes={2 * MiB}-");
    }

    [Fact]
    public async Task ARefusedPart_FailsTheUpload_NamingThePartAndTheStoresCode_NeverTheUrl()
    {
        const int Part = 5 * MiB;
        var (source, _) = NewFile("refused.bin", 2 * Part + 1, seed: 26);
        using var refusing = new RefusePartsHandler();
        using var http = new HttpClient(refusing);
        using var client = new ExchangeClient(s3.Strict.Settings, options: new ExchangeOptions { PartSize = Part, MultipartThreshold = Part }, http: http);

        var ex = await Record.ExceptionAsync(() => client.UploadAsync(source));

        var refused = Assert.IsType<ExchangeException>(ex);
        Assert.Matches("part [123] of", refused.Message);
        Assert.Contains("AccessDenied", refused.Message, StringComparison.Ordinal);
        Assert.Equal("AccessDenied", refused.ErrorCode);
        Assert.DoesNotContain("X-Amz-Signature", refused.Message, StringComparison.OrdinalIgnoreCase);
        Assert.True(refusing.Refused > 0);
    }

    /// <summary>Answers every UploadPart PUT like a store refusing it; passes everything else to the server.</summary>
    private sealed class RefusePartsHandler() : DelegatingHandler(new SocketsHttpHandler())
    {
        private int _refused;

        public int Refused => Volatile.Read(ref _refused);

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Put && request.RequestUri!.Query.Contains("partNumber=", StringComparison.Ordinal))
            {
                Interlocked.Increment(ref _refused);
                return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Forbidden)
                {
                    Content = new StringContent("<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code><Message>no</Message></Error>"),
                });
            }

            return base.SendAsync(request, cancellationToken);
        }
    }


    private sealed class Inline(Action<ExchangeProgress> action) : IProgress<ExchangeProgress>
    {
        public void Report(ExchangeProgress value) => action(value);
    }

    /// <summary>
    /// Passes requests to the real server and records the GETs of objects (not manifests); holds each ranged GET
    /// until <c>holdUntilConcurrent</c> of them are in flight (2 s at most), so parallelism shows deterministically.
    /// </summary>
    private sealed class RecordingHandler(int holdUntilConcurrent) : DelegatingHandler(new SocketsHttpHandler())
    {
        private int _inFlight;
        private int _max;
        private int _gets;
        private int _firstDone;

        public ConcurrentQueue<string> Ranges { get; } = new();

        public ConcurrentQueue<string> IfMatch { get; } = new();

        public int MaxConcurrent => Volatile.Read(ref _max);

        public int Gets => Volatile.Read(ref _gets);

        public Func<Task>? AfterFirstRange { get; init; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method != HttpMethod.Get || TransferNames.IsManifestKey(Uri.UnescapeDataString(request.RequestUri!.AbsolutePath).TrimStart('/')[(S3TestServer.Bucket.Length + 1)..]))
            {
                return await base.SendAsync(request, cancellationToken);
            }

            Interlocked.Increment(ref _gets);
            if (request.Headers.Range is { } range)
            {
                Ranges.Enqueue(range.ToString());
            }

            IfMatch.Enqueue(string.Join(",", request.Headers.IfMatch));
            var now = Interlocked.Increment(ref _inFlight);
            int seen;
            while (now > (seen = Volatile.Read(ref _max)) && Interlocked.CompareExchange(ref _max, now, seen) != seen)
            {
            }

            try
            {
                var deadline = DateTime.UtcNow.AddSeconds(2);
                while (Volatile.Read(ref _inFlight) < holdUntilConcurrent && Volatile.Read(ref _max) < holdUntilConcurrent && DateTime.UtcNow < deadline)
                {
                    await Task.Delay(10, cancellationToken);
                }

                var response = await base.SendAsync(request, cancellationToken);
                if (AfterFirstRange is { } after && Interlocked.Exchange(ref _firstDone, 1) == 0)
                {
                    await after();
                }

                return response;
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    /// <summary>Serves one object by ranges from memory; the range starting at 1 MiB gets the fault.</summary>
    private sealed class FakeRangeServer(byte[] data, Fault? fault) : HttpMessageHandler
    {
        private int _cut;

        public ConcurrentQueue<string> Ranges { get; } = new();

        /// <summary>The range with this index ends early once (its Content-Length announced whole).</summary>
        public int? CutRangeOnce { get; init; }

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var range = request.Headers.Range!.Ranges.Single();
            Ranges.Enqueue(request.Headers.Range.ToString());
            var from = range.From!.Value;
            var to = Math.Min(range.To ?? data.Length - 1, data.Length - 1);
            var faulty = from == MiB && fault is not null;
            var status = HttpStatusCode.PartialContent;
            var etag = "\"v1\"";
            byte[] body = data[(int)from..(int)(to + 1)];
            var (claimFrom, claimTo) = (from, to);
            if (faulty)
            {
                switch (fault)
                {
                    case Fault.WrongRange: (claimFrom, claimTo) = (from + 1, to + 1); body = data[(int)(from + 1)..(int)(to + 2)]; break;
                    case Fault.Oversized: body = data[(int)from..(int)(to + 2)]; break;
                    case Fault.ShortDeclared: body = data[(int)from..(int)to]; break;
                    case Fault.WholeObject: status = HttpStatusCode.OK; body = data; break;
                    case Fault.OtherETag: etag = "\"v2\""; break;
                    case Fault.FlippedByte: body = body.ToArray(); body[100] ^= 1; break;
                    case Fault.Refused: return Task.FromResult(new HttpResponseMessage(HttpStatusCode.Forbidden));
                }
            }

            var response = new HttpResponseMessage(status);
            response.Headers.ETag = EntityTagHeaderValue.Parse(etag);
            if (CutRangeOnce is { } cut && from == cut * (long)MiB && range.To is not null && Interlocked.Exchange(ref _cut, 1) == 0)
            {
                response.Content = new StreamContent(new MemoryStream(body, 0, body.Length / 2));
                response.Content.Headers.ContentLength = body.Length;
            }
            else
            {
                response.Content = new ByteArrayContent(body);
            }

            if (status == HttpStatusCode.PartialContent)
            {
                response.Content.Headers.ContentRange = new ContentRangeHeaderValue(claimFrom, claimTo, data.Length);
            }

            return Task.FromResult(response);
        }
    }
}
