using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// eph-bench [lifecycle] [--rounds N] | exchange [--size-mib N] | exchange-peers [--size-mib N] [--rounds N] | exchange-remote [--size-mib N] [--rounds N] | search | transfer | fanout | simulated | remote | agent-memory | hubs | hubs-simulated | scale (see each *Bench class). Lifecycle measures, in one sandbox on this machine,
/// time from `eph-agent run` to online, warm round trips of `run_command true` through the tunnel next to
/// `ssh … true` through the same sshd, and the resident memory of an idle agent and of one gate relay.
/// Prints a markdown report on stdout.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        switch (args.FirstOrDefault())
        {
            case "transfer":
                return await TransferBench.RunAsync(args[1..]);
            case "fanout":
                return await FanOutBench.RunAsync(args[1..]);
            case "simulated":
                return await SimulatedBench.RunAsync(args[1..]);
            case "simulated-host":
                return await SimulatedBench.HostAsync(args[1..]);
            case "exchange":
                return await ExchangeBench.RunAsync(args[1..]);
            case "exchange-peers":
                return await ExchangePeersBench.RunAsync(args[1..]);
            case "exchange-remote":
                return await ExchangeRemoteBench.RunAsync(args[1..]);
            case "search":
                return SearchBench.Run(args[1..]);
            case "remote":
                return await RemoteBench.RunAsync(args[1..]);
            case "agent-memory":
                return await AgentMemoryBench.RunAsync(args[1..]);
            case "hubs":
                return await HubFailoverBench.RunAsync(args[1..]);
            case "hubs-simulated":
                return await HubsSimulatedBench.RunAsync(args[1..]);
            case "scale":
                return await ScaleBench.RunAsync(args[1..]);
            case "lifecycle":
                args = args[1..];
                break;
        }

        var rounds = 200;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--rounds" && i + 1 < args.Length)
            {
                rounds = int.Parse(args[++i], CultureInfo.InvariantCulture);
            }
        }

        await using var env = await SandboxEnvironment.CreateAsync(new SandboxOptions { HeartbeatSeconds = 15, ReconnectInitialSeconds = 5, ReconnectMaxSeconds = 300, Log = Console.Error });

        // A bench-only key that sshd accepts from a plain authorized_keys file, so `ssh … true` runs a real command
        // through the very same sshd (the gate's forced command applies only to keys it answers for).
        var benchKey = Path.Combine(env.WorkDirectory, "bench_ed25519");
        await SandboxEnvironment.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", benchKey]);
        var authorized = Path.Combine(Path.GetDirectoryName(env.GatePath)!, "authorized_keys"); // StrictModes refuses one under /tmp
        File.Copy(benchKey + ".pub", authorized);
        var config = File.ReadAllText(env.SshdConfigFile).Replace("AuthorizedKeysFile none", $"AuthorizedKeysFile {authorized}", StringComparison.Ordinal);
        File.WriteAllText(env.SshdConfigFile, config);

        await env.StartSshdAsync();
        await env.StartHubAsync();

        var agent = await env.AddAgentAsync("bench-1");
        using var registry = env.OpenRegistry();
        var key = await SandboxEnvironment.WaitUntilAsync(() => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(), TimeSpan.FromSeconds(60), "pending key");
        registry.ApproveKey(key.Fingerprint, "bench");
        await env.WaitOnlineAsync(["bench-1"], TimeSpan.FromSeconds(60));

        // 1. Time from `eph-agent run` to online, for an approved agent (5 restarts).
        var toOnline = new List<double>();
        for (var i = 0; i < 5; i++)
        {
            await agent.StopAsync();
            await env.WaitOfflineAsync("bench-1", TimeSpan.FromSeconds(30));
            var clock = Stopwatch.StartNew();
            agent.Start();
            await env.WaitOnlineAsync(["bench-1"], TimeSpan.FromSeconds(60));
            toOnline.Add(clock.Elapsed.TotalMilliseconds);
        }

        var client = registry.QueryClients(new ClientQuery { Names = ["bench-1"] }).Single();
        var session = registry.GetOpenSession(client.Uuid)!;
        var run = new RunCommandParams { Cmd = "true" };

        // 2a. One tunnel connection per request, as operator processes do (connect + handshake + run).
        var perConnection = await TimeAsync(rounds, async () =>
        {
            await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None);
            await tunnel.InvokeAsync(RpcMethods.RunCommand, run, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        });

        // 2b. A warm, reused tunnel connection.
        await using var warm = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None);
        var reused = await TimeAsync(rounds, () => warm.InvokeAsync(RpcMethods.RunCommand, run, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None));

        // 2c/2d. ssh through the same sshd: a new connection each time, and a warm multiplexed master.
        var knownHosts = Path.Combine(agent.ConfigDirectory, "known_hosts");
        string[] sshBase = ["-p", env.SshPort.ToString(CultureInfo.InvariantCulture), "-i", benchKey, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", $"UserKnownHostsFile={knownHosts}", "-o", "StrictHostKeyChecking=yes"];
        var sshRounds = Math.Min(rounds, 50);
        var sshCold = await TimeAsync(sshRounds, () => SandboxEnvironment.RunAsync("ssh", [.. sshBase, $"{env.FleetUser}@127.0.0.1", "true"]));
        var control = Path.Combine(env.WorkDirectory, "cm.sock");
        string[] mux = [.. sshBase, "-o", "ControlMaster=auto", "-o", $"ControlPath={control}", "-o", "ControlPersist=120"];
        await SandboxEnvironment.RunAsync("ssh", [.. mux, $"{env.FleetUser}@127.0.0.1", "true"]);
        var sshWarm = await TimeAsync(rounds, () => SandboxEnvironment.RunAsync("ssh", [.. mux, $"{env.FleetUser}@127.0.0.1", "true"]));
        await SandboxEnvironment.RunForResultAsync("ssh", [.. mux, "-O", "exit", $"{env.FleetUser}@127.0.0.1"]);

        // 3. Memory: the idle agent (after the runs above, 10 s idle) and the gate relay of its session.
        await Task.Delay(TimeSpan.FromSeconds(10));
        var agentRss = RssKiB(agent.Process!.Pid);
        var gateRss = session.GatePid is { } gatePid ? RssKiB(gatePid) : null;
        var sshRss = ManagedProcess.Descendants(agent.Process.Pid).Select(RssKiB).FirstOrDefault(r => r is not null);

        Console.WriteLine($"## Phone-home lifecycle ({DateTime.UtcNow:yyyy-MM-dd}, {Environment.ProcessorCount} cores, {Environment.OSVersion})");
        Console.WriteLine();
        Console.WriteLine("| measurement | median | p95 | n |");
        Console.WriteLine("|---|---:|---:|---:|");
        Row("`eph-agent run` → online (approved key)", toOnline);
        Row("`run_command true`, new tunnel connection each (connect + handshake + run)", perConnection);
        Row("`run_command true`, warm tunnel connection", reused);
        Row("`ssh <same sshd> true`, new SSH connection each", sshCold);
        Row("`ssh <same sshd> true`, warm multiplexed connection (ControlMaster)", sshWarm);
        Console.WriteLine();
        Console.WriteLine("| process | RSS |");
        Console.WriteLine("|---|---:|");
        Console.WriteLine($"| eph-agent, idle | {agentRss?.ToString(CultureInfo.InvariantCulture) ?? "?"} KiB |");
        Console.WriteLine($"| ssh client spawned by the agent | {sshRss?.ToString(CultureInfo.InvariantCulture) ?? "?"} KiB |");
        Console.WriteLine($"| eph-gate session relay | {gateRss?.ToString(CultureInfo.InvariantCulture) ?? "?"} KiB |");
        return 0;
    }

    private static async Task<List<double>> TimeAsync(int rounds, Func<Task> action)
    {
        await action(); // warm-up
        var samples = new List<double>(rounds);
        for (var i = 0; i < rounds; i++)
        {
            var clock = Stopwatch.StartNew();
            await action();
            samples.Add(clock.Elapsed.TotalMilliseconds);
        }

        return samples;
    }

    private static void Row(string name, List<double> samples)
    {
        samples.Sort();
        var median = samples[samples.Count / 2];
        var p95 = samples[Math.Min(samples.Count - 1, (int)(samples.Count * 0.95))];
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"| {name} | {median:0.00} ms | {p95:0.00} ms | {samples.Count} |"));
    }

    private static long? RssKiB(int pid)
    {
        try
        {
            var line = File.ReadLines($"/proc/{pid}/status").FirstOrDefault(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
            return line is null ? null : long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
        }
        catch (IOException)
        {
            return null;
        }
    }
}
