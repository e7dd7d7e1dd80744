using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// eph-sandbox [--clients N] [--hubs N] [--once] [--shell] [--work DIR] [--exit-with-parent]: a private sshd, the hub
/// and N agents on 127.0.0.1. Approves every agent's key, waits until all are online, runs `uname -a` on each from the
/// (first) hub's side and prints the results. With --hubs 2 or more: a private PostgreSQL registry shared by that many
/// sshd + hub pairs (<see cref="MultiHubSandbox"/>), the agents' first servers alternating between them.
/// </summary>
internal static partial class Program
{
    private const string Usage = "usage: eph-sandbox [--clients N (1-200, default 3)] [--hubs N (1-8, default 1)] [--once] [--shell] [--work DIR] [--exit-with-parent]";

    public static async Task<int> Main(string[] args)
    {
        var clients = 3;
        var hubs = 1;
        var once = false;
        var shell = false;
        var exitWithParent = false;
        string? work = null;
        for (var i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--clients" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var n) && n is >= 1 and <= 200:
                    clients = n;
                    i++;
                    break;
                case "--hubs" when i + 1 < args.Length && int.TryParse(args[i + 1], CultureInfo.InvariantCulture, out var h) && h is >= 1 and <= 8:
                    hubs = h;
                    i++;
                    break;
                case "--once":
                    once = true;
                    break;
                case "--shell":
                    shell = true;
                    break;
                case "--exit-with-parent":
                    exitWithParent = true;
                    break;
                case "--work" when i + 1 < args.Length:
                    work = args[++i];
                    break;
                case "-h" or "--help":
                    Console.WriteLine(Usage);
                    Console.WriteLine("  --shell             open pwsh with the module imported and pointed at the sandbox; leaving it stops the sandbox");
                    Console.WriteLine("  --hubs N            N sshd + hub pairs sharing a private PostgreSQL registry; each agent lists every hub, its");
                    Console.WriteLine("                      first server alternating; commands run from the first hub's side");
                    Console.WriteLine("  --exit-with-parent  stop (sshd, hub, agents) as soon as the process that started this one is gone");
                    return 0;
                default:
                    Console.Error.WriteLine($"eph-sandbox: unknown or invalid argument '{args[i]}' ({Usage})");
                    return 2;
            }
        }

        if (once && shell)
        {
            Console.Error.WriteLine("eph-sandbox: --once and --shell exclude each other");
            return 2;
        }

        using var stop = new CancellationTokenSource();
        var shellRunning = false;
        // Ctrl+C in the sandbox's shell reaches the whole foreground process group: it is the shell's to handle then.
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; if (!Volatile.Read(ref shellRunning)) { stop.Cancel(); } });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.Cancel(); });

        if (exitWithParent)
        {
            // A test run that dies (a failed import, a killed runner) must not leave sshd, the hub and agents behind.
            _ = WatchParentAsync(stop);
        }

        SandboxEnvironment? env = null;
        MultiHubSandbox? multi = null;
        try
        {
            var options = new SandboxOptions { WorkDirectory = work, Log = Console.Out };
            if (hubs == 1)
            {
                env = await SandboxEnvironment.CreateAsync(options, stop.Token);
                await env.StartSshdAsync(stop.Token);
                await env.StartHubAsync(stop.Token);
            }
            else
            {
                multi = await MultiHubSandbox.CreateAsync(hubs, options, stop.Token);
                env = multi.Hubs[0];
                await multi.StartAsync(stop.Token);
            }

            var clock = Stopwatch.StartNew();
            var names = Enumerable.Range(1, clients).Select(i => $"sandbox-{i}").ToList();
            await Task.WhenAll(names.Select((name, i) => multi is null
                ? env.AddAgentAsync(name, ["sandbox"], start: true, stop.Token)
                : multi.AddAgentAsync(name, i % hubs, ["sandbox"], start: true, stop.Token)));

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
            if (multi is not null)
            {
                using var registry = env.OpenRegistry();
                var held = registry.ListOpenSessions().GroupBy(s => s.HubId ?? "?").OrderBy(g => g.Key, StringComparer.Ordinal);
                Console.WriteLine($"sessions per hub: {string.Join(", ", held.Select(g => $"{g.Key} {g.Count()}"))}");
            }

            var execFile = env.ServerExecutable;
            string[] exec = ["exec", "--data", env.Data.Path, "--all", "--", "uname", "-a"];
            if (multi is not null)
            {
                // As an operator would: through hub-1's operator service over ssh, which relays the targets the other
                // hubs hold to those hubs (each hub published its relay endpoint in the registry).
                var (_, server) = await multi.AddOperatorAsync("sandbox-operator", "operator", hub: 0, stop.Token);
                Console.WriteLine("running uname -a through hub-1's operator service (--server); hub-1 relays the other hubs' clients to their hubs");
                execFile = "env";
                exec = ["-u", "SSH_AUTH_SOCK", "ETPHONEHOME_CONFIG_DIR=" + Path.Combine(multi.WorkDirectory, "operator-profile"),
                        env.ServerExecutable, .. server, "exec", "--all", "--", "uname", "-a"];
            }

            var (exit, stdout, stderr) = await SandboxEnvironment.RunForResultAsync(execFile, exec, stop.Token);
            Console.Write(stdout);
            Console.Error.Write(stderr);
            if (once)
            {
                Console.WriteLine(exit == 0 ? "every client answered" : "some clients did not answer");
                return exit == 0 ? 0 : 1;
            }

            var moduleDirectory = Path.GetFullPath(Path.Combine(env.BinDirectory, "..", "EtPhoneHome"));
            var pwsh = PowerShellLauncher.Find(env.BinDirectory);
            var pwshArguments = PowerShellLauncher.SandboxShellArguments(moduleDirectory, env.Data.Path);
            if (shell)
            {
                Console.WriteLine($"opening {string.Join(' ', pwsh.Prefix)} with the module pointed at the sandbox; `exit` stops the sandbox");
                Volatile.Write(ref shellRunning, true);
                try
                {
                    return await PowerShellLauncher.RunInteractiveAsync(pwsh, pwshArguments, stop.Token);
                }
                finally
                {
                    Volatile.Write(ref shellRunning, false);
                }
            }

            Console.WriteLine();
            if (multi is not null)
            {
                Console.WriteLine($"PostgreSQL registry on 127.0.0.1:{multi.Database.Port}, connection string in {multi.RegistryFile} (0600).");
                foreach (var hub in multi.Hubs)
                {
                    Console.WriteLine($"{hub.Options.HubId}: sshd on 127.0.0.1:{hub.SshPort}, data directory {hub.Data.Path}, logs in {hub.WorkDirectory}");
                }
            }

            Console.WriteLine($"sshd on 127.0.0.1:{env.SshPort}, fleet account {env.FleetUser} (agents and operators log in as it).");
            Console.WriteLine("The sandbox is running. From another shell:");
            Console.WriteLine($"  {env.ServerExecutable} clients --data {env.Data.Path}");
            Console.WriteLine($"  {env.ServerExecutable} exec --data {env.Data.Path} --all -- uptime");
            Console.WriteLine("PowerShell with the module imported and pointed at the sandbox:");
            Console.WriteLine($"  {PowerShellLauncher.CommandLine(pwsh, pwshArguments)}");
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
            if (multi is not null || env is not null)
            {
                Console.Error.WriteLine($"logs are kept in {multi?.WorkDirectory ?? env!.WorkDirectory}");
                Environment.SetEnvironmentVariable("EPH_SANDBOX_KEEP", "1");
            }

            return 1;
        }
        finally
        {
            if (multi is not null)
            {
                Console.WriteLine("stopping sandbox…");
                await multi.DisposeAsync();
            }
            else if (env is not null)
            {
                Console.WriteLine("stopping sandbox…");
                await env.DisposeAsync();
            }
        }
    }

    private static async Task WatchParentAsync(CancellationTokenSource stop)
    {
        var parent = GetParentProcessId();
        while (!stop.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(500)).ConfigureAwait(false);
            if (GetParentProcessId() != parent)
            {
                // Re-parented: the starter is gone.
                Console.Error.WriteLine("eph-sandbox: the parent process is gone; stopping");
                await stop.CancelAsync().ConfigureAwait(false);
                return;
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "getppid")]
    private static partial int GetParentProcessId();
}
