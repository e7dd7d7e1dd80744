using System.Text.Json;

namespace EtPhoneHome.Agent;

/// <summary>
/// The operator-edited configuration in <c>agent.json</c> (snake_case). The uuid the hub assigns is kept
/// apart in <c>state.json</c> (<see cref="AgentState"/>) so this file is only ever written by <c>init</c>.
/// </summary>
public sealed record AgentConfig
{
    // Properties with defaults use set, not init: the net8.0 source generator resets absent init-only
    // properties to default(T) instead of keeping their initializers.

    public const string FileName = "agent.json";

    public required string ServerHost { get; init; }
    public int ServerPort { get; set; } = 22;
    public required string ServerUser { get; init; }
    public required string IdentityFile { get; init; }
    public required string KnownHostsFile { get; init; }
    public string? DisplayName { get; init; }
    public string? Purpose { get; init; }
    public string[]? Tags { get; init; }
    /// <summary>The agent's own allowed paths; null means unrestricted.</summary>
    public string[]? AllowedPaths { get; init; }
    public string SshPath { get; set; } = "ssh";
    public double HeartbeatS { get; set; } = 15;
    public double ReconnectInitialS { get; set; } = 5;
    public double ReconnectMaxS { get; set; } = 300;
    public long MaxOutputBytes { get; set; } = 1024 * 1024;
    /// <summary>Loopback RPC port; 0 picks an ephemeral one.</summary>
    public int RpcPort { get; init; }

    /// <summary>
    /// Further servers (hubs sharing the registry), tried in order after <see cref="ServerHost"/> when it cannot be
    /// reached; each with its own known_hosts file, so each server's host key stays pinned on its own.
    /// </summary>
    public AgentServer[]? Servers { get; init; }

    /// <summary>Every server in order of preference: the primary, then <see cref="Servers"/>.</summary>
    public IReadOnlyList<AgentServer> AllServers()
    {
        var primary = new AgentServer { Host = ServerHost, Port = ServerPort, User = ServerUser, KnownHostsFile = KnownHostsFile };
        return [primary, .. (Servers ?? []).Select(s => s with { User = s.User ?? ServerUser })];
    }

    /// <summary>This configuration aimed at <paramref name="server"/> (the ssh command and status name it).</summary>
    public AgentConfig For(AgentServer server)
    {
        ArgumentNullException.ThrowIfNull(server);
        return this with { ServerHost = server.Host, ServerPort = server.Port, ServerUser = server.User ?? ServerUser, KnownHostsFile = server.KnownHostsFile };
    }

    /// <summary>Loads and validates <c>DIR/agent.json</c>; throws <see cref="AgentConfigException"/> with a readable reason.</summary>
    public static AgentConfig Load(string configDir)
    {
        var path = Path.Combine(configDir, FileName);
        if (!File.Exists(path))
        {
            throw new AgentConfigException($"no configuration at {path}; run 'eph-agent init --config-dir {configDir} ...' first");
        }

        AgentConfig? config;
        try
        {
            config = JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJson.Default.AgentConfig);
        }
        catch (JsonException ex)
        {
            throw new AgentConfigException($"{path} is not a valid agent configuration: {ex.Message}");
        }

        if (config is null)
        {
            throw new AgentConfigException($"{path} is empty");
        }

        config.Validate(path);
        return config.ResolvePaths(configDir);
    }

    /// <summary>Writes the configuration to <c>DIR/agent.json</c> with mode 0600.</summary>
    public void Save(string configDir) =>
        SecureFile.WriteAllBytes(Path.Combine(configDir, FileName), JsonSerializer.SerializeToUtf8Bytes(this, AgentJson.Default.AgentConfig));

    private void Validate(string path)
    {
        string? problem = null;
        if (string.IsNullOrWhiteSpace(ServerHost)) problem = "server_host is empty";
        else if (ServerPort is < 1 or > 65535) problem = "server_port must be 1..65535";
        else if (string.IsNullOrWhiteSpace(ServerUser)) problem = "server_user is empty";
        else if (HeartbeatS <= 0) problem = "heartbeat_s must be > 0";
        else if (ReconnectInitialS <= 0) problem = "reconnect_initial_s must be > 0";
        else if (ReconnectMaxS < ReconnectInitialS) problem = "reconnect_max_s must be >= reconnect_initial_s";
        else if (MaxOutputBytes < 1) problem = "max_output_bytes must be >= 1";
        else if (RpcPort is < 0 or > 65535) problem = "rpc_port must be 0..65535";
        else if (Servers is { } servers)
        {
            for (var i = 0; i < servers.Length && problem is null; i++)
            {
                problem = ServerProblem(servers[i], $"servers[{i}]");
            }
        }

        if (problem is not null)
        {
            throw new AgentConfigException($"{path}: {problem}");
        }
    }

    /// <summary>
    /// What is wrong with one of <see cref="Servers"/>: every field is set, and host and user cannot be read by ssh as an
    /// option (they end up in its argument list) nor carry spaces or controls.
    /// </summary>
    private static string? ServerProblem(AgentServer? server, string name)
    {
        static bool Word(string? text) => !string.IsNullOrEmpty(text) && text[0] != '-' && !text.Any(ch => char.IsWhiteSpace(ch) || char.IsControl(ch) || ch == '@');
        if (server is null) return $"{name} is empty";
        if (!Word(server.Host)) return $"{name}.host must be a host name or address (no spaces, not starting with '-')";
        if (server.Port is < 1 or > 65535) return $"{name}.port must be 1..65535";
        if (server.User is not null && !Word(server.User)) return $"{name}.user must be an account name (no spaces, not starting with '-')";
        if (string.IsNullOrWhiteSpace(server.KnownHostsFile)) return $"{name}.known_hosts_file is empty (each server has its own pinned host key)";
        return null;
    }

    /// <summary>Relative key and known_hosts paths are relative to the config directory.</summary>
    private AgentConfig ResolvePaths(string configDir) => this with
    {
        IdentityFile = Path.GetFullPath(IdentityFile, Path.GetFullPath(configDir)),
        KnownHostsFile = Path.GetFullPath(KnownHostsFile, Path.GetFullPath(configDir)),
        Servers = Servers?.Select(s => s with { KnownHostsFile = Path.GetFullPath(s.KnownHostsFile, Path.GetFullPath(configDir)) }).ToArray(),
    };
}

/// <summary>A configuration that is missing or invalid; the message is meant for the operator.</summary>
public sealed class AgentConfigException(string message) : Exception(message);
