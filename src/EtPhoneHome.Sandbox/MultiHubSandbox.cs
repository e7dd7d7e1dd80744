using System.Text.Json.Nodes;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// Several hubs on one machine, as several hub hosts would run them: a private PostgreSQL cluster
/// (<see cref="PrivatePostgres"/>) as the shared registry, and per hub its own sshd, hub process, data directory and hub
/// id (<c>hub-1</c>, <c>hub-2</c>, …), each a <see cref="SandboxEnvironment"/> whose registry is that database. Agents
/// list every hub's sshd (the first one their home hub, the others under <c>servers</c>, each with its host key pinned
/// in its own known_hosts file). Layout of the work directory: <c>postgres/</c> (the cluster, owned by the postgres
/// user), <c>registry.conf</c> (the connection string, 0600), <c>hub-N/</c> (one sandbox each). Everything it starts is
/// stopped by PID, PostgreSQL last.
/// </summary>
public sealed class MultiHubSandbox : IAsyncDisposable
{
    /// <summary>The database the hubs share.</summary>
    public const string DatabaseName = "etphonehome";

    private readonly List<SandboxEnvironment> _hubs = [];
    private readonly bool _ownsWorkDirectory;

    private MultiHubSandbox(string workDirectory, bool ownsWorkDirectory, PrivatePostgres database, string registryFile)
    {
        WorkDirectory = workDirectory;
        _ownsWorkDirectory = ownsWorkDirectory;
        Database = database;
        RegistryFile = registryFile;
    }

    public string WorkDirectory { get; }

    /// <summary>The shared registry's cluster.</summary>
    public PrivatePostgres Database { get; }

    /// <summary>File holding the registry's connection string (mode 0600), given to every hub as <c>--registry file:…</c>.</summary>
    public string RegistryFile { get; }

    /// <summary>The hubs, each with its sshd and data directory; index 0 is <c>hub-1</c>.</summary>
    public IReadOnlyList<SandboxEnvironment> Hubs => _hubs;

    /// <summary>Every agent of every hub.</summary>
    public IReadOnlyList<SandboxAgent> Agents => [.. _hubs.SelectMany(h => h.Agents)];

    /// <summary>
    /// Starts the database and prepares <paramref name="hubs"/> hubs (directories, registry schema, sshd configs) on it;
    /// starts no sshd or hub yet (<see cref="StartAsync"/>). <paramref name="options"/> apply to every hub; its work
    /// directory, when given, holds them all.
    /// </summary>
    public static async Task<MultiHubSandbox> CreateAsync(int hubs, SandboxOptions options, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(hubs, 1);
        if (!File.Exists(Path.Combine(PrivatePostgres.BinDirectory, "initdb")))
        {
            throw new SandboxException(
                $"several hubs share a PostgreSQL registry and {PrivatePostgres.BinDirectory}/initdb is missing: apt-get install postgresql-15 (./build.sh sandbox --hubs N installs it)");
        }

        var owns = options.WorkDirectory is null;
        var work = options.WorkDirectory ?? Directory.CreateTempSubdirectory("eph-sandbox-").FullName;
        Directory.CreateDirectory(work);
        // Root's; others (the fleet account, the postgres user) may pass through to their own folders, not list it.
        File.SetUnixFileMode(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
        FleetAccount.CheckReachable(work);

        PrivatePostgres database;
        try
        {
            database = PrivatePostgres.Start(Path.Combine(work, "postgres"), DatabaseName);
        }
        catch (InvalidOperationException ex)
        {
            if (owns && Environment.GetEnvironmentVariable("EPH_SANDBOX_KEEP") != "1")
            {
                TryDelete(work);
            }

            throw new SandboxException(ex.Message);
        }

        var registryFile = Path.Combine(work, "registry.conf");
        var sandbox = new MultiHubSandbox(work, owns, database, registryFile);
        try
        {
            var fileOptions = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
            await using (var writer = new StreamWriter(new FileStream(registryFile, fileOptions)))
            {
                await writer.WriteLineAsync(database.ConnectionString().AsMemory(), ct).ConfigureAwait(false);
            }

            options.Log?.WriteLine($"PostgreSQL on 127.0.0.1:{database.Port} (pid {database.Pid}), database {DatabaseName}");
            for (var i = 1; i <= hubs; i++)
            {
                // One at a time: the first init creates the schema the others then find.
                sandbox._hubs.Add(await SandboxEnvironment.CreateAsync(options with
                {
                    WorkDirectory = Path.Combine(work, HubId(i)),
                    Registry = "file:" + registryFile,
                    HubId = HubId(i),
                    Relay = true,
                }, ct).ConfigureAwait(false));
            }
        }
        catch
        {
            await sandbox.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        return sandbox;
    }

    /// <summary>The id of hub number <paramref name="number"/> (1-based).</summary>
    public static string HubId(int number) => "hub-" + number.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Starts every hub's sshd and hub.</summary>
    public async Task StartAsync(CancellationToken ct = default)
    {
        foreach (var hub in _hubs)
        {
            await hub.StartSshdAsync(ct).ConfigureAwait(false);
            await hub.StartHubAsync(ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Creates an agent whose first server is hub number <paramref name="home"/> (0-based) and whose further servers are
    /// the other hubs in order after it, each pinned in its own known_hosts file; starts it unless told otherwise.
    /// </summary>
    public async Task<SandboxAgent> AddAgentAsync(string name, int home, IEnumerable<string>? tags = null, bool start = true, CancellationToken ct = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(home);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(home, _hubs.Count);
        var first = _hubs[home];
        var agent = await first.AddAgentAsync(name, tags, start: false, ct).ConfigureAwait(false);
        var servers = new JsonArray();
        for (var k = 1; k < _hubs.Count; k++)
        {
            var other = _hubs[(home + k) % _hubs.Count];
            var knownHosts = $"known_hosts.{other.Options.HubId}";
            var fileOptions = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite };
            await using (var writer = new StreamWriter(new FileStream(Path.Combine(agent.ConfigDirectory, knownHosts), fileOptions)))
            {
                await writer.WriteLineAsync(other.KnownHostsLine().AsMemory(), ct).ConfigureAwait(false);
            }

            servers.Add(new JsonObject { ["host"] = "127.0.0.1", ["port"] = other.SshPort, ["known_hosts_file"] = knownHosts });
        }

        agent.EditConfig(config => config["servers"] = servers);
        if (start)
        {
            agent.Start();
        }

        return agent;
    }

    /// <summary>
    /// Adds an operator key (ed25519, made here) with <paramref name="role"/> to the shared registry; returns the private
    /// key file and the <c>--server</c> arguments that reach hub number <paramref name="hub"/> (0-based) with it.
    /// </summary>
    public Task<(string KeyFile, string[] ServerArguments)> AddOperatorAsync(string name, string role, int hub = 0, CancellationToken ct = default)
        => _hubs[hub].AddOperatorAsync(name, role, WorkDirectory, ct);

    /// <summary>
    /// Kills hub number <paramref name="index"/> (0-based) and its sshd with everything below it, by PID with SIGKILL, as
    /// that host going down would: no cleanup, its sessions stay open in the registry until the other hubs close them.
    /// </summary>
    public async Task KillHubAsync(int index)
    {
        var hub = _hubs[index];
        await hub.KillHubAsync().ConfigureAwait(false);
        await hub.KillSshdAsync().ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await Task.WhenAll(_hubs.Select(h => h.DisposeAsync().AsTask())).ConfigureAwait(false);
        Database.Stop();
        if (_ownsWorkDirectory && Environment.GetEnvironmentVariable("EPH_SANDBOX_KEEP") != "1")
        {
            TryDelete(WorkDirectory);
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
