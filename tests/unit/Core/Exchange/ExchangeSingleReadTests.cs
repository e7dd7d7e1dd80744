using System.Security.Cryptography;
using EtPhoneHome.Core.Exchange;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>Runs alone: it counts the bytes the whole test process reads (/proc/self/io), which other tests would add to.</summary>
[CollectionDefinition(nameof(ExchangeSingleReadCollection), DisableParallelization = true)]
public sealed class ExchangeSingleReadCollection;

/// <summary>An upload sent in one PUT reads the file once: it is hashed from the memory that is sent.</summary>
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
}
