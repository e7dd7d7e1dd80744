using EtPhoneHome.Agent;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class CapabilityCacheTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task TheFirstDetection_RunsOnce_AtStart_AndEveryHelloBeforeTheRefreshTimeGetsItsResult()
    {
        var runs = 0;
        using var cache = new CapabilityCache(() => { Interlocked.Increment(ref runs); return ["docker", "git"]; }, new ManualTime(DateTimeOffset.UnixEpoch));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(["docker", "git"], await cache.GetAsync(CancellationToken.None).WaitAsync(Patience));
        }

        Assert.Equal(1, runs);
    }

    [Fact]
    public async Task AStaleResult_IsSentAtOnce_WhileTheRefreshRunsInTheBackground_AndTheNextHelloGetsTheNewOne()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        using var release = new ManualResetEventSlim(false);
        var runs = 0;
        using var cache = new CapabilityCache(() =>
        {
            if (Interlocked.Increment(ref runs) == 1)
            {
                return ["git"];
            }

            release.Wait(Patience); // a slow detection: python3 --version through a shim on a loaded machine
            return ["docker", "git"];
        }, time);
        Assert.Equal(["git"], await cache.GetAsync(CancellationToken.None).WaitAsync(Patience));

        time.Advance(CapabilityCache.DefaultRefreshAfter);
        // The hello does not wait for the refresh it started: the last result goes out now.
        Assert.Equal(["git"], await cache.GetAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2)));
        Assert.Equal(["git"], await cache.GetAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(2)));
        release.Set();
        await WaitForAsync(() => Volatile.Read(ref runs) == 2 && cache.GetAsync(CancellationToken.None).Result.Length == 2);
        Assert.Equal(["docker", "git"], await cache.GetAsync(CancellationToken.None));
        Assert.Equal(2, runs);
    }

    [Fact]
    public async Task ADetectionThatThrows_GivesNoCapabilities_AndTheNextRefreshRecovers()
    {
        var time = new ManualTime(DateTimeOffset.UnixEpoch);
        var runs = 0;
        using var cache = new CapabilityCache(() => Interlocked.Increment(ref runs) == 1 ? throw new IOException("no /proc") : ["ssh"], time);
        Assert.Empty(await cache.GetAsync(CancellationToken.None).WaitAsync(Patience));
        time.Advance(CapabilityCache.DefaultRefreshAfter);
        Assert.Empty(await cache.GetAsync(CancellationToken.None).WaitAsync(Patience)); // starts the refresh
        await WaitForAsync(() => cache.GetAsync(CancellationToken.None).Result.Length == 1);
        Assert.Equal(["ssh"], await cache.GetAsync(CancellationToken.None));
    }

    [Fact]
    public async Task TheResultIsRefreshedInTheBackground_WithoutAnyHello_SoALateReconnectReportsWhatIsInstalledNow()
    {
        var runs = 0;
        using var cache = new CapabilityCache(() => Interlocked.Increment(ref runs) == 1 ? ["git"] : ["docker", "git"], refreshAfter: TimeSpan.FromMilliseconds(200));
        await WaitForAsync(() => Volatile.Read(ref runs) >= 2);
        await Task.Delay(300); // the next tick takes the finished refresh as the current result
        Assert.Equal(["docker", "git"], await cache.GetAsync(CancellationToken.None).WaitAsync(Patience));
    }

    [Fact]
    public async Task AHelloWaitingForTheFirstDetection_IsCancelledWithItsConnection()
    {
        using var release = new ManualResetEventSlim(false);
        using var cache = new CapabilityCache(() => { release.Wait(Patience); return ["git"]; });
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cache.GetAsync(cts.Token));
        release.Set();
        Assert.Equal(["git"], await cache.GetAsync(CancellationToken.None).WaitAsync(Patience));
    }

    private static async Task WaitForAsync(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < Patience, "condition not met in time");
            await Task.Delay(20);
        }
    }
}
