namespace EtPhoneHome.Core.Remote;

/// <summary>How <see cref="SshLink"/> runs ssh.</summary>
public sealed record SshLinkOptions
{
    /// <summary>Names the ssh client to run instead of <c>ssh</c> on PATH.</summary>
    public const string SshVariable = "ETPHONEHOME_SSH";

    /// <summary>The alias the pinned key is filed under in the private known_hosts file.</summary>
    public const string HostKeyAlias = "eph-pinned";

    /// <summary>The ssh client: this path, else <c>$ETPHONEHOME_SSH</c>, else <c>ssh</c> on PATH.</summary>
    public string? SshPath { get; init; }

    /// <summary>An ssh config file to read instead of the user's (<c>-F</c>); "none" reads none. The user's when null.</summary>
    public string? ConfigFile { get; init; }

    /// <summary>ssh-keyscan, run to read the key a server offers when ssh refuses it; see <see cref="HostKeyPins.KeyscanPath"/> when null.</summary>
    public string? KeyscanPath { get; init; }

    /// <summary>The command asked of the server (which forces its own for operator keys anyway).</summary>
    public string RemoteCommand { get; init; } = "eph-operator";

    /// <summary>ssh's TCP connect timeout.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long <see cref="SshLink.OpenAsync"/> waits for ssh to connect and authenticate.</summary>
    public TimeSpan OpenTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Keepalive: ssh probes the server this often and gives up after three probes go unanswered.</summary>
    public TimeSpan ServerAliveInterval { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>How long disposing waits for ssh to end after its stdin is closed, before killing it.</summary>
    public TimeSpan ExitGrace { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>The ssh client that will run.</summary>
    public string ResolveSshPath()
        => SshPath ?? (Environment.GetEnvironmentVariable(SshVariable) is { Length: > 0 } env ? env : "ssh");
}
