using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>The agent gives memory back once idle after a burst, never while busy and not when nothing grew.</summary>
public sealed class IdleTrimmerTests
{
    [Fact]
    public async Task AfterABurst_TrimsOnceIdle_ThenNotAgainUntilTheHeapGrows()
    {
        long committed = 10;
        var collected = new SemaphoreSlim(0);
        using var trimmer = new IdleTrimmer(TimeSpan.FromMilliseconds(20), slack: 5, () => Interlocked.Read(ref committed), () =>
        {
            Interlocked.Exchange(ref committed, 11);
            collected.Release();
        });

        trimmer.Enter();
        Interlocked.Exchange(ref committed, 40); // the burst grew the heap
        trimmer.Exit();
        Assert.True(await collected.WaitAsync(TimeSpan.FromSeconds(10)), "no trim after the burst");
        Assert.Equal(1, trimmer.Trims);

        // Idle again with nothing grown beyond the slack: no second trim.
        trimmer.Enter();
        Interlocked.Exchange(ref committed, 14);
        trimmer.Exit();
        Assert.False(await collected.WaitAsync(TimeSpan.FromMilliseconds(300)));
        Assert.Equal(1, trimmer.Trims);
    }

    [Fact]
    public async Task WhileARequestIsInFlight_NothingIsTrimmed()
    {
        var collections = 0;
        long committed = 1_000;
        using var trimmer = new IdleTrimmer(TimeSpan.FromMilliseconds(20), slack: 0, () => Interlocked.Read(ref committed), () => Interlocked.Increment(ref collections));

        Interlocked.Exchange(ref committed, 2_000);
        trimmer.Enter();
        trimmer.Enter();
        trimmer.Exit(); // one of two requests ended: still busy, the timer is not armed
        await Task.Delay(200);
        Assert.Equal(0, Volatile.Read(ref collections));
        trimmer.Exit();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Volatile.Read(ref collections) == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(10); // bounded wait for the timer thread
        }

        Assert.Equal(1, Volatile.Read(ref collections));
    }
}
