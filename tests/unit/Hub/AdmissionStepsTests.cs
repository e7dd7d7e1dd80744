using System.Diagnostics;
using EtPhoneHome.Hub;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

public sealed class AdmissionStepsTests
{
    private static long At(double ms) => 1_000_000 + (long)(ms * Stopwatch.Frequency / 1000.0);

    [Fact]
    public void Describe_SplitsTheWholeIntoItsSteps()
    {
        var steps = new AdmissionSteps(At(0), waiting: At(12));
        steps.Queued(At(1012));
        steps.Registered(At(1030));
        steps.TunnelChecked(At(1530));
        Assert.Equal("admitted in 1534 ms: hello 12, queued 1000, registry 18, tunnel check 500, online 4", steps.Describe(At(1534)));
    }

    [Fact]
    public void AStepNeverMarked_CountsAsZero_NotAsANegativeOrAHugeNumber()
    {
        var steps = new AdmissionSteps(At(0), waiting: At(5));
        steps.Queued(At(7));
        Assert.Equal("admitted in 9 ms: hello 5, queued 2, registry 0, tunnel check 0, online 0", steps.Describe(At(9)));
    }
}
