using System.Globalization;

namespace EtPhoneHome.Agent;

/// <summary>
/// The arguments of the ssh process that carries the control channel and the reverse forward.
/// No <c>-N</c> (the server runs a forced command that is the control channel), no <c>-q</c> and INFO log
/// level (the forward's outcome is read from stderr), no <c>ExitOnForwardFailure</c> (an unapproved key must
/// still reach the forced command), and strict host key checking against the pinned known_hosts file.
/// </summary>
public static class SshCommandBuilder
{
    public static IReadOnlyList<string> Build(AgentConfig config, int rpcPort, int serverAliveIntervalSeconds = 15)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rpcPort, 1);
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
            "-o", "ServerAliveInterval=" + serverAliveIntervalSeconds.ToString(inv),
            "-o", "ServerAliveCountMax=3",
            "-o", "ExitOnForwardFailure=no",
            "-o", "LogLevel=INFO",
            "-p", config.ServerPort.ToString(inv),
            "-R", "127.0.0.1:0:127.0.0.1:" + rpcPort.ToString(inv),
            config.ServerUser + "@" + config.ServerHost,
        ];
    }
}
