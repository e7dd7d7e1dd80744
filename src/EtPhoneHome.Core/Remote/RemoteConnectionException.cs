namespace EtPhoneHome.Core.Remote;

/// <summary>The operator's connection to the server could not be made or was lost; the message says why and what to do.</summary>
public class RemoteConnectionException : Exception
{
    public RemoteConnectionException(string message, Exception? inner = null) : base(message, inner)
    {
    }

    /// <summary>What ssh wrote to stderr (escaped, the last few KiB), when ssh was run.</summary>
    public string? SshError { get; init; }
}

/// <summary>
/// No host key is pinned for the server and nothing says which key to trust: the caller gave no fingerprint and could
/// not ask. A key is never trusted silently.
/// </summary>
public sealed class HostKeyNotTrustedException(string message) : RemoteConnectionException(message);

/// <summary>The server offered no host key with the fingerprint the operator gave (before any key was pinned).</summary>
public sealed class HostKeyMismatchException(string message, string expectedFingerprint, IReadOnlyList<string> offeredFingerprints)
    : RemoteConnectionException(message)
{
    public string ExpectedFingerprint { get; } = expectedFingerprint;

    public IReadOnlyList<string> OfferedFingerprints { get; } = offeredFingerprints;
}

/// <summary>The server's host key is not the pinned one: the server was re-keyed, or something else answers in its place.</summary>
public sealed class HostKeyChangedException(string message, string pinnedFingerprint, string? offeredFingerprint)
    : RemoteConnectionException(message)
{
    /// <summary>The fingerprint that is pinned for the server.</summary>
    public string PinnedFingerprint { get; } = pinnedFingerprint;

    /// <summary>The fingerprint the server offers now; null when it could not be read.</summary>
    public string? OfferedFingerprint { get; } = offeredFingerprint;
}

/// <summary>sshd refused every key ssh offered.</summary>
public sealed class SshAuthenticationException(string message) : RemoteConnectionException(message);

/// <summary>The server could not be reached (name not resolved, connection refused, timed out) or ssh could not be run.</summary>
public sealed class SshConnectionException(string message, Exception? inner = null) : RemoteConnectionException(message, inner);
