using System.Net;
using System.Web;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EtPhoneHome.Core.Exchange;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// The exchange's own SigV4 presigner against the AWS SDK's (the same inputs give the same URL, signature included)
/// and against a signature-checking S3 endpoint.
/// </summary>
public sealed class S3PresignerTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>
{
    private static readonly string[] Keys =
    [
        "transfers/server/server_20261207_101500_app.tgz",
        "transfers/a b/ü ñ 名前.txt",
        "k/with+plus&amp=eq?q#hash;semi:colon,comma'quote\"",
        "~tilde/-_./percent%41/star*/bang!/paren()",
        "a//double/slash/",
        "emoji 🚀/tab\there",
    ];

    public static TheoryData<string, string> Endpoints => new()
    {
        { "http://127.0.0.1:9000", "auto" },
        { "https://0123456789abcdef.r2.cloudflarestorage.com", "auto" },
        { "https://s3.example.com:8443", "us-east-1" },
        { "http://localhost", "eu-central-1" },
        { "http://[::1]:9000", "auto" },
    };

    [Theory]
    [MemberData(nameof(Endpoints))]
    public void TheUrl_IsTheSdksForTheSameInputs(string endpoint, string region)
    {
        var settings = new ExchangeSettings(new Uri(endpoint), "eph-bucket", "AKIAEXAMPLEKEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", region);
        using var sdk = new AmazonS3Client(new BasicAWSCredentials(settings.AccessKey, settings.SecretKey), new AmazonS3Config
        {
            ServiceURL = settings.Endpoint.GetLeftPart(UriPartial.Authority),
            ForcePathStyle = true,
            AuthenticationRegion = settings.Region,
            UseHttp = settings.Endpoint.Scheme == Uri.UriSchemeHttp,
        });
        var ours = For(settings);
        var compared = 0;
        foreach (var key in Keys)
        {
            foreach (var verb in new[] { HttpVerb.GET, HttpVerb.HEAD, HttpVerb.PUT, HttpVerb.DELETE })
            {
                var request = new GetPreSignedUrlRequest
                {
                    BucketName = settings.Bucket,
                    Key = key,
                    Verb = verb,
                    Expires = DateTime.UtcNow.AddHours(6),
                    Protocol = settings.Endpoint.Scheme == Uri.UriSchemeHttp ? Amazon.S3.Protocol.HTTP : Amazon.S3.Protocol.HTTPS,
                };
                List<KeyValuePair<string, string>>? sub = null;
                if (verb == HttpVerb.PUT && key.Length % 2 == 0)
                {
                    request.UploadId = "2~Vk.x-_aB/+=Qz";
                    request.PartNumber = 7;
                    sub = [new("partNumber", "7"), new("uploadId", "2~Vk.x-_aB/+=Qz")];
                }

                var expected = new Uri(sdk.GetPreSignedURL(request));
                var query = HttpUtility.ParseQueryString(expected.Query);
                var signedAt = DateTimeOffset.ParseExact(query["X-Amz-Date"]!, "yyyyMMdd'T'HHmmss'Z'", null, System.Globalization.DateTimeStyles.AssumeUniversal);
                var actual = ours.Presign(verb.ToString(), key, signedAt, signedAt.AddSeconds(long.Parse(query["X-Amz-Expires"]!)), sub);

                Assert.Equal(expected.GetLeftPart(UriPartial.Path), actual.GetLeftPart(UriPartial.Path));
                Assert.Equal(expected.AbsolutePath, actual.AbsolutePath);
                Assert.Equal(Parameters(expected), Parameters(actual));
                compared++;
            }
        }

        Assert.Equal(Keys.Length * 4, compared);
    }

    [Fact]
    public async Task ASignatureCheckingEndpoint_AcceptsItsUrls_AndRefusesATamperedOne()
    {
        var settings = s3.Strict.Settings;
        var presigner = For(settings);
        using var http = new HttpClient();
        var key = $"transfers/presigner-test/{Guid.NewGuid():N} ü+&.bin";
        var body = new byte[] { 1, 2, 3, 4, 5 };
        var now = DateTimeOffset.UtcNow;

        using (var put = await http.PutAsync(presigner.Presign("PUT", key, now, now.AddHours(1)), new ByteArrayContent(body)))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        Assert.Equal(body, await http.GetByteArrayAsync(presigner.Presign("GET", key, now, now.AddHours(1))));
        using (var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, presigner.Presign("HEAD", key, now, now.AddHours(1)))))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(body.Length, head.Content.Headers.ContentLength);
        }

        // Another key under the same signature, a changed expiry, or another secret: refused.
        var good = presigner.Presign("GET", key, now, now.AddHours(1)).ToString();
        var otherKey = good.Replace("presigner-test", "presigner-tesT", StringComparison.Ordinal);
        var longer = good.Replace("X-Amz-Expires=3600", "X-Amz-Expires=3601", StringComparison.Ordinal);
        var foreign = new S3Presigner(settings.Endpoint, settings.Bucket, settings.AccessKey, "not-the-secret", settings.Region).Presign("GET", key, now, now.AddHours(1));
        foreach (var url in new[] { new Uri(otherKey), new Uri(longer), foreign })
        {
            using var refused = await http.GetAsync(url);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        }

        using var delete = await http.DeleteAsync(presigner.Presign("DELETE", key, now, now.AddHours(1)));
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
    }

    [Fact]
    public async Task AHeaderSignedRequest_IsAccepted_AndRefusedWhenASignedHeaderChanges()
    {
        var signer = For(s3.Strict.Settings);
        using var http = new HttpClient();
        var key = $"transfers/signed-test/{Guid.NewGuid():N} ü+&.json";
        var body = "{\"a\":1}"u8.ToArray();
        KeyValuePair<string, string>[] meta = [new("x-amz-meta-source_client", "server"), new("x-amz-meta-sha256", "ab  cd")];

        using (var put = await http.SendAsync(signer.CreateRequest(HttpMethod.Put, key, DateTimeOffset.UtcNow, [], meta, body, "application/json")))
        {
            Assert.Equal(HttpStatusCode.OK, put.StatusCode);
        }

        var now = DateTimeOffset.UtcNow;
        using (var head = await http.SendAsync(new HttpRequestMessage(HttpMethod.Head, signer.Presign("HEAD", key, now, now.AddHours(1)))))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("server", head.Headers.GetValues("x-amz-meta-source_client").Single());
            Assert.Equal(body.Length, head.Content.Headers.ContentLength);
        }

        // A signed header changed on the way (the date, a metadata value), or the request sent to another key: refused,
        // and the object stays as it was.
        var changedDate = signer.CreateRequest(HttpMethod.Put, key, DateTimeOffset.UtcNow, [], meta, "{\"a\":2}"u8.ToArray(), "application/json");
        var stamp = changedDate.Headers.GetValues("x-amz-date").Single();
        changedDate.Headers.Remove("x-amz-date");
        changedDate.Headers.TryAddWithoutValidation("x-amz-date", stamp[..^2] + (stamp[^2] == '0' ? "1" : "0") + "Z");
        var changedMeta = signer.CreateRequest(HttpMethod.Put, key, DateTimeOffset.UtcNow, [], meta, "{\"a\":2}"u8.ToArray(), "application/json");
        changedMeta.Headers.Remove("x-amz-meta-sha256");
        changedMeta.Headers.TryAddWithoutValidation("x-amz-meta-sha256", "ee ff");
        var otherKey = signer.CreateRequest(HttpMethod.Put, key, DateTimeOffset.UtcNow, [], meta, "{\"a\":2}"u8.ToArray(), "application/json");
        otherKey.RequestUri = new Uri(otherKey.RequestUri!.ToString().Replace("signed-test", "signed-tesT", StringComparison.Ordinal));
        foreach (var (what, request) in new[] { ("date", changedDate), ("metadata", changedMeta), ("key", otherKey) })
        {
            using var refused = await http.SendAsync(request);
            Assert.True(refused.StatusCode == HttpStatusCode.Forbidden, $"a changed {what} was answered {refused.StatusCode}");
        }

        Assert.Equal(body, await http.GetByteArrayAsync(signer.Presign("GET", key, now, now.AddHours(1))));
    }

    [Theory]
    [InlineData("X-Amz-Meta-Upper", "v")]
    [InlineData("x-amz-meta-a b", "v")]
    [InlineData("x-amz-meta-crlf", "v\r\nx-injected: 1")]
    [InlineData("x-amz-meta-utf8", "résumé")]
    [InlineData("authorization", "AWS4-HMAC-SHA256 Credential=someone-else")]
    [InlineData("x-amz-date", "20000101T000000Z")]
    [InlineData("host", "elsewhere.example")]
    public void AHeaderThatCannotBeSentAsSigned_IsRefused(string name, string value)
    {
        var signer = new S3Presigner(new Uri("http://127.0.0.1:9000"), "b", "a", "s", "auto");
        Assert.Throws<ArgumentException>(() => signer.CreateRequest(HttpMethod.Put, "k", DateTimeOffset.UtcNow, [], [new(name, value)], Array.Empty<byte>()));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-5)]
    [InlineData(7 * 24 * 3600 + 1)]
    public void AValidityOutsideOneSecondToSevenDays_IsRefused(int seconds)
    {
        var presigner = new S3Presigner(new Uri("http://127.0.0.1:9000"), "b", "a", "s", "auto");
        var now = DateTimeOffset.UtcNow;
        Assert.Throws<ArgumentOutOfRangeException>(() => presigner.Presign("GET", "k", now, now.AddSeconds(seconds)));
    }

    [Fact]
    public void TheSecret_NeverAppearsInTheUrl()
    {
        var presigner = new S3Presigner(new Uri("https://r2.example.com"), "b", "AKIAID", "super-secret-value", "auto");
        var now = DateTimeOffset.UtcNow;
        var url = presigner.Presign("GET", "transfers/x", now, now.AddHours(1)).ToString();
        Assert.DoesNotContain("super-secret-value", url, StringComparison.Ordinal);
        Assert.Contains("X-Amz-Credential=AKIAID%2F", url, StringComparison.Ordinal);
    }

    private static S3Presigner For(ExchangeSettings settings) =>
        new(settings.Endpoint, settings.Bucket, settings.AccessKey, settings.SecretKey, settings.Region);

    /// <summary>The query's parameters, decoded and in order (the SDK leaves an upload id's '/', '+', '=' unescaped in its URL).</summary>
    private static string Parameters(Uri url) =>
        string.Join('&', url.Query.TrimStart('?').Split('&').Select(p => string.Join('=', p.Split('=', 2).Select(Uri.UnescapeDataString))).Order(StringComparer.Ordinal));
}
