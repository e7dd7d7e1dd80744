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
