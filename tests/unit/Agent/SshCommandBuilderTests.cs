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
        Assert.Contains("LogLevel=INFO", Args);
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
