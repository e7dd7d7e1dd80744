using System.Net;
using System.Security.Cryptography;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// A download into a directory names the file after the transfer id in the URL's key. That key is unescaped text from
/// whoever wrote the URL: a '%2F' in it must not become a directory, or a URL handed to an operator would place the
/// file outside the directory they chose.
/// </summary>
public sealed class ExchangeDownloadNameTests : IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-name-");

    public void Dispose() => _work.Delete(recursive: true);

    [Theory]
    [InlineData("src_20260101_000000_..%2F..%2Fescaped.txt")]
    [InlineData("src_20260101_000000_sub%2F..%2F..%2F..%2Fescaped.txt")]
    public async Task AKeyHidingDirectories_LandsInTheChosenDirectory_NeverAbove(string transferId)
    {
        var bytes = "the object's bytes\n"u8.ToArray();
        using var http = new HttpClient(new OneObject(bytes));
        using var client = new ExchangeClient(new ExchangeSettings(new Uri("http://127.0.0.1:1"), S3TestServer.Bucket, "k", "s"), http: http);
        var chosen = Directory.CreateDirectory(Path.Combine(_work.FullName, "a", "b", "chosen"));
        var url = new Uri($"http://storage.invalid/{S3TestServer.Bucket}/transfers/src/{transferId}?X-Amz-Signature=0");

        var result = await client.DownloadUrlAsync(url, chosen.FullName, allowAnyHost: true,
            expectedSha256: Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant());

        Assert.Equal(Path.Combine(chosen.FullName, "escaped.txt"), result.LocalPath);
        Assert.Equal(bytes, File.ReadAllBytes(result.LocalPath));
        Assert.Equal([result.LocalPath], Directory.GetFiles(_work.FullName, "*", SearchOption.AllDirectories));
    }

    /// <summary>Answers every GET with the same small object.</summary>
    private sealed class OneObject(byte[] bytes) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var response = new HttpResponseMessage(HttpStatusCode.OK) { Content = new ByteArrayContent(bytes) };
            response.Content.Headers.ContentLength = bytes.Length;
            response.Headers.ETag = new System.Net.Http.Headers.EntityTagHeaderValue("\"e1\"");
            return Task.FromResult(response);
        }
    }
}
