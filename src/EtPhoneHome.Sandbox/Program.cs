using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// eph-sandbox [--clients N] [--once] [--work DIR]: a private sshd, the hub and N agents on 127.0.0.1.
/// Approves every agent's key, waits until all are online, runs `uname -a` on each and prints the results.
/// </summary>
internal static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var clients = 3;
        var once = false;
        string? work = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--clients" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 200:
                    clients = n;
                    i++;
                    break;
                case "--once":
                    once = true;
                    break;
                case "--work" when i + 1 < args.Length:
                    work = args[++i];
                    break;
                case "-h" or "--help":
                    Console.WriteLine("usage: eph-sandbox [--clients N (1-200, default 3)] [--once] [--work DIR]");
                    return 0;
                default:
                    Console.Error.WriteLine($"eph-sandbox: unknown or invalid argument '{args[i]}' (usage: eph-sandbox [--clients N] [--once] [--work DIR])");
                    return 2;
            }
        }

        using var stop = new CancellationTokenSource();
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.Cancel(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

        SandboxEnvironment? env = null;
        try
        {
            env = await SandboxEnvironment.CreateAsync(new SandboxOptions { WorkDirectory = work, Log = Console.Out }, stop.Token);
            await env.StartSshdAsync(stop.Token);
            await env.StartHubAsync(stop.Token);

            var clock = Stopwatch.StartNew();
            var names = Enumerable.Range(1, clients).Select(i => $"sandbox-{i}").ToList();
            await Task.WhenAll(names.Select(name => env.AddAgentAsync(name, ["sandbox"], start: true, stop.Token)));

            Console.WriteLine($"waiting for {clients} pending key(s)…");
            var pending = await env.WaitForPendingKeysAsync(clients, TimeSpan.FromSeconds(60), stop.Token);
            using (var registry = env.OpenRegistry())
            {
                foreach (var key in pending)
                {
                    registry.ApproveKey(key.Fingerprint, "sandbox");
                    Console.WriteLine($"approved {key.Fingerprint} ({key.ClaimedHostname}, {key.ClaimedDisplayName})");
                }
            }

            await env.WaitOnlineAsync(names, TimeSpan.FromSeconds(60), stop.Token);
            Console.WriteLine($"all {clients} client(s) online {clock.Elapsed.TotalSeconds:0.0} s after the agents started");

            var (exit, stdout, stderr) = await SandboxEnvironment.RunForResultAsync(env.ServerExecutable,
                ["exec", "--data", env.Data.Path, "--all", "--", "uname", "-a"], stop.Token);
            Console.Write(stdout);
            Console.Error.Write(stderr);
            if (once)
            {
                Console.WriteLine(exit == 0 ? "every client answered" : "some clients did not answer");
                return exit == 0 ? 0 : 1;
            }

            Console.WriteLine();
            Console.WriteLine("The sandbox is running. From another shell:");
            Console.WriteLine($"  {env.ServerExecutable} clients --data {env.Data.Path}");
            Console.WriteLine($"  {env.ServerExecutable} exec --data {env.Data.Path} --all -- uptime");
            Console.WriteLine($"  pwsh: $env:ETPHONEHOME_DATA_DIR = '{env.Data.Path}'; Import-Module ./out/EtPhoneHome; Get-EphClient | Invoke-EphCommand 'uptime'");
            Console.WriteLine($"Logs: {env.WorkDirectory}/{{sshd,hub}}.log and agents/*/agent.log. Ctrl+C stops everything.");
            await Task.Delay(Timeout.Infinite, stop.Token).ContinueWith(_ => { }, TaskScheduler.Default);
            return 0;
        }
        catch (OperationCanceledException)
        {
            Console.Error.WriteLine("eph-sandbox: stopped");
            return 130;
        }
        catch (Exception ex) when (ex is SandboxException or TimeoutException)
        {
            Console.Error.WriteLine($"eph-sandbox: {ex.Message}");
            if (env is not null)
            {
                Console.Error.WriteLine($"logs are kept in {env.WorkDirectory}");
                Environment.SetEnvironmentVariable("EPH_SANDBOX_KEEP", "1");
            }

            return 1;
        }
        finally
        {
            if (env is not null)
            {
                Console.WriteLine("stopping sandbox…");
                await env.DisposeAsync();
            }
        }
    }
}
