using EtPhoneHome.Core.Operations;
using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Hub;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Core.Webhooks;

using EtPhoneHome.Server.Mcp;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Verbs that set up and run the hub: init, sshd-config, run.</summary>
internal static class HubVerbs
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(InitCommand());
        root.Subcommands.Add(SshdConfigCommand());
        root.Subcommands.Add(RunCommand());
    }

    private static Command InitCommand()
    {
        var data = CommonOptions.Data;
        var cmd = new Command("init", "Create the data directory (0700), the registry, the MCP API key (0600) and the sshd host key. Safe to run again.");
        cmd.Options.Add(data);
        cmd.SetAction(async (parseResult, ct) =>
        {
            var dir = CommonOptions.ResolveData(parseResult, data);
            return await InitAsync(dir, Console.Out, ct).ConfigureAwait(false);
        });
        return cmd;
    }

    internal static async Task<int> InitAsync(DataDirectory dir, TextWriter output, CancellationToken ct)
    {
        var dirExisted = Directory.Exists(dir.Path);
        if (dirExisted && !OperatingSystem.IsWindows())
        {
            // It holds the session secrets and the MCP key: nobody but its owner may list or enter it.
            var mode = File.GetUnixFileMode(dir.Path);
            const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
            if (mode != OwnerOnly)
            {
                File.SetUnixFileMode(dir.Path, OwnerOnly);
                output.WriteLine($"tightened {dir.Path} from mode {Convert.ToString((int)mode, 8)} to 0700");
            }
        }

        var dbExisted = File.Exists(dir.RegistryFile);
        if (EphConfiguration.Registry is { Length: > 0 } named)
        {
            // init --registry: every process of this data directory (the hub, verbs sshd runs, cmdlets) opens that registry.
            Directory.CreateDirectory(dir.Path);
            RegistrySource.Record(dir, named);
        }

        using (var registry = EphConfiguration.OpenRegistryOf(dir))
        {
            output.WriteLine(dirExisted ? $"data directory {dir.Path} exists" : $"created data directory {dir.Path} (mode 0700)");
            if (registry.Engine != "sqlite")
            {
                output.WriteLine($"registry {registry.Location} (PostgreSQL, schema version {registry.SchemaVersion()})"
                    + (EphConfiguration.Registry is { Length: > 0 } ? $"; recorded in {Path.Combine(dir.Path, RegistrySource.FileName)} (mode 0600)" : ""));
            }
            else
            {
                output.WriteLine(dbExisted
                    ? $"registry {dir.RegistryFile} exists (schema version {registry.SchemaVersion()})"
                    : $"created registry {dir.RegistryFile} (mode 0600, schema version {registry.SchemaVersion()})");
            }
        }

        output.WriteLine(McpHttpKey.EnsureFile(dir.McpApiKeyFile)
            ? $"created MCP API key {dir.McpApiKeyFile} (mode 0600; MCP over HTTP requires it)"
            : $"MCP API key {dir.McpApiKeyFile} exists");

        if (!Directory.Exists(dir.SshDirectory) && !OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(dir.SshDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        if (File.Exists(dir.HostKeyFile))
        {
            output.WriteLine($"sshd host key {dir.HostKeyFile} exists");
            return 0;
        }

        var psi = new ProcessStartInfo("ssh-keygen") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var a in new[] { "-t", "ed25519", "-N", "", "-C", "eph-server host key", "-f", dir.HostKeyFile, "-q" })
        {
            psi.ArgumentList.Add(a);
        }

        using var proc = Process.Start(psi) ?? throw new InvalidOperationException("could not start ssh-keygen");
        var stderr = proc.StandardError.ReadToEndAsync(ct);
        await proc.WaitForExitAsync(ct).ConfigureAwait(false);
        if (proc.ExitCode != 0)
        {
            Console.Error.WriteLine($"ssh-keygen failed ({proc.ExitCode}): {(await stderr.ConfigureAwait(false)).Trim()}");
            return 1;
        }

        output.WriteLine($"created sshd host key {dir.HostKeyFile}");
        return 0;
    }

    private static Command SshdConfigCommand()
    {
        var data = CommonOptions.Data;
        var listen = new Option<string>("--listen") { Description = "Address sshd listens on", DefaultValueFactory = _ => "127.0.0.1" };
        var port = new Option<int>("--port") { Description = "Port sshd listens on", DefaultValueFactory = _ => 2222 };
        var user = new Option<string?>("--user") { Description = "The account agents log in as (default: the current user)" };
        var gatePath = new Option<string?>("--gate-path") { Description = "Path of eph-gate as sshd runs it (default: next to eph-server)" };
        var cmd = new Command("sshd-config", "Print a complete sshd_config wired to eph-gate, runnable with `sshd -f FILE -D -e`.");
        cmd.Options.Add(data);
        cmd.Options.Add(listen);
        cmd.Options.Add(port);
        cmd.Options.Add(user);
        cmd.Options.Add(gatePath);
        cmd.SetAction(parseResult =>
        {
            var dir = CommonOptions.ResolveData(parseResult, data);
            try
            {
                var account = parseResult.GetValue(user) ?? Environment.UserName;
                Console.Out.Write(BuildSshdConfig(
                    dir,
                    parseResult.GetValue(listen) ?? "127.0.0.1",
                    parseResult.GetValue(port),
                    account,
                    parseResult.GetValue(gatePath) ?? DefaultGatePath()));
                if (ShellWarning(account, File.Exists("/etc/passwd") ? File.ReadLines("/etc/passwd") : []) is { } warning)
                {
                    Console.Error.WriteLine($"eph-server sshd-config: warning: {warning}");
                }

                return 0;
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine($"eph-server sshd-config: {ex.Message}");
                return 2;
            }
        });
        return cmd;
    }

    /// <summary>
    /// A warning when the fleet account's login shell reads rc files for SSH sessions (bash, zsh, fish…) or is root:
    /// sshd runs each forced command through it, so its start-up is paid on every agent admission. Null when fine or
    /// unknown (no such account in <paramref name="passwd"/>).
    /// </summary>
    internal static string? ShellWarning(string account, IEnumerable<string> passwd)
    {
        foreach (var line in passwd)
        {
            var f = line.Split(':');
            if (f.Length < 7 || f[0] != account)
            {
                continue;
            }

            if (f[2] == "0")
            {
                return $"'{account}' is root: agents would log in as root, and every gate would run as root; " +
                       "create an unprivileged account (useradd --system --user-group --shell /bin/sh --home-dir /nonexistent eph) and pass --user";
            }

            var shell = Path.GetFileName(f[6]);
            return shell is "sh" or "dash" ? null
                : $"the login shell of '{account}' is {f[6]}: sshd runs each forced command through it, and its start-up files " +
                  "run on every agent admission; give the account /bin/sh (usermod -s /bin/sh " + account + ")";
        }

        return null;
    }

    /// <summary>eph-gate next to the running eph-server.</summary>
    internal static string DefaultGatePath()
        => Path.Combine(AppContext.BaseDirectory, "eph-gate");

    internal static string BuildSshdConfig(DataDirectory dir, string listen, int port, string user, string gatePath)
    {
        // sshd splits its lines on whitespace, treats quotes and % (tokens such as %u) specially, and runs the forced
        // command through a shell: a path with any of these would change what sshd runs. Refused, not quoted.
        foreach (var (name, value) in new[] { ("the data directory", dir.Path), ("--gate-path", gatePath), ("--user", user), ("--listen", listen) })
        {
            if (value.Length == 0 || value.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '"' or '\'' or '%' or '\\' or '`' or '$' or ';' or '&' or '|' or '<' or '>' or '(' or ')' or '*' or '?' or '#'))
            {
                throw new ArgumentException($"{name} '{value}' contains characters sshd_config or a forced command would interpret; use a plain path or name");
            }
        }

        var sb = new StringBuilder();
        var inv = CultureInfo.InvariantCulture;
        sb.AppendLine("# sshd_config generated by `eph-server sshd-config` for EtPhoneHome.");
        sb.AppendLine(inv, $"# Run: sshd -f <this file> -D -e");
        sb.AppendLine("#");
        sb.AppendLine("# This file runs a dedicated sshd for the fleet. On a production host that already runs sshd,");
        sb.AppendLine("# put the AuthorizedKeys*/Allow*/Permit*/forwarding lines below into a `Match User <user>` block of");
        sb.AppendLine("# the main sshd_config instead, so that only the fleet account is served by eph-gate.");
        sb.AppendLine();
        sb.AppendLine(inv, $"ListenAddress {listen}");
        sb.AppendLine(inv, $"Port {port}");
        sb.AppendLine(inv, $"HostKey {dir.HostKeyFile}");
        sb.AppendLine(inv, $"PidFile {Path.Combine(dir.SshDirectory, "sshd.pid")}");
        sb.AppendLine();
        sb.AppendLine("# Keys are decided by the hub through eph-gate; no authorized_keys files are read.");
        sb.AppendLine("AuthorizedKeysFile none");
        sb.AppendLine(inv, $"AuthorizedKeysCommand {gatePath} keys --socket {dir.HubSocket} %u %f %t %k");
        sb.AppendLine(inv, $"AuthorizedKeysCommandUser {user}");
        sb.AppendLine("PubkeyAuthentication yes");
        sb.AppendLine("PasswordAuthentication no");
        sb.AppendLine("KbdInteractiveAuthentication no");
        sb.AppendLine("PermitRootLogin prohibit-password");
        sb.AppendLine(inv, $"AllowUsers {user}");
        sb.AppendLine("UsePAM no");
        sb.AppendLine("StrictModes yes");
        sb.AppendLine("# sshd runs every forced command through the account's login shell: give the account /bin/sh and no home,");
        sb.AppendLine("# so that no rc file runs on each agent admission (Debian's bash reads ~/.bashrc for every SSH session).");
        sb.AppendLine("PermitUserRC no");
        sb.AppendLine("PermitUserEnvironment no");
        sb.AppendLine();
        sb.AppendLine("# Only reverse TCP forwards to loopback, each key to its own port (permitlisten). No unix-socket forwards:");
        sb.AppendLine("# permitlisten does not bound them, so a client could listen at any path this account can write.");
        sb.AppendLine("AllowTcpForwarding remote");
        sb.AppendLine("AllowStreamLocalForwarding no");
        sb.AppendLine("GatewayPorts no");
        sb.AppendLine("X11Forwarding no");
        sb.AppendLine("AllowAgentForwarding no");
        sb.AppendLine("PermitTTY no");
        sb.AppendLine("PermitTunnel no");
        sb.AppendLine();
        sb.AppendLine("# Liveness backstop and restart-storm limits.");
        sb.AppendLine("ClientAliveInterval 30");
        sb.AppendLine("ClientAliveCountMax 3");
        sb.AppendLine("MaxStartups 100:30:1000");
        sb.AppendLine("MaxSessions 10");
        sb.AppendLine("LogLevel INFO");
        return sb.ToString();
    }

    /// <summary>The monitor settings of <c>run</c>'s --health-* options; out-of-range values name the option.</summary>
    internal static HealthOptions HealthSettings(double intervalSeconds, double timeoutSeconds, int threshold)
    {
        if (double.IsNaN(intervalSeconds) || intervalSeconds is < 0.1 or > 3600)
        {
            throw new ArgumentOutOfRangeException("--health-interval", intervalSeconds, $"--health-interval must be between 0.1 and 3600 seconds (got {intervalSeconds.ToString(CultureInfo.InvariantCulture)})");
        }

        if (double.IsNaN(timeoutSeconds) || timeoutSeconds is < 0.1 or > 600)
        {
            throw new ArgumentOutOfRangeException("--health-timeout", timeoutSeconds, $"--health-timeout must be between 0.1 and 600 seconds (got {timeoutSeconds.ToString(CultureInfo.InvariantCulture)})");
        }

        if (threshold is < 1 or > 100)
        {
            throw new ArgumentOutOfRangeException("--health-threshold", threshold, $"--health-threshold must be between 1 and 100 (got {threshold})");
        }

        var options = new HealthOptions
        {
            Interval = TimeSpan.FromSeconds(intervalSeconds),
            Timeout = TimeSpan.FromSeconds(timeoutSeconds),
            Threshold = threshold,
        };
        options.Validate();
        return options;
    }

    /// <summary>The longest --dead-hub-timeout (a day): a dead hub's agents wait that long for its sessions to close.</summary>
    internal const double MaxDeadHubTimeoutSeconds = 86_400;

    /// <summary>
    /// <c>run</c>'s --dead-hub-timeout: at least <see cref="HubOptions.MinimumDeadHubTimeout"/> of the hub heartbeat
    /// (a live hub is never called dead over a slow or failed write), at most a day; anything else names the option.
    /// </summary>
    internal static TimeSpan DeadHubTimeout(double seconds, TimeSpan hubHeartbeatInterval)
    {
        var floor = HubOptions.MinimumDeadHubTimeout(hubHeartbeatInterval).TotalSeconds;
        if (!double.IsFinite(seconds) || seconds < floor || seconds > MaxDeadHubTimeoutSeconds)
        {
            throw new ArgumentOutOfRangeException("--dead-hub-timeout", seconds,
                $"--dead-hub-timeout must be between {floor.ToString(CultureInfo.InvariantCulture)} and {MaxDeadHubTimeoutSeconds.ToString(CultureInfo.InvariantCulture)} seconds " +
                $"(got {seconds.ToString(CultureInfo.InvariantCulture)}): hubs write their heartbeat every {hubHeartbeatInterval.TotalSeconds.ToString(CultureInfo.InvariantCulture)} s, " +
                $"and a live hub that misses {HubOptions.HubHeartbeatsMissedBeforeDead} in a row (a slow or failing registry) must not have its sessions closed by the others");
        }

        return TimeSpan.FromSeconds(seconds);
    }

    private static Command RunCommand()
    {
        var data = CommonOptions.Data;
        var gatePath = new Option<string?>("--gate-path") { Description = "Path of eph-gate as sshd runs it (default: next to eph-server)" };
        var heartbeat = new Option<int>("--heartbeat") { Description = "Heartbeat interval in seconds told to agents", DefaultValueFactory = _ => 15 };
        var http = new Option<string?>("--http") { Description = "Also serve MCP Streamable HTTP (/mcp) and /health on ADDR, e.g. 127.0.0.1:8765 (a port outside --tunnel-ports)" };
        var tunnelPorts = new Option<string>("--tunnel-ports")
        {
            Description = "Server ports handed to approved keys, one each, as FIRST-LAST; sshd lets a client listen on its own port only, so keep the server's own services outside this range",
            DefaultValueFactory = _ => TunnelPortRange.Default.ToString(),
        };
        var apiKeyFile = McpVerbs.ApiKeyFileOption();
        var allowedHost = McpVerbs.AllowedHostOption();
        var allowDir = McpVerbs.AllowLocalDirOption();
        var healthInterval = new Option<double>("--health-interval") { Description = "Seconds between health checks of online clients through their tunnels (0.1–3600)", DefaultValueFactory = _ => HealthOptions.DefaultInterval.TotalSeconds };
        var healthTimeout = new Option<double>("--health-timeout") { Description = "Seconds one health check may take (0.1–600)", DefaultValueFactory = _ => HealthOptions.DefaultTimeout.TotalSeconds };
        var healthThreshold = new Option<int>("--health-threshold") { Description = "Failed checks in a row that make a client unhealthy and close its session (1–100)", DefaultValueFactory = _ => HealthOptions.DefaultThreshold };
        var resumeGrace = new Option<double>("--resume-grace") { Description = "Seconds the sessions a previous hub left open wait for their gates to re-attach them (0–3600; 0 closes them at start)", DefaultValueFactory = _ => 60 };
        var hubHeartbeat = HubOptions.DefaultHubHeartbeatInterval;
        var deadHubTimeout = new Option<double>("--dead-hub-timeout")
        {
            Description = $"With hubs sharing one PostgreSQL registry: seconds without a heartbeat after which the other hubs call a hub dead, close its sessions " +
                $"(its agents reconnect to a hub that runs) and stop relaying to it. Hubs write their heartbeat every {hubHeartbeat.TotalSeconds:0} s, so at least " +
                $"{HubOptions.MinimumDeadHubTimeout(hubHeartbeat).TotalSeconds:0} ({HubOptions.HubHeartbeatsMissedBeforeDead} missed heartbeats) and at most {MaxDeadHubTimeoutSeconds:0}; " +
                "keep it longer than a hub's restart and far longer than the clock skew between hub hosts. Give every hub the same value",
            DefaultValueFactory = _ => HubOptions.DefaultDeadHubTimeout.TotalSeconds,
        };
        var hubId = new Option<string?>("--hub-id")
        {
            Description = "This hub's id among hubs sharing one registry (default $ETPHONEHOME_HUB_ID, else the data directory's hub-id file, written at the first start)",
        };
        var relayAddress = new Option<string?>("--relay-address")
        {
            Description = "With hubs sharing one PostgreSQL registry: where the other hubs reach this host's sshd (user@host:port, the fleet account) to relay operators' requests to this hub's clients; this hub then relays to theirs too",
        };
        var relayHostKey = new Option<string?>("--relay-host-key")
        {
            Description = "This host's sshd public host key, pinned by the other hubs (default /etc/ssh/ssh_host_ed25519_key.pub)",
        };
        var cmd = new Command("run", "Run the hub: answer eph-gate, admit agents, keep sessions alive, check their health, deliver webhooks ($ETPHONEHOME_WEBHOOK_URL, $ETPHONEHOME_WEBHOOK_SECRET), and with --http serve MCP and /health. Stops on SIGTERM or Ctrl+C.");
        cmd.Options.Add(data);
        cmd.Options.Add(gatePath);
        cmd.Options.Add(heartbeat);
        cmd.Options.Add(healthInterval);
        cmd.Options.Add(healthTimeout);
        cmd.Options.Add(healthThreshold);
        cmd.Options.Add(resumeGrace);
        cmd.Options.Add(hubId);
        cmd.Options.Add(deadHubTimeout);
        cmd.Options.Add(relayAddress);
        cmd.Options.Add(relayHostKey);
        cmd.Options.Add(http);
        cmd.Options.Add(tunnelPorts);
        cmd.Options.Add(allowedHost);
        cmd.Options.Add(apiKeyFile);
        cmd.Options.Add(allowDir);
        cmd.SetAction(async (parseResult, ct) =>
        {
            var dir = CommonOptions.ResolveData(parseResult, data);
            var seconds = parseResult.GetValue(heartbeat);
            if (seconds is < 1 or > 3600)
            {
                Console.Error.WriteLine("--heartbeat must be between 1 and 3600 seconds");
                return 2;
            }

            var grace = parseResult.GetValue(resumeGrace);
            if (!(grace is >= 0 and <= 3600))
            {
                Console.Error.WriteLine("--resume-grace must be between 0 and 3600 seconds");
                return 2;
            }

            TimeSpan deadAfter;
            try
            {
                deadAfter = DeadHubTimeout(parseResult.GetValue(deadHubTimeout), hubHeartbeat);
            }
            catch (ArgumentOutOfRangeException ex)
            {
                Console.Error.WriteLine($"eph-server run: {ex.Message.Split(Environment.NewLine)[0].Split(" (Parameter")[0]}");
                return 2;
            }

            HealthOptions health;
            try
            {
                health = HealthSettings(parseResult.GetValue(healthInterval), parseResult.GetValue(healthTimeout), parseResult.GetValue(healthThreshold));
            }
            catch (ArgumentOutOfRangeException ex)
            {
                Console.Error.WriteLine(ex.Message.Split(Environment.NewLine)[0]);
                return 2;
            }

            WebhookOptions webhookOptions;
            try
            {
                webhookOptions = WebhookOptions.FromEnvironment();
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine(ex.Message);
                return 2;
            }

            string? givenHubId = parseResult.GetValue(hubId) ?? Environment.GetEnvironmentVariable(HubIdentity.EnvironmentVariable);
            if (!string.IsNullOrWhiteSpace(givenHubId))
            {
                try
                {
                    givenHubId = HubIds.Validate(givenHubId.Trim());
                }
                catch (ArgumentException ex)
                {
                    Console.Error.WriteLine($"eph-server run: --hub-id: {ex.Message.Split(" (Parameter")[0]}");
                    return 2;
                }
            }
            else
            {
                givenHubId = null;
            }

            var relay = parseResult.GetValue(relayAddress);
            if (relay is not null && !ServerAddress.TryParse(relay, out _))
            {
                Console.Error.WriteLine($"eph-server run: --relay-address: '{UntrustedText.ForTerminal(relay)}' is not user@host[:port]");
                return 2;
            }

            Mcp.McpHttpOptions? httpOptions = null;
            TunnelPortRange ports;
            try
            {
                ports = TunnelPortRange.Parse(parseResult.GetValue(tunnelPorts) ?? string.Empty);
                httpOptions = parseResult.GetValue(http) is { } address
                    ? Mcp.McpHttpOptions.Create(address, parseResult.GetValue(apiKeyFile), Environment.GetEnvironmentVariable,
                        CommonOptions.ResolveData(parseResult, data).McpApiKeyFile, parseResult.GetValue(allowedHost))
                    : null;
                if (httpOptions is not null)
                {
                    TunnelPortRange.EnsureServicePort(httpOptions.EndPoint.Port, ports, "--http");
                }
            }
            catch (ArgumentException ex)
            {
                Console.Error.WriteLine($"eph-server run: {ex.Message}");
                return 2;
            }

            if (!RegistrySource.Resolve(dir, EphConfiguration.Registry).IsPostgres && !File.Exists(dir.RegistryFile))
            {
                Console.Error.WriteLine($"eph-server run: no registry in {dir.Path} (is --data right?); eph-server init --data {dir.Path} creates one");
                return 2;
            }

            using var registry = EphConfiguration.OpenRegistryOf(dir);
            var log = CliLog.ForDaemon(Console.Error);
            await using var webhooks = new WebhookDispatcher(registry, webhookOptions, log);
            await using var hub = new HubServer(registry, new HubOptions
            {
                Log = log,
                DataDirectory = dir,
                GatePath = parseResult.GetValue(gatePath) ?? DefaultGatePath(),
                HeartbeatSeconds = seconds,
                ResumeGrace = TimeSpan.FromSeconds(grace),
                Health = health,
                TunnelPorts = ports,
                HubId = givenHubId,
                DeadHubTimeout = deadAfter,
                RelayAddress = relay,
                RelayHostKeyFile = parseResult.GetValue(relayHostKey) ?? new HubOptions { DataDirectory = dir }.RelayHostKeyFile,
            });
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
                System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
                {
                    ctx.Cancel = true;
                    stop.Cancel();
                });
            await hub.StartAsync(stop.Token).ConfigureAwait(false);
            webhooks.Start();
            Console.Out.WriteLine($"hub listening on {hub.SocketPath}");
            Console.Out.Flush();
            await using var mcp = httpOptions is null ? null
                : await McpVerbs.StartHttpAsync(RegistryStores.Of(registry), McpVerbs.Settings(parseResult.GetValue(allowDir), EtPhoneHome.Mcp.McpServerSettings.DefaultMaxOutputBytes), httpOptions, stop.Token).ConfigureAwait(false);
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // SIGTERM or Ctrl+C.
            }

            await hub.StopAsync().ConfigureAwait(false);
            await webhooks.StopAsync().ConfigureAwait(false);
            Console.Error.WriteLine("hub stopped");
            return 0;
        });
        return cmd;
    }
}
