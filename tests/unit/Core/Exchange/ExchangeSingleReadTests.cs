using System.Security.Cryptography;
using EtPhoneHome.Core.Exchange;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>Runs alone: it counts the bytes the whole test process reads (/proc/self/io), which other tests would add to.</summary>
[CollectionDefinition(nameof(ExchangeSingleReadCollection), DisableParallelization = true)]
public sealed class ExchangeSingleReadCollection;

/// <summary>
/// Every upload reads the file once. One PUT: hashed from the memory that is sent. Multipart: the whole-file SHA-256
/// is computed in order as the parts are read and goes in the manifest written before completion.
/// </summary>
[Collection(nameof(ExchangeSingleReadCollection))]
public sealed class ExchangeSingleReadTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-once-");

    public void Dispose() => _work.Delete(recursive: true);

    private static long BytesReadByThisProcess() =>
        long.Parse(File.ReadLines("/proc/self/io").First(l => l.StartsWith("rchar:", StringComparison.Ordinal))["rchar:".Length..].Trim(),
            System.Globalization.CultureInfo.InvariantCulture);

    [Fact]
    public async Task ASinglePutUpload_ReadsTheFileOnce_AndCarriesItsSha256()
    {
        const int Size = 12 * 1024 * 1024; // below the 16 MiB multipart threshold
        var bytes = new byte[Size];
        new Random(11).NextBytes(bytes);
        var path = Path.Combine(_work.FullName, "once.bin");
        File.WriteAllBytes(path, bytes);
        using var client = new ExchangeClient(s3.Strict.Settings);
        _ = await client.UploadAsync(Path.Combine(_work.FullName, "once.bin")); // warm-up: connections, JIT

        var before = BytesReadByThisProcess();
        var upload = await client.UploadAsync(path);
        var read = BytesReadByThisProcess() - before;

        Assert.False(upload.Multipart);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant(), upload.Sha256);
        Assert.True(read < Size * 3 / 2, $"the upload read {read:N0} bytes of a {Size:N0}-byte file: more than once");
        Assert.Equal(upload.Sha256, (await client.GetTransferInfoAsync(upload.TransferId))?.Sha256);
    }

    [Fact]
    public async Task AMultipartUpload_ReadsTheFileOnce_AndItsSha256ComesBackFromTheManifest()
    {
        const int Size = 40 * 1024 * 1024 + 4321; // 9 parts of 5 MiB
        var bytes = new byte[Size];
        new Random(12).NextBytes(bytes);
        var path = Path.Combine(_work.FullName, "parts.bin");
        File.WriteAllBytes(path, bytes);
        var warm = Path.Combine(_work.FullName, "warm.bin");
        File.WriteAllBytes(warm, bytes.AsSpan(0, 11 * 1024 * 1024).ToArray());
        var options = new ExchangeOptions { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024, Parallelism = 3 };
        using var client = new ExchangeClient(s3.Strict.Settings, options: options);
        _ = await client.UploadAsync(warm); // warm-up: connections, JIT of the multipart path

        var before = BytesReadByThisProcess();
        var upload = await client.UploadAsync(path);
        var read = BytesReadByThisProcess() - before;

        Assert.True(upload.Multipart);
        var sha = Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();
        Assert.Equal(sha, upload.Sha256);
        Assert.True(read < Size * 3L / 2, $"the upload read {read:N0} bytes of a {Size:N0}-byte file: more than once");
        var info = (await client.GetTransferInfoAsync(upload.TransferId))!.Value;
        Assert.Equal(Size, info.Size);
        Assert.Equal(sha, info.Sha256);
    }
}
