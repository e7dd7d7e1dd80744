namespace EtPhoneHome.Core;

/// <summary>The server data directory and the well-known files inside it.</summary>
public sealed class DataDirectory
{
    /// <summary>Environment variable that names the data directory.</summary>
    public const string EnvironmentVariable = "ETPHONEHOME_DATA_DIR";

    public DataDirectory(string path)
    {
        Path = System.IO.Path.GetFullPath(path);
    }

    public string Path { get; }

    /// <summary>SQLite registry (mode 0600).</summary>
    public string RegistryFile => System.IO.Path.Combine(Path, "registry.db");

    /// <summary>Unix socket where eph-gate reaches the hub.</summary>
    public string HubSocket => System.IO.Path.Combine(Path, "hub.sock");

    /// <summary>
    /// Held (an exclusive advisory lock) by the running hub for its whole life: only the holder creates or removes the
    /// socket, so a refused second hub, or a stopping one, never unlinks the socket of the hub that runs.
    /// </summary>
    public string HubLockFile => System.IO.Path.Combine(Path, "hub.lock");

    /// <summary>
    /// The id of the hub of this data directory (one line, mode 0600), written at its first start unless
    /// <c>--hub-id</c> or $ETPHONEHOME_HUB_ID names it: stable across restarts, distinct per data directory.
    /// </summary>
    public string HubIdFile => System.IO.Path.Combine(Path, "hub-id");

    /// <summary>Directory of sshd's own files (host keys, pid file) for a generated sshd_config.</summary>
    public string SshDirectory => System.IO.Path.Combine(Path, "ssh");

    /// <summary>The bearer key of MCP over HTTP (mode 0600), created by <c>eph-server init</c>.</summary>
    public string McpApiKeyFile => System.IO.Path.Combine(Path, "mcp-api-key");

    /// <summary>The ed25519 host key of the generated sshd_config.</summary>
    public string HostKeyFile => System.IO.Path.Combine(SshDirectory, "ssh_host_ed25519_key");

    /// <summary>The private key the hub logs in to the other hubs with to relay (0600; its public half is in the registry).</summary>
    public string HubRelayKeyFile => System.IO.Path.Combine(Path, "relay_key");

    /// <summary>
    /// Resolves the data directory: the explicit value, else $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server.
    /// </summary>
    public static DataDirectory Resolve(string? explicitPath)
    {
        if (!string.IsNullOrWhiteSpace(explicitPath))
        {
            return new DataDirectory(explicitPath);
        }

        var fromEnv = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return new DataDirectory(fromEnv);
        }

        var home = Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
        return new DataDirectory(System.IO.Path.Combine(home, ".etphonehome-server"));
    }
}
