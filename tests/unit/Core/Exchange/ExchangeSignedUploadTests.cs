using System.Net;
using System.Text;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// Uploads sign their own requests (start, parts, manifest, completion, abort): what a signature-checking endpoint
/// and a misbehaving one make of them.
/// </summary>
public sealed class ExchangeSignedUploadTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-signed-upload-");

    public void Dispose() => _work.Delete(recursive: true);

    private static readonly ExchangeOptions Small = new() { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024, Parallelism = 2 };

    private string NewFile(int size)
    {
        var path = Path.Combine(_work.FullName, $"f-{size}.bin");
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData(100_000)]
    [InlineData(11 * 1024 * 1024)]
    public async Task AWrongSecret_IsRefusedWithTheEndpointsCode_NeverShowingTheSecret(int size)
    {
        var good = s3.Strict.Settings;
        var wrong = new ExchangeSettings(good.Endpoint, good.Bucket, good.AccessKey, "the-wrong-secret-value", good.Region);
        using var data = new TempData();
        using var registry = SqliteRegistry.Open(data.Dir);
        using var client = new ExchangeClient(wrong, new OperationGuard(registry, new OperatorContext("tester", Surfaces.Cli)), Small);

        var ex = await Assert.ThrowsAsync<ExchangeException>(() => client.UploadAsync(NewFile(size)));

        // The history says why, by the endpoint's code.
        var failed = Assert.Single(registry.ListAudit(limit: 10), a => a.Operation == "exchange_upload");
        Assert.Equal("failed", failed.Status);
        Assert.Contains("SignatureDoesNotMatch", failed.Detail ?? "", StringComparison.Ordinal);

        Assert.Equal("SignatureDoesNotMatch", ex.ErrorCode);
        Assert.Contains("(HTTP 403)", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("the-wrong-secret-value", ex.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("X-Amz-Signature", ex.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task ACompletionAnsweredWithAnErrorInsideA200_FailsTheUpload_AndAbortsIt()
    {
        using var handler = new ErrorInsideOk();
        using var http = new HttpClient(handler);
        using var client = new ExchangeClient(s3.Lenient.Settings, options: Small, http: http); // lenient: its listing works with the SDK
        var before = (await client.ListAsync()).Count;

        var ex = await Assert.ThrowsAsync<ExchangeException>(() => client.UploadAsync(NewFile(11 * 1024 * 1024)));

        Assert.Equal("InternalError", ex.ErrorCode);
        Assert.Contains("completion of the multipart upload", ex.Message, StringComparison.Ordinal);
        Assert.NotNull(handler.AbortAnswer); // sent (the test endpoint has no AbortMultipartUpload: 405)
        Assert.Equal(HttpStatusCode.NoContent, handler.ManifestRemovalAnswer); // and the manifest removed all the same
        Assert.Equal(before, (await client.ListAsync()).Count);
    }

    [Fact]
    public async Task AStartAnsweredWithoutXml_IsAClearError()
    {
        using var http = new HttpClient(new StartNotXml());
        using var client = new ExchangeClient(s3.Strict.Settings, options: Small, http: http);

        var ex = await Assert.ThrowsAsync<ExchangeException>(() => client.UploadAsync(NewFile(11 * 1024 * 1024)));

        Assert.Contains("not XML", ex.Message, StringComparison.Ordinal);
    }

    /// <summary>Passes everything to the endpoint, but answers the completion 200 with an S3 error document.</summary>
    [Fact]
    public async Task AStagedSinglePut_CarriesItsSignedMetadata_AndTheUrlsHolderCannotChangeIt()
    {
        // The URL an operator elsewhere receives: its metadata (the hash included) is part of the signature.
        using var client = new ExchangeClient(s3.Strict.Settings, options: Small);
        var bytes = Encoding.UTF8.GetBytes("staged by the server, sent by someone else");
        var sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)).ToLowerInvariant();
        var staged = await client.StartStagedUploadAsync("note.txt", bytes.Length, sha, null, 1, ExchangeLimits.ServerSource);
        Assert.False(staged.Multipart);
        var url = client.PresignStagedPart(staged, 1);
        using var http = new HttpClient();

        // A changed hash, a dropped header, an added one: each refused by the endpoint, nothing stored.
        foreach (var tamper in new Func<List<KeyValuePair<string, string>>, List<KeyValuePair<string, string>>>[]
        {
            h => [.. h.Select(p => p.Key == "x-amz-meta-sha256" ? new(p.Key, new string('0', 64)) : p)],
            h => [.. h.Where(p => p.Key != "x-amz-meta-sha256")],
        })
        {
            using var bad = new HttpRequestMessage(HttpMethod.Put, url) { Content = new ByteArrayContent(bytes) };
            foreach (var (name, value) in tamper([.. staged.Headers]))
            {
                bad.Headers.TryAddWithoutValidation(name, value);
            }

            using var refused = await http.SendAsync(bad);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        await Assert.ThrowsAsync<ExchangeException>(() => client.CompleteStagedUploadAsync(staged, sha, [], verifyArrival: true));

        // Sent as signed, it completes, and a download verifies it against the signed hash.
        var again = await client.StartStagedUploadAsync("note.txt", bytes.Length, sha, null, 1, ExchangeLimits.ServerSource);
        using var good = new HttpRequestMessage(HttpMethod.Put, client.PresignStagedPart(again, 1)) { Content = new ByteArrayContent(bytes) };
        foreach (var (name, value) in again.Headers)
        {
            good.Headers.TryAddWithoutValidation(name, value);
        }

        using (var stored = await http.SendAsync(good))
        {
            Assert.True(stored.IsSuccessStatusCode, stored.StatusCode.ToString());
        }

        var done = await client.CompleteStagedUploadAsync(again, sha, [], verifyArrival: true);
        Assert.Equal(sha, (await client.GetTransferInfoAsync(done.TransferId))?.Sha256);
        var target = Path.Combine(_work.FullName, "back.txt");
        Assert.True((await client.DownloadAsync(done.TransferId, target)).Verified);
        Assert.Equal(bytes, File.ReadAllBytes(target));
    }

    [Theory]
    [InlineData(1000)]
    [InlineData(11 * 1024 * 1024)]
    public async Task TwoUploadsOfOneNameInOneSecond_AreTwoTransfers_NeitherReplacesTheOther(int size)
    {
        // The clock stands still: both uploads would get the same <source>_<second>_<name> id.
        var clock = new ManualTime(DateTimeOffset.UtcNow);
        using var client = new ExchangeClient(s3.Strict.Settings, options: Small, time: clock);
        var one = Path.Combine(Directory.CreateDirectory(Path.Combine(_work.FullName, "one")).FullName, "same.bin");
        var two = Path.Combine(Directory.CreateDirectory(Path.Combine(_work.FullName, "two")).FullName, "same.bin");
        File.WriteAllBytes(one, Enumerable.Repeat((byte)1, size).ToArray());
        File.WriteAllBytes(two, Enumerable.Repeat((byte)2, size).ToArray());

        var first = await client.UploadAsync(one);
        var second = await client.UploadAsync(two);
        var open = await Task.WhenAll(
            client.StartStagedUploadAsync("same.bin", 3, new string('a', 64), null, 1, ExchangeLimits.ServerSource),
            client.StartStagedUploadAsync("same.bin", 3, new string('a', 64), null, 1, ExchangeLimits.ServerSource));

        Assert.Equal(4, new[] { first.TransferId, second.TransferId, open[0].TransferId, open[1].TransferId }.Distinct().Count());
        foreach (var (upload, source) in new[] { (first, one), (second, two) })
        {
            var back = Path.Combine(_work.FullName, "back-" + Guid.NewGuid().ToString("N"));
            Assert.True((await client.DownloadAsync(upload.TransferId, back)).Verified);
            Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(back));
        }

        foreach (var staged in open)
        {
            await client.AbortStagedUploadAsync(staged, null, cancelled: true);
        }
    }

    [Fact]
    public async Task AnAbortedUpload_NeverRemovesAnObjectAnotherWriterPutAtItsKey()
    {
        // Another process (a second hub, the server host's CLI) completed a transfer at the key this upload was given:
        // this upload's abort — its PUT refused by If-None-Match, say — must leave that object alone.
        using var client = new ExchangeClient(s3.Strict.Settings, options: Small);
        var theirs = await client.UploadAsync(NewFile(2000));
        var mine = new ExchangeStagedUpload(theirs.TransferId, theirs.Key, theirs.FileName, ExchangeLimits.ServerSource, null, 2000, theirs.ExpiresAt,
            2000, 1, null, nonce: "0123456789abcdef0123456789abcdef", sha256: new string('b', 64), headers: [], lease: null);

        await client.AbortStagedUploadAsync(mine, new ExchangeException("PreconditionFailed", "PreconditionFailed"), cancelled: false, removeObject: true);

        Assert.Equal(theirs.Sha256, (await client.GetTransferInfoAsync(theirs.TransferId))?.Sha256);
    }

    [Fact]
    public async Task AnUploadCompletedAfterItsTransferExpired_HandsOutNothing_AndSaysWhy()
    {
        // Lenient endpoint: the test's clock runs ahead of the endpoint's, which a signature-checking one would refuse.
        var clock = new ManualTime(DateTimeOffset.UtcNow);
        using var data = new TempData();
        using var registry = SqliteRegistry.Open(data.Dir);
        using var client = new ExchangeClient(s3.Lenient.Settings, new OperationGuard(registry, new OperatorContext("tester", Surfaces.Cli)), Small, time: clock);
        var bytes = Encoding.UTF8.GetBytes("late");
        var sha = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(bytes)).ToLowerInvariant();
        var staged = await client.StartStagedUploadAsync("late.txt", bytes.Length, sha, null, 1, ExchangeLimits.ServerSource);
        using (var http = new HttpClient())
        {
            using var put = new HttpRequestMessage(HttpMethod.Put, client.PresignStagedPart(staged, 1)) { Content = new ByteArrayContent(bytes) };
            foreach (var (name, value) in staged.Headers)
            {
                put.Headers.TryAddWithoutValidation(name, value);
            }

            (await http.SendAsync(put)).EnsureSuccessStatusCode();
        }

        clock.Advance(TimeSpan.FromHours(1) + TimeSpan.FromSeconds(1));
        var ex = await Assert.ThrowsAsync<ExchangeException>(() => client.CompleteStagedUploadAsync(staged, sha, [], verifyArrival: true));

        // (The removal of what arrived is best effort; with this test's clock an hour ahead the endpoint refuses it, as it
        // refuses any request dated an hour from now. On a true clock it goes through; the lifecycle rule is the backstop.)
        Assert.Equal("UploadExpired", ex.ErrorCode);
        Assert.Contains("expired", ex.Message, StringComparison.Ordinal);
        var recorded = Assert.Single(registry.ListAudit(limit: 10), a => a.Operation == "exchange_upload");
        Assert.Equal("failed", recorded.Status);
        Assert.Contains("UploadExpired", recorded.Detail ?? "", StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("report:stream.txt")]
    [InlineData("invoice\u202Etxt.exe")]
    [InlineData("a\u0007b")]
    public void AFileNameWithAStreamSeparatorOrFormatCharacters_IsRefused(string escaped)
    {
        var name = System.Text.RegularExpressions.Regex.Unescape(escaped);
        var refused = Assert.Throws<ArgumentException>(() => TransferNames.CheckFileName(name));
        Assert.DoesNotContain('\u202E', refused.Message);
        Assert.DoesNotContain('\u0007', refused.Message);
    }

    private sealed class ErrorInsideOk() : DelegatingHandler(new SocketsHttpHandler())
    {
        public HttpStatusCode? AbortAnswer { get; private set; }

        public HttpStatusCode? ManifestRemovalAnswer { get; private set; }

        protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            if (request.Method == HttpMethod.Post && request.RequestUri!.Query.Contains("uploadId=", StringComparison.Ordinal))
            {
                return new HttpResponseMessage(HttpStatusCode.OK)
                {
                    Content = new StringContent("<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>", Encoding.UTF8, "application/xml"),
                };
            }

            var response = await base.SendAsync(request, cancellationToken);
            if (request.Method == HttpMethod.Delete)
            {
                if (request.RequestUri!.Query.Contains("uploadId=", StringComparison.Ordinal))
                {
                    AbortAnswer = response.StatusCode;
                }
                else
                {
                    ManifestRemovalAnswer = response.StatusCode;
                }
            }

            return response;
        }
    }

    /// <summary>Answers the start of a multipart upload with 200 and HTML.</summary>
    private sealed class StartNotXml() : DelegatingHandler(new SocketsHttpHandler())
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
            request.Method == HttpMethod.Post
                ? Task.FromResult(new HttpResponseMessage(HttpStatusCode.OK) { Content = new StringContent("<html><body>proxy login</body>") })
                : base.SendAsync(request, cancellationToken);
    }
}
