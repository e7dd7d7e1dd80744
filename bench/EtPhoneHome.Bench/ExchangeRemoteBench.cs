using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench exchange-remote [--size-mib N] [--rounds N] [--part-mib 16] [--parallel 4]: the exchange from a workstation
/// (RemoteExchange: the server's operator service signs, the bytes go straight to the bucket) next to the server host's
/// own (ExchangeClient with the credentials), the same file, the same S3 test server, rounds interleaved. The operator
/// service runs in this process over a unix socket pair (no ssh hop: what is measured is what the staging adds — the
/// start, the part URLs 64 at a time, the completion's arrival check — not an ssh link's latency).
/// </summary>
internal static class ExchangeRemoteBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var sizeMib = 256;
        var rounds = 3;
        var partMib = 16;
        var parallel = 4;
        for (var i = 0; i < args.Length - 1; i++)
        {
            switch (args[i])
            {
                case "--size-mib": sizeMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--rounds": rounds = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--part-mib": partMib = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
                case "--parallel": parallel = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
            }
        }

        await using var s3 = await S3TestServer.StartAsync(strict: true);
        var work = Directory.CreateTempSubdirectory("eph-bench-xremote-");
        using var stop = new CancellationTokenSource();
        try
        {
            var source = Path.Combine(work.FullName, "payload.bin");
            await ExchangeBench.WriteRandomFileAsync(source, (long)sizeMib * 1024 * 1024);
            var options = new ExchangeOptions { PartSize = partMib * 1024 * 1024, MultipartThreshold = partMib * 1024 * 1024, Parallelism = parallel, DownloadParallelism = parallel };
            using var registry = SqliteRegistry.Open(new DataDirectory(Path.Combine(work.FullName, "data")));
            var service = new OperatorService(() => RegistryStores.Borrow(registry), fp => new OperatorIdentity("bench", fp, OperatorRole.Operator, null))
            {
                HostName = "bench",
                ExchangeConnector = guard => new ExchangeClient(s3.Settings, guard, options),
            };
            var socketPath = Path.Combine(work.FullName, "ops.sock");
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(socketPath));
            listener.Listen(1);
            using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await client.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
            var serverSide = await listener.AcceptAsync();
            var serving = service.ServeAsync(new NetworkStream(serverSide, ownsSocket: true), new OperatorIdentity("bench", "SHA256:bench", OperatorRole.Operator, null), stop.Token);
            var stream = new NetworkStream(client, ownsSocket: false);
            await using var op = await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.Cli, CancellationToken.None);
            var remote = new RemoteExchange(op) { Parallelism = parallel, DownloadParallelism = parallel };
            using var local = new ExchangeClient(s3.Settings, null, options);
            Console.Error.WriteLine($"bench: {sizeMib} MiB, {rounds} rounds, parts of {partMib} MiB, {parallel} in flight; S3 test server on 127.0.0.1:{s3.Port}");

            var rows = new List<(string Who, string Direction, double Seconds)>();
            for (var round = 1; round <= rounds; round++)
            {
                foreach (var who in round % 2 == 1 ? new[] { "server host", "workstation" } : ["workstation", "server host"])
                {
                    var clock = Stopwatch.StartNew();
                    var up = who == "server host"
                        ? await local.UploadAsync(source, null, 1)
                        : await remote.UploadAsync(source, null, 1, null, CancellationToken.None);
                    rows.Add((who, "upload", clock.Elapsed.TotalSeconds));

                    var target = Path.Combine(work.FullName, "back.bin");
                    clock.Restart();
                    var down = who == "server host"
                        ? await local.DownloadAsync(up.TransferId, target)
                        : await remote.DownloadAsync(up.TransferId, null, target, false, null, null, CancellationToken.None);
                    rows.Add((who, "download", clock.Elapsed.TotalSeconds));
                    if (!down.Verified || down.Sha256 != up.Sha256)
                    {
                        throw new InvalidOperationException($"{who}'s download did not verify");
                    }

                    File.Delete(target);
                    await local.DeleteAsync(up.TransferId, ExchangeLimits.ServerSource);
                    Console.Error.WriteLine($"bench: round {round} {who}: up {rows[^2].Seconds:0.00} s, down {rows[^1].Seconds:0.00} s");
                }
            }

            Console.WriteLine($"| {sizeMib} MiB, median of {rounds} | server host (credentials) | workstation (through the operator service) | workstation ÷ server host (time) |");
            Console.WriteLine("|---|---:|---:|---:|");
            foreach (var direction in new[] { "upload", "download" })
            {
                double Median(string who)
                {
                    var times = rows.Where(r => r.Who == who && r.Direction == direction).Select(r => r.Seconds).Order().ToList();
                    return times[times.Count / 2];
                }

                var host = Median("server host");
                var station = Median("workstation");
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {direction} | {host:0.00} s | {station:0.00} s | {station / host:0.00} |"));
            }

            await stop.CancelAsync();
            client.Dispose();
            await serving.WaitAsync(TimeSpan.FromSeconds(20));
            return 0;
        }
        finally
        {
            work.Delete(recursive: true);
        }
    }
}
