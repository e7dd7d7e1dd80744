namespace EtPhoneHome;

/// <summary>The module's settings in effect, as Get-EphConfiguration writes them.</summary>
public sealed class EphConfigurationInfo
{
    internal EphConfigurationInfo(string dataDirectory, EphSettingSource dataDirectorySource, string registryFile, bool registryExists)
    {
        Mode = EphSessionMode.Local;
        DataDirectory = dataDirectory;
        DataDirectorySource = dataDirectorySource;
        RegistryFile = registryFile;
        RegistryExists = registryExists;
    }

    /// <summary>Local (the data directory below) or Remote (through <see cref="Server"/>).</summary>
    public EphSessionMode Mode { get; init; }
    /// <summary>Remote mode: the server connected to, as <c>[user@]host[:port]</c>.</summary>
    public string? Server { get; init; }
    /// <summary>Remote mode: the operator the server knows this session as.</summary>
    public string? Operator { get; init; }
    /// <summary>Remote mode: the operator's role (reader, operator or admin).</summary>
    public string? Role { get; init; }
    /// <summary>The server data directory the cmdlets use in local mode.</summary>
    public string DataDirectory { get; }
    /// <summary>Where <see cref="DataDirectory"/> came from: Session, Environment or Default.</summary>
    public EphSettingSource DataDirectorySource { get; }
    /// <summary>The registry database inside the data directory.</summary>
    public string RegistryFile { get; }
    /// <summary>True when the registry database exists.</summary>
    public bool RegistryExists { get; }
    /// <summary>The registry local mode opens: the SQLite file, or the PostgreSQL host, port, database and user (never a password).</summary>
    public string Registry { get; init; } = "";
    /// <summary>SQLite or PostgreSQL.</summary>
    public string RegistryEngine { get; init; } = "";
    /// <summary>Where the registry choice came from: Session (Set-EphConfiguration -Registry), Environment (ETPHONEHOME_REGISTRY), DataDirectory (its registry.conf) or Default (SQLite).</summary>
    public EphRegistrySource RegistrySource { get; init; }

    public override string ToString() => Mode == EphSessionMode.Remote ? Server ?? "" : DataDirectory;
}

/// <summary>Where the registry choice of <see cref="EphConfigurationInfo"/> came from.</summary>
public enum EphRegistrySource
{
    /// <summary>Set-EphConfiguration -Registry in this session.</summary>
    Session,
    /// <summary>The ETPHONEHOME_REGISTRY environment variable.</summary>
    Environment,
    /// <summary>The data directory's registry.conf (eph-server init --registry).</summary>
    DataDirectory,
    /// <summary>Nothing chose: SQLite in the data directory.</summary>
    Default,
}

/// <summary>Where the session's cmdlets act: on this machine's data directory, or through a server connection.</summary>
public enum EphSessionMode
{
    /// <summary>The registry of the local data directory (the server host).</summary>
    Local,
    /// <summary>The operator service of a server, through Connect-EphServer.</summary>
    Remote,
}

/// <summary>A server connection: the session's current one (Connect-EphServer, Get-EphServerConnection) or a saved one.</summary>
public sealed class EphServerConnection
{
    internal EphServerConnection(string? name, string hostName, int port, string? user, string? keyFile, string? hostKeyFingerprint)
    {
        Name = name;
        HostName = hostName;
        Port = port;
        User = user;
        KeyFile = keyFile;
        HostKeyFingerprint = hostKeyFingerprint;
    }

    /// <summary>The name the connection is saved under; null when it is not saved.</summary>
    public string? Name { get; }
    /// <summary>The server's host name or address.</summary>
    public string HostName { get; }
    /// <summary>The server's sshd port.</summary>
    public int Port { get; }
    /// <summary>The account on the server; ssh's default when null.</summary>
    public string? User { get; }
    /// <summary>The private key ssh offers; ssh-agent's and ssh's defaults when null.</summary>
    public string? KeyFile { get; }
    /// <summary>The fingerprint of the server's pinned host key.</summary>
    public string? HostKeyFingerprint { get; }
    /// <summary>The operator the server knows this key as (after a connect).</summary>
    public string? Operator { get; init; }
    /// <summary>The operator's role: reader, operator or admin (after a connect).</summary>
    public string? Role { get; init; }
    /// <summary>The server host's name as the server reports it.</summary>
    public string? ServerHost { get; init; }
    /// <summary>The server's version.</summary>
    public string? ServerVersion { get; init; }
    /// <summary>True when this is the session's connection and its ssh link is open now.</summary>
    public bool Connected { get; init; }
    /// <summary>True when this is the session's current server (it may be reconnecting).</summary>
    public bool Current { get; init; }

    /// <summary>The server as <c>[user@]host[:port]</c>.</summary>
    public string Server => (User is null ? "" : User + "@") + (HostName.Contains(':', StringComparison.Ordinal) ? "[" + HostName + "]" : HostName) + (Port == 22 ? "" : ":" + Port.ToString(System.Globalization.CultureInfo.InvariantCulture));

    public override string ToString() => Server;
}
