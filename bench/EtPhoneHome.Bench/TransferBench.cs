using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench transfer [--mib N] [--rounds R]: a file of N MiB (default 1024) up and down through the tunnel with
/// FileTransferClient, next to scp through the same sshd; the agent's memory idle and during the upload.
/// </summary>
internal static class TransferBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var mib = Arg(args, "--mib", 1024);
        var rounds = Arg(args, "--rounds", 3);
        await using var bench = await BenchSandbox.CreateAsync();
        var client = (await bench.AddOnlineAgentsAsync("xfer", 1, TimeSpan.FromSeconds(60)))[0];
        var agentPid = bench.Env.Agents.Single().Process!.Pid;
        using var registry = bench.Env.OpenRegistry();
        var target = FleetTargets.FromClients(registry, registry, [client]).Single();

        var dir = Path.Combine(bench.Env.WorkDirectory, "xfer");
        Directory.CreateDirectory(dir);
        FleetAccount.GiveTo(dir); // scp logs in as the fleet account and writes here
        var source = Path.Combine(dir, "source.bin");
        await WriteRandomAsync(source, mib);
        await Task.Delay(TimeSpan.FromSeconds(5));
        var idle = BenchSandbox.Memory(agentPid);

        var transfers = new FileTransferClient();
        var up = new List<double>();
        var down = new List<double>();
        var scpUp = new List<double>();
        var scpDown = new List<double>();
        long peakRss = 0;
        for (var round = 0; round < rounds; round++)
        {
            var remote = Path.Combine(dir, "tunnel-up.bin");
            File.Delete(remote);
            using (var sampler = new CancellationTokenSource())
            {
                var sampling = Task.Run(async () =>
                {
                    while (!sampler.IsCancellationRequested)
                    {
                        if (BenchSandbox.Memory(agentPid) is { } m)
                        {
                            peakRss = Math.Max(peakRss, m.Rss);
                        }

                        await Task.Delay(100, CancellationToken.None);
                    }
                });
                up.Add(await TimeAsync(() => transfers.UploadAsync(target, source, remote, null, CancellationToken.None)));
                await sampler.CancelAsync();
                await sampling;
            }

            var local = Path.Combine(dir, "tunnel-down.bin");
            File.Delete(local);
            down.Add(await TimeAsync(() => transfers.DownloadAsync(target, remote, local, null, CancellationToken.None)));

            var scpTarget = Path.Combine(dir, "scp-up.bin");
            File.Delete(scpTarget);
            // -O: the classic scp protocol (the sandbox sshd has no sftp subsystem); same cipher and channel as sftp would use.
            string[] scpBase = ["-q", "-O", "-P", bench.Env.SshPort.ToString(CultureInfo.InvariantCulture), .. bench.SshOptions];
            scpUp.Add(await TimeAsync(() => SandboxEnvironment.RunAsync("scp", [.. scpBase, source, $"{bench.User}@127.0.0.1:{scpTarget}"])));
            var scpLocal = Path.Combine(dir, "scp-down.bin");
            File.Delete(scpLocal);
            scpDown.Add(await TimeAsync(() => SandboxEnvironment.RunAsync("scp", [.. scpBase, $"{bench.User}@127.0.0.1:{scpTarget}", scpLocal])));
        }

        var hwm = BenchSandbox.Memory(agentPid)?.Hwm;
        double Rate(double ms) => mib / (ms / 1000.0);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## Transfer of {mib} MiB ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {Environment.OSVersion}), median of {rounds}"));
        Console.WriteLine();
        Console.WriteLine("| transfer | median | MiB/s | vs scp |");
        Console.WriteLine("|---|---:|---:|---:|");
        var scpUpMs = BenchSandbox.Median(scpUp);
        var scpDownMs = BenchSandbox.Median(scpDown);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| tunnel upload (Copy-EphFile -ToClient) | {BenchSandbox.Median(up) / 1000:0.00} s | {Rate(BenchSandbox.Median(up)):0} | {scpUpMs / BenchSandbox.Median(up) * 100:0} % |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| scp upload, same sshd | {scpUpMs / 1000:0.00} s | {Rate(scpUpMs):0} | 100 % |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| tunnel download (Copy-EphFile -FromClient) | {BenchSandbox.Median(down) / 1000:0.00} s | {Rate(BenchSandbox.Median(down)):0} | {scpDownMs / BenchSandbox.Median(down) * 100:0} % |"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| scp download, same sshd | {scpDownMs / 1000:0.00} s | {Rate(scpDownMs):0} | 100 % |"));
        Console.WriteLine();
        Console.WriteLine("| eph-agent memory | KiB |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine($"| VmRSS idle (before transfers) | {idle?.Rss} |");
        Console.WriteLine($"| VmRSS peak sampled every 100 ms during uploads | {peakRss} |");
        Console.WriteLine($"| VmHWM after all transfers | {hwm} |");
        return 0;
    }

    internal static async Task WriteRandomAsync(string path, int mib)
    {
        var buffer = new byte[1024 * 1024];
        await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 0);
        for (var i = 0; i < mib; i++)
        {
            Random.Shared.NextBytes(buffer);
            await file.WriteAsync(buffer);
        }
    }

    private static async Task<double> TimeAsync(Func<Task> action)
    {
        var clock = Stopwatch.StartNew();
        await action();
        return clock.Elapsed.TotalMilliseconds;
    }

    internal static int Arg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }
}
