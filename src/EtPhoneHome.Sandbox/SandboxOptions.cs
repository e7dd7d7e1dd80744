namespace EtPhoneHome.Sandbox;

/// <summary>How a sandbox is laid out and tuned.</summary>
public sealed record SandboxOptions
{
    /// <summary>Directory holding eph-server, eph-agent and eph-gate (default: $EPH_BIN_DIR, else next to this program).</summary>
    public string? BinDirectory { get; init; }

    /// <summary>Working directory for the registry, sshd files, agent configs and logs (default: a new temp dir).</summary>
    public string? WorkDirectory { get; init; }

    /// <summary>Interval of control-channel heartbeats, agent and hub.</summary>
    public double HeartbeatSeconds { get; init; } = 5;

    /// <summary>First reconnect delay of the agents (production default is 5 s).</summary>
    public double ReconnectInitialSeconds { get; init; } = 1;

    /// <summary>Largest reconnect delay of the agents (production default is 300 s).</summary>
    public double ReconnectMaxSeconds { get; init; } = 4;

    /// <summary>Extra arguments for <c>eph-server run</c> (for example a short --health-interval).</summary>
    public IReadOnlyList<string> ExtraHubArguments { get; init; } = [];
    /// <summary>Extra environment variables of the hub process (for example ETPHONEHOME_WEBHOOK_URL).</summary>
    public IReadOnlyDictionary<string, string>? HubEnvironment { get; init; }

    /// <summary>
    /// The registry of this sandbox's data directory, as <c>eph-server init --registry</c> and <c>run --registry</c> take it
    /// (<c>file:FILE</c> for a PostgreSQL connection string kept off command lines); null is SQLite in the data directory.
    /// </summary>
    public string? Registry { get; init; }

    /// <summary>The hub's id among hubs sharing one registry (<c>eph-server run --hub-id</c>); null lets the hub pick one.</summary>
    public string? HubId { get; init; }

    /// <summary>
    /// Whether the hub serves the hub-to-hub relay (<c>eph-server run --relay-address FLEET@127.0.0.1:SSHPORT --relay-host-key</c>
    /// with this sandbox's sshd): the other hubs of a shared registry then reach its clients through it, and it theirs.
    /// </summary>
    public bool Relay { get; init; }

    /// <summary>Receives progress lines; null is silent.</summary>
    public TextWriter? Log { get; init; }

    internal string ResolveBinDirectory()
    {
        var dir = BinDirectory
            ?? Environment.GetEnvironmentVariable("EPH_BIN_DIR")
            ?? AppContext.BaseDirectory;
        dir = Path.GetFullPath(dir);
        foreach (var binary in new[] { "eph-server", "eph-agent", "eph-gate" })
        {
            if (!File.Exists(Path.Combine(dir, binary)))
            {
                throw new SandboxException($"{binary} not found in {dir}; run ./build.sh build first (or set EPH_BIN_DIR)");
            }
        }

        return dir;
    }
}

/// <summary>A sandbox could not be set up; the message says what to do.</summary>
public sealed class SandboxException(string message) : Exception(message);
