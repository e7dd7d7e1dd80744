using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class ReconnectBackoffTests
{
    [Fact]
    public void NextDelay_WithoutJitter_DoublesUpToTheCap()
    {
        var backoff = new ReconnectBackoff(5, 300, jitter: 0.2, random: () => 0.5);
        var seconds = Enumerable.Range(0, 9).Select(_ => backoff.NextDelay().TotalSeconds).ToArray();
        Assert.Equal([5, 10, 20, 40, 80, 160, 300, 300, 300], seconds);
    }

    [Fact]
    public void NextDelay_Jitter_StaysWithinTwentyPercent()
    {
        var low = new ReconnectBackoff(5, 300, 0.2, () => 0.0);
        var high = new ReconnectBackoff(5, 300, 0.2, () => 0.999999);
        Assert.Equal(4.0, low.NextDelay().TotalSeconds, 3);
        Assert.Equal(6.0, high.NextDelay().TotalSeconds, 3);

        var real = new ReconnectBackoff(5, 300);
        var samples = Enumerable.Range(0, 500).Select(_ =>
        {
            real.Reset();
            return real.NextDelay().TotalSeconds;
        }).ToArray();
        Assert.All(samples, s => Assert.InRange(s, 4.0, 6.0));
        Assert.True(samples.Distinct().Count() > 10, "jitter should spread the delays");
    }

    [Fact]
    public void Reset_ReturnsToTheInitialDelay()
    {
        var backoff = new ReconnectBackoff(0.5, 4, 0.2, () => 0.5);
        backoff.NextDelay();
        backoff.NextDelay();
        Assert.Equal(2, backoff.CurrentBaseSeconds);
        backoff.Reset();
        Assert.Equal(0.5, backoff.NextDelay().TotalSeconds, 6);
    }

    [Fact]
    public void Constructor_RejectsMaxBelowInitial()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ReconnectBackoff(10, 5));
    }
}
