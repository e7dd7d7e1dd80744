using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// Each sandbox copies its gate into its own directory under the shared gate root and deletes that directory when it
/// stops: the directory must be unique per work directory, also when two work directories share their last name.
/// </summary>
public sealed class SandboxGateDirectoryTests
{
    [Fact]
    public void TwoWorkDirectoriesSharingABaseName_GetDifferentGateDirectories()
    {
        var a = SandboxEnvironment.GateDirectoryName("/tmp/eph-sandbox-tests/a/env");
        var b = SandboxEnvironment.GateDirectoryName("/tmp/eph-sandbox-tests/b/env");

        Assert.NotEqual(a, b);
        Assert.StartsWith("env-", a);
        Assert.StartsWith("env-", b);
    }

    [Fact]
    public void OneWorkDirectory_AlwaysGetsTheSameGateDirectory_HoweverItIsWritten()
    {
        var plain = SandboxEnvironment.GateDirectoryName("/tmp/eph-sandbox-tests/a/env");

        Assert.Equal(plain, SandboxEnvironment.GateDirectoryName("/tmp/eph-sandbox-tests/a/env/"));
        Assert.Equal(plain, SandboxEnvironment.GateDirectoryName("/tmp/eph-sandbox-tests/b/../a/env"));
        Assert.DoesNotContain('/', plain);
    }
}
