using System.Security.Cryptography;
using System.Text;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>Metadata values are ASCII on the wire (RFC 2047 for anything else) and read back as written.</summary>
public sealed class ExchangeMetadataTests
{
    [Theory]
    [InlineData("résumé.txt")]
    [InlineData("данные.csv")]
    [InlineData("報告.pdf")]
    [InlineData("résumé 報告.txt")]
    [InlineData("emoji 📦.tgz")]
    [InlineData("=?UTF-8?B?looks-encoded?=")]
    public void NonAsciiOrEncodedLookingValue_IsSentAsAsciiAndReadsBackTheSame(string name)
    {
        var wire = ExchangeMetadata.Encode(name);

        Assert.All(wire, c => Assert.InRange(c, ' ', '~'));
        Assert.StartsWith("=?UTF-8?B?", wire, StringComparison.Ordinal);
        Assert.True(ExchangeMetadata.TryDecode(wire, out var back));
        Assert.Equal(name, back);
        Assert.Equal(name, ExchangeMetadata.FileName(wire));
    }

    [Theory]
    [InlineData("app.tgz")]
    [InlineData("with space & (parens) ?.txt")]
    [InlineData("")]
    public void PrintableAscii_IsSentUnchanged(string value)
    {
        Assert.Equal(value, ExchangeMetadata.Encode(value));
        Assert.True(ExchangeMetadata.TryDecode(value, out var back));
        Assert.Equal(value, back);
    }

    [Fact]
    public void OldObjectsPlainAsciiName_ReadsBackAsItIs()
    {
        Assert.Equal("report-2024.csv", ExchangeMetadata.FileName("report-2024.csv"));
    }

    [Theory]
    [InlineData("=?UTF-8?B?csOpc3Vtw6k=?=", "résumé")] // as S3 returns it: base64 of the UTF-8 bytes
    [InlineData("=?utf-8?b?csOpc3Vtw6k=?=", "résumé")]
    [InlineData("=?UTF-8?Q?r=C3=A9sum=C3=A9_2.txt?=", "résumé 2.txt")]
    [InlineData("=?UTF-8?B?csOp?= =?UTF-8?B?c3Vtw6k=?=", "résumé")] // adjacent words: the space between is ignored
    public void EncodedWordsFromOtherWriters_Decode(string wire, string expected)
    {
        Assert.True(ExchangeMetadata.TryDecode(wire, out var back));
        Assert.Equal(expected, back);
    }

    [Theory]
    [InlineData("=?UTF-8?B?not base64?=")]
    [InlineData("=?UTF-8?B?abc?=")] // length not a multiple of 4
    [InlineData("=?UTF-8?B?/w==?=")] // 0xFF: not UTF-8
    [InlineData("=?ISO-8859-1?B?6Q==?=")] // a charset this reader does not speak
    [InlineData("=?UTF-8?X?abcd?=")]
    [InlineData("=?UTF-8?B?YWJj")] // unterminated
    [InlineData("=?UTF-8?Q?a=4?=")]
    [InlineData("=?UTF-8?B?YWJj?= trailing")]
    public void MalformedEncoding_IsRefusedCleanly(string wire)
    {
        Assert.False(ExchangeMetadata.TryDecode(wire, out var back));
        Assert.Null(back);
        Assert.Null(ExchangeMetadata.FileName(wire));
    }

    [Theory]
    [InlineData("../../etc/passwd")]
    [InlineData("..")]
    [InlineData("dir/name.txt")]
    [InlineData("dir\\name.txt")]
    [InlineData("bell\a.txt")]
    [InlineData("esc\u001b[2J.txt")]
    [InlineData("line\nbreak.txt")]
    public void HostileNameInsideAnEncoding_IsRefusedByTheNameRules(string hostile)
    {
        var wire = "=?UTF-8?B?" + Convert.ToBase64String(Encoding.UTF8.GetBytes(hostile)) + "?=";

        Assert.True(ExchangeMetadata.TryDecode(wire, out _));
        Assert.Null(ExchangeMetadata.FileName(wire));
    }

    [Fact]
    public void OverLongNameInsideAnEncoding_IsRefused()
    {
        var wire = ExchangeMetadata.Encode(new string('é', 201));

        Assert.Null(ExchangeMetadata.FileName(wire));
        Assert.NotNull(ExchangeMetadata.FileName(ExchangeMetadata.Encode(new string('é', 200))));
    }
}

/// <summary>End to end against s3rver: a non-ASCII file name goes up, comes down and is listed intact.</summary>
public sealed class ExchangeNonAsciiNameTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private const string Name = "résumé 報告.txt";
    private const string Source = "0ld0b1ec-1111-2222-3333-444455556666";

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-names-");

    public void Dispose() => _work.Delete(recursive: true);

    private (string Path, byte[] Bytes) NewFile(string dir, int size)
    {
        var bytes = new byte[size];
        new Random(11).NextBytes(bytes);
        var path = Path.Combine(_work.CreateSubdirectory(dir).FullName, Name);
        File.WriteAllBytes(path, bytes);
        return (path, bytes);
    }


    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task NonAsciiName_UploadsDownloadsAndListsIntact(bool multipart)
    {
        var (source, bytes) = NewFile(multipart ? "multi" : "single", multipart ? (6 * 1024 * 1024) + 17 : 70_000);
        var options = new ExchangeOptions { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024, Parallelism = 2 };
        using var client = new ExchangeClient(s3.Strict.Settings, options: options);

        var upload = await client.UploadAsync(source, destClient: "c0ffee00-1111-2222-3333-444455556666");

        Assert.Equal(multipart, upload.Multipart);
        Assert.Equal(Name, upload.FileName);
        Assert.EndsWith("_" + Name, upload.TransferId, StringComparison.Ordinal);

        // By id into a directory: the file keeps its name.
        var byId = _work.CreateSubdirectory(multipart ? "by-id-m" : "by-id-s").FullName;
        var down = await client.DownloadAsync(upload.TransferId, byId);
        Assert.Equal(Path.Combine(byId, Name), down.LocalPath);
        Assert.True(down.Verified);
        Assert.Equal(bytes, File.ReadAllBytes(down.LocalPath));

        // By presigned URL into a directory.
        var byUrl = _work.CreateSubdirectory(multipart ? "by-url-m" : "by-url-s").FullName;
        var viaUrl = await client.DownloadUrlAsync(upload.DownloadUrl, byUrl);
        Assert.Equal(Path.Combine(byUrl, Name), viaUrl.LocalPath);
        Assert.True(viaUrl.Verified);
        Assert.Equal(upload.Sha256, Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(viaUrl.LocalPath))).ToLowerInvariant());

        // On the wire the header is ASCII (listings of it: the next test).
        using var raw = RawBucket.Client(s3.Strict);
        var head = await raw.GetObjectMetadataAsync(S3TestServer.Bucket, upload.Key);
        Assert.Equal(ExchangeMetadata.Encode(Name), head.Metadata["filename"]);
    }

    [Fact]
    public async Task Listing_ShowsNonAsciiAndOldNames_NeverAHostileOne()
    {
        // Listings run on the lenient server: s3rver refuses the SDK's signature of any bucket-level request (S3TestServer).
        using var raw = RawBucket.Client(s3.Lenient);
        using var client = new ExchangeClient(s3.Lenient.Settings);
        var (source, _) = NewFile("listed", 1000);
        var upload = await client.UploadAsync(source, sourceClient: Source);
        Assert.Equal(Name, Assert.Single(await client.ListAsync(Source), o => o.TransferId == upload.TransferId).Metadata["filename"]);

        async Task<IReadOnlyDictionary<string, string>> PutAndList(string transferId, string headerValue)
        {
            var request = new PutObjectRequest { BucketName = S3TestServer.Bucket, Key = TransferNames.KeyOf(transferId), InputStream = new MemoryStream([1, 2, 3]) };
            request.Metadata.Add("filename", headerValue);
            await raw.PutObjectAsync(request);
            return Assert.Single(await client.ListAsync(Source), o => o.TransferId == transferId).Metadata;
        }

        // Written by a version before the encoding: plain ASCII, read back as it is.
        Assert.Equal("old.bin", (await PutAndList($"{Source}_20240101_000000_old.bin", "old.bin"))["filename"]);

        // A name that decodes to a path or to terminal controls, or does not decode: left out, never shown raw.
        var hostile = "=?UTF-8?B?" + Convert.ToBase64String(Encoding.UTF8.GetBytes("../\u001b[2Jx")) + "?=";
        Assert.False((await PutAndList($"{Source}_20240101_000001_h.bin", hostile)).ContainsKey("filename"));
        Assert.False((await PutAndList($"{Source}_20240101_000002_m.bin", "=?UTF-8?B?%%%?=")).ContainsKey("filename"));
    }
}
