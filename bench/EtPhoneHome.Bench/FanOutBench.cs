using System.Diagnostics;
using System.Globalization;
using System.Text;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench fanout [--sizes 10,100,200] [--rounds R]: `true` on N real tunnelled agents with FleetExecutor (one tunnel
/// connection per target, history recorded as the cmdlets do), next to parallel-ssh and `ansible -m command` driving
/// the same number of targets (all 127.0.0.1 on the same sshd and fleet account, plain key) with the same parallelism,
/// each tuned as a fair operator would (see the ansible inventory below).
/// </summary>
internal static class FanOutBench
{
    public static async Task<int> RunAsync(string[] args)
    {
        var sizesArg = Array.IndexOf(args, "--sizes") is var s and >= 0 ? args[s + 1] : "10,100,200";
        var sizes = sizesArg.Split(',').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray();
        var rounds = TransferBench.Arg(args, "--rounds", 5);
        // Short reconnect delays: how fast agents come online is not what this bench measures.
        await using var bench = await BenchSandbox.CreateAsync(heartbeatSeconds: 30, reconnectMaxSeconds: 5);
        var rows = new List<string>();
        var started = 0;
        string? limit = null;
        foreach (var size in sizes)
        {
            try
            {
                await bench.AddOnlineAgentsAsync($"fan{size}", Math.Max(0, size - started), TimeSpan.FromSeconds(120 + size));
            }
            catch (Exception ex) when (ex is TimeoutException or SandboxException)
            {
                limit = $"stopped adding agents at {size}: {ex.Message}";
                break;
            }

            started = size;
            using var registry = bench.Env.OpenRegistry();
            var clients = registry.QueryClients(new Core.Registry.ClientQuery { OnlineOnly = true }).Take(size).ToList();
            var targets = FleetTargets.FromClients(registry, registry, clients);
            var guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.Cli));
            var executor = new FleetExecutor(new TunnelCommandTransport { Guard = guard });
            var eph = await TimeRoundsAsync(rounds, async () =>
            {
                var ok = 0;
                await foreach (var r in executor.RunAsync(targets, new RunCommandParams { Cmd = "true", TimeoutS = 60 }, new FleetOptions { ThrottleLimit = size }))
                {
                    ok += r.Status == CommandStatus.Succeeded ? 1 : 0;
                }

                return ok;
            });

            var hosts = Path.Combine(bench.Env.WorkDirectory, $"pssh-{size}");
            await File.WriteAllLinesAsync(hosts, Enumerable.Repeat($"{bench.User}@127.0.0.1:{bench.Env.SshPort}", size));
            var pssh = await TimeRoundsAsync(rounds, async () =>
            {
                var result = await SandboxEnvironment.RunForResultAsync("parallel-ssh",
                    ["-h", hosts, "-p", size.ToString(CultureInfo.InvariantCulture), "-t", "120", "-x", string.Join(' ', bench.SshOptions), "true"]);
                var lines = (result.Stdout + "\n" + result.Stderr).Split('\n');
                Failures("parallel-ssh", size, lines.Where(l => l.Contains("[FAILURE]", StringComparison.Ordinal) || l.StartsWith("Stderr:", StringComparison.Ordinal)));
                return lines.Count(l => l.Contains("[SUCCESS]", StringComparison.Ordinal));
            });

            // Tuned as an operator would: pipelining (the module goes through ssh's stdin: one round trip per target, no
            // temporary files, no sftp), and one ControlPath per host — ansible's default path hashes host, port and user,
            // which are the same for every alias of 127.0.0.1, so all of them would share one master (MaxSessions 10).
            var controlDir = Path.Combine(bench.Env.WorkDirectory, $"cp{size}");
            Directory.CreateDirectory(controlDir);
            var inventory = Path.Combine(bench.Env.WorkDirectory, $"ansible-{size}.ini");
            var ini = new StringBuilder("[bench]\n");
            for (var i = 0; i < size; i++)
            {
                ini.Append(CultureInfo.InvariantCulture, $"h{i} ansible_host=127.0.0.1 ansible_control_path={controlDir}/{i}\n");
            }

            ini.Append(CultureInfo.InvariantCulture, $"[bench:vars]\nansible_port={bench.Env.SshPort}\nansible_user={bench.User}\nansible_ssh_private_key_file={bench.Key}\nansible_pipelining=true\n");
            ini.Append(CultureInfo.InvariantCulture, $"ansible_ssh_common_args='-o IdentitiesOnly=yes -o UserKnownHostsFile={bench.KnownHosts} -o StrictHostKeyChecking=yes'\nansible_python_interpreter=/usr/bin/python3\n");
            await File.WriteAllTextAsync(inventory, ini.ToString());
            var ansible = await TimeRoundsAsync(rounds, async () =>
            {
                var result = await SandboxEnvironment.RunForResultAsync("ansible",
                    ["all", "-i", inventory, "-m", "command", "-a", "true", "-f", size.ToString(CultureInfo.InvariantCulture), "-o"]);
                var lines = result.Stdout.Split('\n');
                Failures("ansible", size, lines.Where(l => l.Contains("| UNREACHABLE", StringComparison.Ordinal) || l.Contains("| FAILED", StringComparison.Ordinal)));
                return lines.Count(l => l.Contains("| CHANGED", StringComparison.Ordinal) || l.Contains("| SUCCESS", StringComparison.Ordinal));
            });

            rows.Add(string.Create(CultureInfo.InvariantCulture,
                $"| {size} | {eph.Median / 1000:0.000} s ({eph.Ok}/{size}) | {pssh.Median / 1000:0.000} s ({pssh.Ok}/{size}) | {ansible.Median / 1000:0.000} s ({ansible.Ok}/{size}) | {pssh.Median / eph.Median:0.0}× | {ansible.Median / eph.Median:0.0}× |"));
            Console.Error.WriteLine(rows[^1]);
        }

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"## Fan-out of `true` ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {Environment.OSVersion}), median of {rounds}"));
        Console.WriteLine();
        Console.WriteLine("| targets | eph FleetExecutor (tunnels) | parallel-ssh | ansible -m command (pipelining, a ControlPath per host) | eph vs parallel-ssh | eph vs ansible |");
        Console.WriteLine("|---:|---:|---:|---:|---:|---:|");
        rows.ForEach(Console.WriteLine);
        if (limit is not null)
        {
            Console.WriteLine();
            Console.WriteLine($"Limit: {limit}");
        }

        return 0;
    }

    /// <summary>Prints a peer's failures (the first few, and how many) so a row's shortfall is explained, not just counted.</summary>
    private static void Failures(string peer, int size, IEnumerable<string> lines)
    {
        var failed = lines.ToList();
        if (failed.Count == 0)
        {
            return;
        }

        Console.Error.WriteLine($"{peer} at {size}: {failed.Count} failure line(s), e.g.:");
        foreach (var line in failed.Distinct(StringComparer.Ordinal).Take(3))
        {
            Console.Error.WriteLine("  " + (line.Length > 300 ? line[..300] + "…" : line));
        }
    }

    private static async Task<(double Median, int Ok)> TimeRoundsAsync(int rounds, Func<Task<int>> action)
    {
        var samples = new List<double>();
        var ok = 0;
        for (var i = 0; i < rounds; i++)
        {
            var clock = Stopwatch.StartNew();
            ok = await action();
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }

        return (BenchSandbox.Median(samples), ok);
    }
}
