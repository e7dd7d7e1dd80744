using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class SshCommandBuilderTests
{
    private static readonly AgentConfig Config = new()
    {
        ServerHost = "gw.example.net",
        ServerPort = 2222,
        ServerUser = "eph",
        IdentityFile = "/cfg/id_ed25519",
        KnownHostsFile = "/cfg/known_hosts",
    };

    private static IReadOnlyList<string> Args => SshCommandBuilder.Build(Config, 45678);

    [Fact]
    public void Build_RequestsLoopbackReverseForwardToRpcPort()
    {
        var index = Args.ToList().IndexOf("-R");
        Assert.True(index >= 0);
        Assert.Equal("127.0.0.1:0:127.0.0.1:45678", Args[index + 1]);
    }

    [Fact]
    public void Build_AsksForExactlyTheAssignedServerPort_OnceKnown()
    {
        var args = SshCommandBuilder.Build(Config, 45678, remotePort: 20417);
        Assert.Equal("127.0.0.1:20417:127.0.0.1:45678", args[args.ToList().IndexOf("-R") + 1]);
        Assert.Throws<ArgumentOutOfRangeException>(() => SshCommandBuilder.Build(Config, 45678, remotePort: 70000));
    }

    [Theory]
    [InlineData(20417, 20417)]
    [InlineData(1024, 1024)]
    [InlineData(1023, null)]
    [InlineData(0, null)]
    [InlineData(-1, null)]
    [InlineData(65536, null)]
    [InlineData(null, null)]
    public void OnlyUnprivilegedPortsFromTheHub_AreKept(int? fromHub, int? kept) =>
        Assert.Equal(kept, ControlSession.ValidTunnelPort(fromHub));

    [Fact]
    public void Build_ChecksHostKeyStrictlyAgainstPinnedFile()
    {
        Assert.Contains("StrictHostKeyChecking=yes", Args);
        Assert.Contains("UserKnownHostsFile=/cfg/known_hosts", Args);
        Assert.Contains("GlobalKnownHostsFile=/dev/null", Args);
        Assert.DoesNotContain(Args, a => a.Contains("StrictHostKeyChecking=no", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(Args, a => a.Contains("accept-new", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void Build_KeepsForwardVerdictVisibleAndNonFatal()
    {
        Assert.DoesNotContain("-q", Args);
        Assert.DoesNotContain("-N", Args);
        Assert.Contains("ExitOnForwardFailure=no", Args);
        Assert.DoesNotContain(Args, a => a.Contains("ExitOnForwardFailure=yes", StringComparison.OrdinalIgnoreCase));
        Assert.Contains("LogLevel=DEBUG1", Args); // a granted fixed port is reported at DEBUG1 only
    }

    [Fact]
    public void Build_BoundsConnectingAndTheKeyExchange_SoAnUnreachableServerGivesWayToTheNext()
    {
        // Without it, a silently dropped SYN waits for the system's TCP timeout (minutes); the wait for the forward's
        // verdict is longer than this, for authentication in a reconnect storm.
        Assert.Contains("ConnectTimeout=15", Args);
        Assert.True(ControlSession.ForwardVerdictTimeout > ControlSession.ConnectTimeout);
    }

    [Fact]
    public void Build_UsesOnlyTheAgentKeyNonInteractively()
    {
        var list = Args.ToList();
        Assert.Equal("/cfg/id_ed25519", list[list.IndexOf("-i") + 1]);
        Assert.Contains("IdentitiesOnly=yes", list);
        Assert.Contains("BatchMode=yes", list);
        Assert.Equal("2222", list[list.IndexOf("-p") + 1]);
        Assert.Equal("eph@gw.example.net", list[^1]);
        Assert.Equal("-T", list[0]);
    }
}
