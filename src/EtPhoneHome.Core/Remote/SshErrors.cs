namespace EtPhoneHome.Core.Remote;

/// <summary>Why ssh ended, as read from what it wrote to stderr.</summary>
public enum SshFailureKind
{
    /// <summary>Nothing recognised.</summary>
    Unknown,

    /// <summary>The server's host key is not the pinned one (or is of another type).</summary>
    HostKeyChanged,

    /// <summary>sshd refused the keys ssh offered.</summary>
    Authentication,

    /// <summary>The server could not be reached.</summary>
    Connection,
}

/// <summary>Reads ssh's stderr.</summary>
public static class SshErrors
{
    private static readonly string[] s_hostKey =
    [
        "Host key verification failed",
        "REMOTE HOST IDENTIFICATION HAS CHANGED",
        "no matching host key type found",
        "Host key for eph-pinned has changed",
        "host key mismatch",
    ];

    private static readonly string[] s_authentication = ["Permission denied", "Too many authentication failures", "no more authentication methods"];

    private static readonly string[] s_connection =
    [
        "Connection refused",
        "Connection timed out",
        "Operation timed out",
        "Could not resolve hostname",
        "Name or service not known",
        "No route to host",
        "Network is unreachable",
        "Connection closed by",
        "Connection reset by",
        "kex_exchange_identification",
        "Timeout, server",
    ];

    /// <summary>What ssh's stderr says went wrong; host key problems win over the rest (ssh reports them first).</summary>
    public static SshFailureKind Classify(string stderr)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        if (Array.Exists(s_hostKey, s => stderr.Contains(s, StringComparison.OrdinalIgnoreCase)))
        {
            return SshFailureKind.HostKeyChanged;
        }

        if (Array.Exists(s_authentication, s => stderr.Contains(s, StringComparison.OrdinalIgnoreCase)))
        {
            return SshFailureKind.Authentication;
        }

        return Array.Exists(s_connection, s => stderr.Contains(s, StringComparison.OrdinalIgnoreCase))
            ? SshFailureKind.Connection
            : SshFailureKind.Unknown;
    }
}
