using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench exchange [--size-mib N] [--part-mib N] [--parallel N]: upload and download throughput of one file
/// through the exchange (ExchangeClient: SHA-256 while reading, multipart with a manifest, verified streaming download) against a local
/// s3rver, next to plain curl PUT/GET of the same file on presigned URLs. Prints a markdown table on stdout.
/// </summary>
internal static class ExchangeBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var sizeMib = 1024;
        var partMib = 16;
        var parallel = 4;
        for (var i = 0; i < args.Length - 1; i++)
        {
            switch (args[i])
            {
                case "--size-mib": sizeMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--part-mib": partMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--parallel": parallel = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
            }
        }

        await using var s3 = await S3TestServer.StartAsync(strict: true);
        var work = Directory.CreateTempSubdirectory("eph-bench-exchange-");
        try
        {
            var source = Path.Combine(work.FullName, "payload.bin");
            await WriteRandomFileAsync(source, (long)sizeMib * 1024 * 1024);
            var bytes = new FileInfo(source).Length;
            var options = new ExchangeOptions { PartSize = partMib * 1024 * 1024, MultipartThreshold = partMib * 1024 * 1024, Parallelism = parallel };
            using var exchange = new ExchangeClient(s3.Settings, null, options);
            Console.Error.WriteLine($"bench: {sizeMib} MiB file; s3rver on 127.0.0.1:{s3.Port}");

            var clock = Stopwatch.StartNew();
            var upload = await exchange.UploadAsync(source);
            var exchangeUp = clock.Elapsed;

            clock.Restart();
            var download = await exchange.DownloadAsync(upload.TransferId, Path.Combine(work.FullName, "exchange.out"));
            var exchangeDown = clock.Elapsed;
            File.Delete(download.LocalPath);
            if (!download.Verified || download.Sha256 != upload.Sha256)
            {
                throw new InvalidOperationException("the exchange download did not verify");
            }

            var put = exchange.CreateUploadUrl("bench", "payload.bin", 1);
            clock.Restart();
            await Curl(["-sS", "-f", "-T", source, "-o", "/dev/null", put.UploadUrl.ToString()]);
            var curlUp = clock.Elapsed;

            var curlOut = Path.Combine(work.FullName, "curl.out");
            clock.Restart();
            await Curl(["-sS", "-f", "-o", curlOut, upload.DownloadUrl.ToString()]);
            var curlDown = clock.Elapsed;
            if (new FileInfo(curlOut).Length != bytes)
            {
                throw new InvalidOperationException("curl downloaded a different size");
            }

            string Rate(TimeSpan t) => (bytes / 1048576.0 / t.TotalSeconds).ToString("0.0", CultureInfo.InvariantCulture);
            string Sec(TimeSpan t) => t.TotalSeconds.ToString("0.00", CultureInfo.InvariantCulture);
            Console.WriteLine($"| direction | exchange (ExchangeClient) | curl on a presigned URL |");
            Console.WriteLine($"|---|---|---|");
            Console.WriteLine($"| upload {sizeMib} MiB | {Sec(exchangeUp)} s, {Rate(exchangeUp)} MiB/s (SHA-256 while the {partMib} MiB parts x{parallel} are read, manifest) | {Sec(curlUp)} s, {Rate(curlUp)} MiB/s (one PUT) |");
            Console.WriteLine($"| download {sizeMib} MiB | {Sec(exchangeDown)} s, {Rate(exchangeDown)} MiB/s (streamed, SHA-256 verified, atomic rename) | {Sec(curlDown)} s, {Rate(curlDown)} MiB/s (one GET) |");
            return 0;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }

    /// <summary>Writes <paramref name="size"/> random bytes to <paramref name="path"/> (incompressible, 4 MiB at a time).</summary>
    internal static async Task WriteRandomFileAsync(string path, long size)
    {
        var block = new byte[4 * 1024 * 1024];
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20, FileOptions.Asynchronous);
        long written = 0;
        while (written < size)
        {
            Random.Shared.NextBytes(block);
            var n = (int)Math.Min(block.Length, size - written);
            await file.WriteAsync(block.AsMemory(0, n));
            written += n;
        }
    }

    private static async Task Curl(IReadOnlyList<string> args)
    {
        var (code, _, stderr) = await SandboxEnvironment.RunForResultAsync("curl", args);
        if (code != 0)
        {
            throw new InvalidOperationException($"curl exited {code}: {stderr}");
        }
    }
}
