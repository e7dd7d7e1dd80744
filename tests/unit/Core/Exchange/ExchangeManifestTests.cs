using System.Security.Cryptography;
using System.Text;
using Amazon.Runtime;
using Amazon.S3;
using Amazon.S3.Model;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// A multipart upload's SHA-256 lives in a manifest object: downloads verify against it, refuse a tampered object
/// or manifest (nothing at the destination), listings hide it, a delete removes it with its object.
/// </summary>
public sealed class ExchangeManifestTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private static readonly ExchangeOptions SmallParts = new() { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024, Parallelism = 2 };

    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-manifest-");

    public void Dispose() => _work.Delete(recursive: true);

    private (string Path, byte[] Bytes) NewFile(string name, int size, int seed)
    {
        var bytes = new byte[size];
        new Random(seed).NextBytes(bytes);
        var path = Path.Combine(_work.FullName, name);
        File.WriteAllBytes(path, bytes);
        return (path, bytes);
    }


    private static async Task PutAsync(AmazonS3Client raw, string key, byte[] body, MetadataCollection? metadata = null)
    {
        var request = new PutObjectRequest { BucketName = S3TestServer.Bucket, Key = key, InputStream = new MemoryStream(body) };
        foreach (var name in metadata?.Keys ?? [])
        {
            request.Metadata.Add(name, metadata![name]);
        }

        await raw.PutObjectAsync(request);
    }

    private static async Task<string> ReadAsync(AmazonS3Client raw, string key)
    {
        using var response = await raw.GetObjectAsync(S3TestServer.Bucket, key);
        using var reader = new StreamReader(response.ResponseStream);
        return await reader.ReadToEndAsync();
    }

    private void AssertNothingAt(string target)
    {
        Assert.False(File.Exists(target), $"{target} exists");
        Assert.False(File.Exists(target + PresignedHttpTransfer.PartialSuffix), $"{target}.partial exists");
    }

    [Fact]
    public async Task MultipartUpload_WritesAManifest_TheObjectNamesIt_AndDownloadsVerifyAgainstIt()
    {
        var (path, bytes) = NewFile("m.bin", 11 * 1024 * 1024 + 7, seed: 21);
        using var client = new ExchangeClient(s3.Strict.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Strict);

        var upload = await client.UploadAsync(path);

        var head = await raw.GetObjectMetadataAsync(S3TestServer.Bucket, upload.Key);
        Assert.Null(head.Metadata["x-amz-meta-sha256"]);
        var nonce = head.Metadata["x-amz-meta-sha256_manifest"];
        Assert.Matches("^[0-9a-f]{32}$", nonce);
        var manifest = await ReadAsync(raw, "transfers/.manifest/server/" + upload.TransferId);
        Assert.Contains($"\"sha256\":\"{upload.Sha256}\"", manifest, StringComparison.Ordinal);
        Assert.Contains($"\"nonce\":\"{nonce}\"", manifest, StringComparison.Ordinal);

        var byId = await client.DownloadAsync(upload.TransferId, Path.Combine(_work.FullName, "by-id.out"));
        var byUrl = await client.DownloadUrlAsync(upload.DownloadUrl, Path.Combine(_work.FullName, "by-url.out"));

        Assert.True(byId.Verified);
        Assert.True(byUrl.Verified);
        Assert.Equal(bytes, File.ReadAllBytes(byUrl.LocalPath));
    }

    [Fact]
    public async Task TamperedObject_SameSizeAndMetadata_IsRefused_NothingAtTheDestination()
    {
        var (path, bytes) = NewFile("t.bin", 11 * 1024 * 1024, seed: 22);
        using var client = new ExchangeClient(s3.Strict.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Strict);
        var upload = await client.UploadAsync(path);
        var head = await raw.GetObjectMetadataAsync(S3TestServer.Bucket, upload.Key);
        bytes[5 * 1024 * 1024] ^= 0xFF;
        await PutAsync(raw, upload.Key, bytes, head.Metadata);
        var target = Path.Combine(_work.FullName, "t.out");

        var ex = await Assert.ThrowsAsync<ChecksumMismatchException>(() => client.DownloadAsync(upload.TransferId, target));

        Assert.Contains(upload.Sha256, ex.Message, StringComparison.Ordinal);
        AssertNothingAt(target);
    }

    [Fact]
    public async Task TamperedManifest_OtherHash_IsRefused_NothingAtTheDestination()
    {
        var (path, _) = NewFile("h.bin", 11 * 1024 * 1024, seed: 23);
        using var client = new ExchangeClient(s3.Strict.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Strict);
        var upload = await client.UploadAsync(path);
        var manifestKey = "transfers/.manifest/server/" + upload.TransferId;
        var forged = (await ReadAsync(raw, manifestKey)).Replace(upload.Sha256, new string('a', 64), StringComparison.Ordinal);
        await PutAsync(raw, manifestKey, Encoding.UTF8.GetBytes(forged));
        var target = Path.Combine(_work.FullName, "h.out");

        await Assert.ThrowsAsync<ChecksumMismatchException>(() => client.DownloadUrlAsync(upload.DownloadUrl, target));

        AssertNothingAt(target);
    }

    [Theory]
    [InlineData("foreign-nonce", "belongs to another upload")]
    [InlineData("other-key", "names another object")]
    [InlineData("size", "records")]
    [InlineData("garbage", "not a valid manifest")]
    [InlineData("missing", "is missing")]
    public async Task ManifestNotOfThisObject_IsRefusedBeforeAnyByte_WithAClearError(string tamper, string expected)
    {
        var (path, _) = NewFile($"n-{tamper}.bin", 6 * 1024 * 1024, seed: 24);
        using var client = new ExchangeClient(s3.Strict.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Strict);
        var upload = await client.UploadAsync(path);
        var manifestKey = "transfers/.manifest/server/" + upload.TransferId;
        var json = await ReadAsync(raw, manifestKey);
        var nonce = (await raw.GetObjectMetadataAsync(S3TestServer.Bucket, upload.Key)).Metadata["x-amz-meta-sha256_manifest"];
        var forged = tamper switch
        {
            "foreign-nonce" => json.Replace(nonce, new string('0', 32), StringComparison.Ordinal),
            "other-key" => json.Replace(upload.Key, upload.Key + "x", StringComparison.Ordinal),
            "size" => json.Replace($"\"size\":{upload.Size}", $"\"size\":{upload.Size + 1}", StringComparison.Ordinal),
            "garbage" => "{\"version\":1,",
            _ => null,
        };
        if (forged is null)
        {
            await raw.DeleteObjectAsync(S3TestServer.Bucket, manifestKey);
        }
        else
        {
            Assert.NotEqual(json, forged);
            await PutAsync(raw, manifestKey, Encoding.UTF8.GetBytes(forged));
        }

        var target = Path.Combine(_work.FullName, $"n-{tamper}.out");

        var ex = await Assert.ThrowsAsync<ExchangeException>(() => client.DownloadAsync(upload.TransferId, target));
        var info = await Assert.ThrowsAsync<ExchangeException>(() => client.GetTransferInfoAsync(upload.TransferId));

        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains("refused", ex.Message, StringComparison.Ordinal);
        Assert.Equal(tamper == "missing" ? "ManifestMissing" : "ManifestInvalid", ex.ErrorCode);
        Assert.Equal(ex.ErrorCode, info.ErrorCode);
        AssertNothingAt(target);
    }

    [Fact]
    public async Task ObjectWithItsSha256InMetadata_AsBeforeManifests_StillVerifies()
    {
        var (_, bytes) = NewFile("old.bin", 6 * 1024 * 1024, seed: 25);
        using var client = new ExchangeClient(s3.Strict.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Strict);
        const string Id = "server_20260101_000000_old.bin";
        var metadata = new MetadataCollection { ["sha256"] = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant() };
        await PutAsync(raw, "transfers/server/" + Id, bytes, metadata);

        var good = await client.DownloadAsync(Id, Path.Combine(_work.FullName, "old.out"));
        bytes[0] ^= 1;
        await PutAsync(raw, "transfers/server/" + Id, bytes, metadata);
        var target = Path.Combine(_work.FullName, "old-tampered.out");
        await Assert.ThrowsAsync<ChecksumMismatchException>(() => client.DownloadAsync(Id, target));

        Assert.True(good.Verified);
        AssertNothingAt(target);
    }

    [Fact]
    public async Task Listing_HidesManifests_ShowsTheSha256FromThem_AndDeleteRemovesBoth()
    {
        var (path, _) = NewFile("l.bin", 6 * 1024 * 1024, seed: 26);
        using var client = new ExchangeClient(s3.Lenient.Settings, options: SmallParts);
        using var raw = RawBucket.Client(s3.Lenient);
        var upload = await client.UploadAsync(path, sourceClient: "listing-source");
        var manifestKey = "transfers/.manifest/listing-source/" + upload.TransferId;
        Assert.NotNull(await raw.GetObjectMetadataAsync(S3TestServer.Bucket, manifestKey));

        var all = await client.ListAsync();
        var mine = await client.ListAsync(sourceClient: "listing-source");

        Assert.DoesNotContain(all, o => o.Key.Contains(".manifest", StringComparison.Ordinal));
        var listed = Assert.Single(mine);
        Assert.Equal(upload.Key, listed.Key);
        Assert.Equal(upload.Sha256, listed.Metadata["sha256"]);
        Assert.False(listed.Metadata.ContainsKey("sha256_manifest"));
        Assert.Contains(all, o => o.Key == upload.Key);

        var deleted = await client.DeleteAsync(upload.TransferId, "listing-source");

        Assert.True(deleted.Deleted);
        var left = await raw.ListObjectsV2Async(new ListObjectsV2Request { BucketName = S3TestServer.Bucket, Prefix = "transfers/" });
        Assert.DoesNotContain(left.S3Objects ?? [], o => o.Key.EndsWith(upload.TransferId, StringComparison.Ordinal));
    }
}
