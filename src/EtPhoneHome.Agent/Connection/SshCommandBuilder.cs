using System.Globalization;

namespace EtPhoneHome.Agent;

/// <summary>
/// The arguments of the ssh process that carries the control channel and the reverse forward.
/// No <c>-N</c> (the server runs a forced command that is the control channel), no <c>-q</c> and DEBUG1 log
/// level (the forward's outcome is read from stderr, and ssh reports a granted fixed port at DEBUG1 only), no <c>ExitOnForwardFailure</c> (an unapproved key must
/// still reach the forced command), and strict host key checking against the pinned known_hosts file.
/// </summary>
public static class SshCommandBuilder
{
    // remotePort: the server port the hub assigned to this key (sshd lets the key listen on that port only); 0 when the
    // agent does not know it yet, which sshd refuses, so the hello says so and the hub answers with the port.
    public static IReadOnlyList<string> Build(AgentConfig config, int rpcPort, int remotePort = 0, int serverAliveIntervalSeconds = 15)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rpcPort, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(remotePort);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(remotePort, 65535);
        var inv = CultureInfo.InvariantCulture;
        return
        [
            "-T",
            "-i", config.IdentityFile,
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=" + config.KnownHostsFile,
            "-o", "GlobalKnownHostsFile=" + (OperatingSystem.IsWindows() ? "NUL" : "/dev/null"),
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ConnectTimeout=" + ((int)ControlSession.ConnectTimeout.TotalSeconds).ToString(inv),
            "-o", "ServerAliveInterval=" + serverAliveIntervalSeconds.ToString(inv),
            "-o", "ServerAliveCountMax=3",
            "-o", "ExitOnForwardFailure=no",
            "-o", "LogLevel=DEBUG1",
            "-p", config.ServerPort.ToString(inv),
            "-R", "127.0.0.1:" + remotePort.ToString(inv) + ":127.0.0.1:" + rpcPort.ToString(inv),
            config.ServerUser + "@" + config.ServerHost,
        ];
    }
}
