using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class SshStderrParserTests
{
    [Fact]
    public void Parse_AllocatedPortLine_GivesThePort()
    {
        var outcome = SshStderrParser.Parse("Allocated port 40321 for remote forward to 127.0.0.1:38765\r");
        Assert.Equal(ForwardOutcomeKind.Allocated, outcome.Kind);
        Assert.Equal(40321, outcome.Port);
    }

    [Fact]
    public void Parse_ForwardFailedWarning_IsRefusedWithoutPort()
    {
        var outcome = SshStderrParser.Parse("Warning: remote port forwarding failed for listen port 0");
        Assert.Equal(ForwardOutcomeKind.Refused, outcome.Kind);
        Assert.Null(outcome.Port);
    }

    [Theory]
    [InlineData("debug1: remote forward success for: listen 127.0.0.1:20417, connect 127.0.0.1:45678", 20417)]
    [InlineData("debug1: remote forward success for: listen 20417, connect 127.0.0.1:45678", 20417)]
    public void Parse_DebugSuccessOfAFixedPort_IsAllocated(string line, int port)
    {
        var outcome = SshStderrParser.Parse(line);
        Assert.Equal(ForwardOutcomeKind.Allocated, outcome.Kind);
        Assert.Equal(port, outcome.Port);
    }

    [Fact]
    public void Parse_DebugFailure_IsRefused_AndDebugSuccessOfPortZero_WaitsForTheAllocatedLine()
    {
        Assert.Equal(ForwardOutcomeKind.Refused, SshStderrParser.Parse("debug1: remote forward failure for: listen 127.0.0.1:20417, connect 127.0.0.1:1").Kind);
        Assert.Equal(ForwardOutcomeKind.None, SshStderrParser.Parse("debug1: remote forward success for: listen 127.0.0.1:0, connect 127.0.0.1:1").Kind);
        Assert.True(SshStderrParser.IsDebug("debug1: Reading configuration data /etc/ssh/ssh_config"));
        Assert.False(SshStderrParser.IsDebug("Host key verification failed."));
    }

    [Theory]
    [InlineData("Warning: Permanently added '[127.0.0.1]:2222' (ED25519) to the list of known hosts.")]
    [InlineData("Host key verification failed.")]
    [InlineData("debug1: Allocated port 40321 for remote forward to 127.0.0.1:1")]
    [InlineData("Allocated port 99999 for remote forward to 127.0.0.1:1")]
    [InlineData("")]
    public void Parse_UnrelatedLines_AreNone(string line)
    {
        Assert.Equal(ForwardOutcomeKind.None, SshStderrParser.Parse(line).Kind);
    }
}
