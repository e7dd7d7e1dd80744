using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class CommandLineTests
{
    private static readonly string[] Values = ["config-dir", "server", "port", "tag"];
    private static readonly string[] Flags = ["force"];

    [Fact]
    public void Parse_ValuesFlagsAndRepeatedOptions()
    {
        var cl = CommandLine.Parse(["--server", "gw", "--port=2222", "--tag", "a", "--tag", "b", "--force"], Values, Flags);
        Assert.Equal("gw", cl.Required("server"));
        Assert.Equal(2222, cl.Port("port", 22));
        Assert.Equal(["a", "b"], cl.Values("tag"));
        Assert.True(cl.Flag("force"));
        Assert.False(cl.Help);
    }

    [Theory]
    [InlineData("--bogus")]
    [InlineData("stray")]
    [InlineData("--server")]
    [InlineData("--force=yes")]
    public void Parse_BadArguments_AreUsageErrors(string arg)
    {
        Assert.Throws<UsageException>(() => CommandLine.Parse([arg], Values, Flags));
    }

    [Theory]
    [InlineData("0")]
    [InlineData("65536")]
    [InlineData("ssh")]
    public void Port_OutOfRange_IsUsageError(string port)
    {
        var cl = CommandLine.Parse(["--port", port], Values, Flags);
        var ex = Assert.Throws<UsageException>(() => cl.Port("port", 22));
        Assert.Contains("--port", ex.Message);
    }

    [Fact]
    public void Required_Missing_NamesTheOption()
    {
        var cl = CommandLine.Parse([], Values, Flags);
        Assert.Contains("--server", Assert.Throws<UsageException>(() => cl.Required("server")).Message);
    }

    [Fact]
    public void ConfigDir_FallsBackToEnvironmentVariable()
    {
        var previous = Environment.GetEnvironmentVariable(AgentDirectory.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(AgentDirectory.EnvironmentVariable, "/tmp/from-env");
            Assert.Equal("/tmp/from-env", CommandLine.Parse([], Values, Flags).ConfigDir());
            Assert.Equal("/x", CommandLine.Parse(["--config-dir", "/x"], Values, Flags).ConfigDir());
        }
        finally
        {
            Environment.SetEnvironmentVariable(AgentDirectory.EnvironmentVariable, previous);
        }
    }
}
