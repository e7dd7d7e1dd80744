using System.Globalization;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// A private phone-home deployment on 127.0.0.1: a stock OpenSSH sshd configured by
/// <c>eph-server sshd-config</c>, the hub, and any number of agents with their own config dirs.
/// Used by <c>./build.sh sandbox</c> and by the integration tests. Everything it starts is stopped by PID.
/// </summary>
public sealed partial class SandboxEnvironment : IAsyncDisposable
{
    private const string SshdPath = "/usr/sbin/sshd";
    private const string GateRoot = "/opt/etphonehome-sandbox";

    /// <summary>
    /// The name of a sandbox's gate directory under the gate root, unique per work directory: two sandboxes whose work
    /// folders share a name (…/a/env, …/b/env) must not copy over each other's running gate ("Text file busy") or
    /// delete it when one stops. The work folder's name, then 12 hex digits of the SHA-256 of its full path.
    /// </summary>
    public static string GateDirectoryName(string workDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(workDirectory);
        var fullWork = Path.GetFullPath(workDirectory).TrimEnd('/');
        return Path.GetFileName(fullWork) + "-" + Convert.ToHexString(
            System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(fullWork)))[..12].ToLowerInvariant();
    }
    private readonly SandboxOptions _options;
    private readonly List<SandboxAgent> _agents = [];
    private readonly bool _ownsWorkDirectory;
    private ManagedProcess? _sshd;
    private ManagedProcess? _hub;
    private uint _fleetGroup;

    private SandboxEnvironment(SandboxOptions options, string binDirectory, string workDirectory, bool ownsWorkDirectory, string gatePath, int sshPort)
    {
        _options = options;
        BinDirectory = binDirectory;
        WorkDirectory = workDirectory;
        _ownsWorkDirectory = ownsWorkDirectory;
        GatePath = gatePath;
        SshPort = sshPort;
        Data = new DataDirectory(Path.Combine(workDirectory, "server"));
    }

    public string BinDirectory { get; }

    /// <summary>The account agents and operators log in as (<see cref="FleetAccount"/>): unprivileged, /bin/sh, no rc files.</summary>
    public string FleetUser => FleetAccount.Name;
    public string WorkDirectory { get; }
    public DataDirectory Data { get; }
    /// <summary>Root-owned copy of eph-gate that sshd runs (sshd refuses a command on a writable path).</summary>
    public string GatePath { get; }
    public int SshPort { get; }
    public string SshdConfigFile => Path.Combine(WorkDirectory, "sshd_config");
    public IReadOnlyList<SandboxAgent> Agents
    {
        get
        {
            lock (_agents)
            {
                return [.. _agents];
            }
        }
    }
    public ManagedProcess? Sshd => _sshd;
    public ManagedProcess? Hub => _hub;
    public string ServerExecutable => Path.Combine(BinDirectory, "eph-server");
    public string AgentExecutable => Path.Combine(BinDirectory, "eph-agent");

    /// <summary>Prepares directories, the registry, the gate copy and the sshd config. Starts nothing yet.</summary>
    public static async Task<SandboxEnvironment> CreateAsync(SandboxOptions options, CancellationToken ct = default)
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            throw new SandboxException("the sandbox runs on Linux (and macOS): it needs OpenSSH's sshd");
        }

        if (GetEffectiveUserId() != 0)
        {
            throw new SandboxException(
                "the sandbox needs root: sshd must run as root to authenticate users, and it only runs an AuthorizedKeysCommand " +
                "from a root-owned path. Run it with sudo (sudo ./build.sh sandbox) or as root.");
        }

        if (!File.Exists(SshdPath))
        {
            throw new SandboxException($"{SshdPath} not found: install OpenSSH's server (apt-get install openssh-server)");
        }

        var bin = options.ResolveBinDirectory();
        var fleetGroup = await FleetAccount.EnsureAsync(ct).ConfigureAwait(false);
        var owns = options.WorkDirectory is null;
        var work = options.WorkDirectory ?? Directory.CreateTempSubdirectory("eph-sandbox-").FullName;
        Directory.CreateDirectory(work);
        FleetAccount.CheckReachable(work);
        FleetAccount.GrantTraverse(work, fleetGroup);

        var gateDir = Path.Combine(GateRoot, GateDirectoryName(work));
        var publicDir = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                        UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;
        Directory.CreateDirectory(gateDir);
        File.SetUnixFileMode(GateRoot, publicDir);
        File.SetUnixFileMode(gateDir, publicDir);
        var gatePath = Path.Combine(gateDir, "eph-gate");
        File.Copy(Path.Combine(bin, "eph-gate"), gatePath, overwrite: true);
        File.SetUnixFileMode(gatePath, publicDir);

        var env = new SandboxEnvironment(options, bin, work, owns, gatePath, FreeTcpPort()) { _fleetGroup = fleetGroup };
        await env.RunServerVerbAsync(
            options.Registry is { } registry ? ["init", "--data", env.Data.Path, "--registry", registry] : ["init", "--data", env.Data.Path], ct).ConfigureAwait(false);
        FleetAccount.GrantTraverse(env.Data.Path, fleetGroup);
        var config = await env.RunServerVerbAsync(
            ["sshd-config", "--data", env.Data.Path, "--listen", "127.0.0.1", "--port", env.SshPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--user", FleetAccount.Name, "--gate-path", gatePath], ct).ConfigureAwait(false);
        await File.WriteAllTextAsync(env.SshdConfigFile, config, ct).ConfigureAwait(false);
        Directory.CreateDirectory("/run/sshd");
        env.Say($"sandbox in {work}");
        return env;
    }

    /// <summary>Starts sshd and waits until it accepts connections.</summary>
    public async Task StartSshdAsync(CancellationToken ct = default)
    {
        if (_sshd is { HasExited: false })
        {
            return;
        }

        _sshd = ManagedProcess.Start("sshd", SshdPath, ["-f", SshdConfigFile, "-D", "-e"], Path.Combine(WorkDirectory, "sshd.log"));
        await WaitUntilAsync(() => _sshd.HasExited ? throw Failed(_sshd, "sshd exited") : PortOpen(SshPort), TimeSpan.FromSeconds(15), "sshd to listen", ct).ConfigureAwait(false);
        Say($"sshd listening on 127.0.0.1:{SshPort} (pid {_sshd.Pid})");
    }

    /// <summary>Stops sshd (its children, the gate relays, are cut with it).</summary>
    public async Task StopSshdAsync()
    {
        if (_sshd is null)
        {
            return;
        }

        // sshd's per-connection children outlive the listener; stop them too, as a host restart would.
        await _sshd.StopAsync(includeDescendants: true).ConfigureAwait(false);
        _sshd = null;
    }

    /// <summary>Starts the hub and waits for its socket.</summary>
    public async Task StartHubAsync(CancellationToken ct = default)
    {
        if (_hub is { HasExited: false })
        {
            return;
        }

        File.Delete(Data.HubSocket);
        _hub = ManagedProcess.Start("hub", ServerExecutable,
            ["run", "--data", Data.Path, "--gate-path", GatePath, "--heartbeat", Seconds(_options.HeartbeatSeconds),
             .. _options.Registry is { } registry ? (string[])["--registry", registry] : [],
             .. _options.HubId is { } hubId ? (string[])["--hub-id", hubId] : [],
             .. _options.Relay
                 ? (string[])["--relay-address", $"{FleetUser}@127.0.0.1:{SshPort.ToString(CultureInfo.InvariantCulture)}", "--relay-host-key", Data.HostKeyFile + ".pub"]
                 : [],
             .. _options.ExtraHubArguments],
            Path.Combine(WorkDirectory, "hub.log"), _options.HubEnvironment?.ToDictionary(e => e.Key, e => e.Value));
        await WaitUntilAsync(() => _hub.HasExited ? throw Failed(_hub, "hub exited") : File.Exists(Data.HubSocket), TimeSpan.FromSeconds(30), "the hub socket", ct).ConfigureAwait(false);
        // The gate runs as the fleet account: the socket (0660) joins its group. Until then the gate finds no hub, as
        // while the hub starts.
        FleetAccount.SetGroup(Data.HubSocket, _fleetGroup);
        Say($"hub running (pid {_hub.Pid})");
    }

    /// <summary>
    /// Kills sshd and every process below it (the gate relays of its sessions) with SIGKILL, as the host going down
    /// would: agents see their connection drop.
    /// </summary>
    public async Task KillSshdAsync()
    {
        if (_sshd is not null)
        {
            await _sshd.KillAsync(includeDescendants: true).ConfigureAwait(false);
            _sshd = null;
        }
    }

    /// <summary>Kills the hub with SIGKILL, as a crash would: no cleanup, its socket file stays behind.</summary>
    public async Task KillHubAsync()
    {
        if (_hub is not null)
        {
            await _hub.KillAsync().ConfigureAwait(false);
            _hub = null;
        }
    }

    public async Task StopHubAsync()
    {
        if (_hub is not null)
        {
            await _hub.StopAsync().ConfigureAwait(false);
            _hub = null;
        }
    }

    /// <summary>Creates an agent config (eph-agent init) and, unless told otherwise, starts it.</summary>
    public async Task<SandboxAgent> AddAgentAsync(string name, IEnumerable<string>? tags = null, bool start = true, CancellationToken ct = default)
    {
        var configDir = Path.Combine(WorkDirectory, "agents", name);
        var args = new List<string>
        {
            "init", "--config-dir", configDir, "--server", "127.0.0.1", "--port", SshPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "--user", FleetUser, "--name", name, "--accept-host-key",
        };
        foreach (var tag in tags ?? [])
        {
            args.Add("--tag");
            args.Add(tag);
        }

        await RunAsync(AgentExecutable, args, ct).ConfigureAwait(false);
        TuneAgentConfig(Path.Combine(configDir, "agent.json"));
        var agent = new SandboxAgent(this, name, configDir);
        lock (_agents)
        {
            // Agents are added concurrently (the sandbox starts N at once); every one must be stopped later.
            _agents.Add(agent);
        }

        if (start)
        {
            agent.Start();
        }

        return agent;
    }

    /// <summary>
    /// Adds an operator key (ed25519, made here in <paramref name="keyDirectory"/>, default the work directory) with
    /// <paramref name="role"/> to this hub's registry; returns the private key file and the <c>--server</c> arguments
    /// that reach this hub's operator service with it.
    /// </summary>
    public async Task<(string KeyFile, string[] ServerArguments)> AddOperatorAsync(string name, string role, string? keyDirectory = null, CancellationToken ct = default)
    {
        var key = Path.Combine(keyDirectory ?? WorkDirectory, "operator-" + name);
        if (!File.Exists(key))
        {
            await RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", key], ct).ConfigureAwait(false);
            await RunServerVerbAsync(["operators", "add", "--data", Data.Path, "--name", name, "--public-key-file", key + ".pub", "--role", role], ct).ConfigureAwait(false);
        }

        var fingerprint = (await RunAsync("ssh-keygen", ["-lf", Data.HostKeyFile + ".pub"], ct).ConfigureAwait(false)).Split(' ')[1];
        return (key, ["--server", $"{FleetUser}@127.0.0.1:{SshPort.ToString(System.Globalization.CultureInfo.InvariantCulture)}", "--key-file", key, "--host-key-fingerprint", fingerprint]);
    }

    /// <summary>
    /// Opens the registry (the caller disposes it): the one the hub of this data directory opens (its registry.conf,
    /// written by init --registry, else SQLite in the data directory).
    /// </summary>
    public SqliteRegistry OpenRegistry() => SqliteRegistry.Open(Data, RegistrySource.Resolve(Data, _options.Registry));

    /// <summary>The known_hosts line pinning this sandbox's sshd host key, as an agent elsewhere would pin it.</summary>
    public string KnownHostsLine()
    {
        var key = File.ReadAllText(Data.HostKeyFile + ".pub").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        return $"[127.0.0.1]:{SshPort.ToString(System.Globalization.CultureInfo.InvariantCulture)} {key[0]} {key[1]}";
    }

    /// <summary>Waits until at least <paramref name="count"/> keys are pending; returns them.</summary>
    public async Task<IReadOnlyList<KeyRecord>> WaitForPendingKeysAsync(int count, TimeSpan timeout, CancellationToken ct = default)
    {
        // Awaited inside the using: the registry must stay open while polling (a PostgreSQL one refuses once disposed).
        using var registry = OpenRegistry();
        return await WaitUntilAsync(() =>
        {
            var pending = registry.ListKeys(KeyStatus.Pending);
            return pending.Count >= count ? pending : null;
        }, timeout, $"{count} pending key(s)", ct).ConfigureAwait(false);
    }

    /// <summary>Waits until every named client is online; returns their records.</summary>
    public async Task<IReadOnlyList<ClientRecord>> WaitOnlineAsync(IReadOnlyCollection<string> displayNames, TimeSpan timeout, CancellationToken ct = default)
    {
        using var registry = OpenRegistry();
        return await WaitUntilAsync(() =>
        {
            var online = registry.QueryClients(new ClientQuery { OnlineOnly = true })
                .Where(c => displayNames.Contains(c.DisplayName)).ToList();
            return online.Count == displayNames.Count ? (IReadOnlyList<ClientRecord>)online : null;
        }, timeout, $"{string.Join(", ", displayNames)} online", ct).ConfigureAwait(false);
    }

    /// <summary>Waits until the named client is offline.</summary>
    public async Task WaitOfflineAsync(string displayName, TimeSpan timeout, CancellationToken ct = default)
    {
        using var registry = OpenRegistry();
        await WaitUntilAsync(() =>
            registry.QueryClients(new ClientQuery { Names = [displayName] }).All(c => !c.Online) ? (object)true : null,
            timeout, $"{displayName} offline", ct).ConfigureAwait(false);
    }

    /// <summary>Polls <paramref name="probe"/> until it returns non-null (or true); throws with a clear message on timeout.</summary>
    public static async Task<T> WaitUntilAsync<T>(Func<T?> probe, TimeSpan timeout, string what, CancellationToken ct = default)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            var value = probe();
            if (value is not null && value is not false)
            {
                return value;
            }

            if (clock.Elapsed > timeout)
            {
                throw new TimeoutException($"timed out after {timeout.TotalSeconds:0} s waiting for {what}");
            }

            await Task.Delay(100, ct).ConfigureAwait(false);
        }
    }

    /// <summary>Runs an eph-server verb to completion and returns its stdout.</summary>
    public Task<string> RunServerVerbAsync(IReadOnlyList<string> args, CancellationToken ct = default)
        => RunAsync(ServerExecutable, args, ct);

    /// <summary>Runs a program to completion; throws with its stderr when it fails.</summary>
    public static async Task<string> RunAsync(string fileName, IReadOnlyList<string> args, CancellationToken ct = default)
    {
        var result = await RunForResultAsync(fileName, args, ct).ConfigureAwait(false);
        if (result.ExitCode != 0)
        {
            throw new SandboxException($"{Path.GetFileName(fileName)} {string.Join(' ', args.Take(2))} failed (exit {result.ExitCode}): {result.Stderr.Trim()}");
        }

        return result.Stdout;
    }

    /// <summary>Runs a program to completion and returns exit code and output.</summary>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunForResultAsync(string fileName, IReadOnlyList<string> args, CancellationToken ct = default)
    {
        var psi = new ProcessStartInfo(fileName) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new SandboxException($"could not start {fileName}");
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct).ConfigureAwait(false);
        return (process.ExitCode, await stdout.ConfigureAwait(false), await stderr.ConfigureAwait(false));
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(Agents.Select(agent => agent.StopAsync())).ConfigureAwait(false);

        await StopHubAsync().ConfigureAwait(false);
        await StopSshdAsync().ConfigureAwait(false);
        TryDelete(Path.GetDirectoryName(GatePath)!);
        if (_ownsWorkDirectory && Environment.GetEnvironmentVariable("EPH_SANDBOX_KEEP") != "1")
        {
            TryDelete(WorkDirectory);
        }
    }

    internal void Say(string line) => _options.Log?.WriteLine(line);

    internal SandboxOptions Options => _options;

    private void TuneAgentConfig(string configFile)
    {
        var node = JsonNode.Parse(File.ReadAllText(configFile))!.AsObject();
        node["heartbeat_s"] = _options.HeartbeatSeconds;
        node["reconnect_initial_s"] = _options.ReconnectInitialSeconds;
        node["reconnect_max_s"] = _options.ReconnectMaxSeconds;
        File.WriteAllText(configFile, node.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true }));
    }

    private static SandboxException Failed(ManagedProcess process, string what)
        => new($"{what} (exit {process.ExitCode}); last lines of {process.LogFile}:{Environment.NewLine}{process.LogTail()}");

    private static string Seconds(double value) => value.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static int FreeTcpPort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static bool PortOpen(int port)
    {
        try
        {
            using var client = new TcpClient();
            client.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEffectiveUserId();
}
