using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class CapabilityDetectorTests
{
    [Theory]
    [InlineData("Python 3.11.7", "python3.11")]
    [InlineData("Python 3.9.2\n", "python3.9")]
    [InlineData("command not found", null)]
    public void ParsePythonVersion_GivesMajorMinor(string output, string? expected)
    {
        Assert.Equal(expected, CapabilityDetector.ParsePythonVersion(output));
    }

    [Fact]
    public void Detect_FindsShellToolsOnPath_AndIsSorted()
    {
        var capabilities = CapabilityDetector.Detect();
        Assert.Contains("ssh", capabilities); // the agent cannot work without it, and this machine has it
        Assert.Equal(capabilities.Order(StringComparer.Ordinal), capabilities);
        Assert.Equal(capabilities.Distinct().Count(), capabilities.Length);
    }
}
