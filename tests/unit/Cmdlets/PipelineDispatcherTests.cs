using EtPhoneHome;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

public sealed class PipelineDispatcherTests
{
    [Fact]
    public void PostedActions_RunOnTheCallingThread_InOrder()
    {
        var dispatcher = new PipelineDispatcher();
        var caller = Environment.CurrentManagedThreadId;
        var seen = new List<(int Thread, int N)>();
        using var cts = new CancellationTokenSource();

        dispatcher.Run(async ct =>
        {
            await Task.Yield();
            for (var i = 0; i < 5; i++)
            {
                var n = i;
                dispatcher.Post(() => seen.Add((Environment.CurrentManagedThreadId, n)));
            }
        }, cts);

        Assert.Equal([0, 1, 2, 3, 4], seen.Select(s => s.N));
        Assert.All(seen, s => Assert.Equal(caller, s.Thread));
    }

    [Fact]
    public void InvokeAsync_ReturnsThePipelineThreadsAnswer()
    {
        var dispatcher = new PipelineDispatcher();
        var caller = Environment.CurrentManagedThreadId;
        var answered = -1;
        using var cts = new CancellationTokenSource();

        dispatcher.Run(async ct => answered = await dispatcher.InvokeAsync(() => Environment.CurrentManagedThreadId), cts);

        Assert.Equal(caller, answered);
    }

    [Fact]
    public void WorkException_IsRethrownOnTheCaller()
    {
        var dispatcher = new PipelineDispatcher();
        using var cts = new CancellationTokenSource();
        Assert.Throws<InvalidOperationException>(() => dispatcher.Run(async ct =>
        {
            await Task.Yield();
            throw new InvalidOperationException("boom");
        }, cts));
    }

    [Fact]
    public void FailingCallback_CancelsTheWork_AndPropagates()
    {
        var dispatcher = new PipelineDispatcher();
        using var cts = new CancellationTokenSource();
        var workSawCancel = false;

        Assert.Throws<TimeZoneNotFoundException>(() => dispatcher.Run(async ct =>
        {
            dispatcher.Post(() => throw new TimeZoneNotFoundException("pipeline stopped"));
            try
            {
                await Task.Delay(Timeout.Infinite, ct);
            }
            catch (OperationCanceledException)
            {
                workSawCancel = true;
                throw;
            }
        }, cts));

        Assert.True(workSawCancel);
    }

    [Fact]
    public async Task FailingCallback_WhileTheWorkAwaitsAnotherCallback_DoesNotHang()
    {
        // -ErrorAction Stop: WriteError throws on the pipeline thread while the worker already waits for a
        // ShouldProcess answer queued behind it. The queued question must be cancelled, not left unanswered.
        using var cts = new CancellationTokenSource();
        var asked = new ManualResetEventSlim();
        var run = Task.Factory.StartNew(() =>
        {
            // Created on its own dedicated thread, as PowerShell's pipeline thread is: no pool thread is "it".
            var dispatcher = new PipelineDispatcher();
            return Assert.Throws<TimeZoneNotFoundException>(() => dispatcher.Run(async ct =>
        {
            await Task.Yield();
            dispatcher.Post(() =>
            {
                Assert.True(asked.Wait(TimeSpan.FromSeconds(10)));
                throw new TimeZoneNotFoundException("error action stop");
            });
            var answer = dispatcher.InvokeAsync(() => true);
            asked.Set();
            await answer;
        }, cts));
        }, TaskCreationOptions.LongRunning);

        var finished = await Task.WhenAny(run, Task.Delay(TimeSpan.FromSeconds(30)));
        Assert.Same(run, finished);
        await run;
    }

    [Fact]
    public async Task Cancellation_ReachesTheWork()
    {
        var dispatcher = new PipelineDispatcher();
        using var cts = new CancellationTokenSource();
        var started = new ManualResetEventSlim();
        var stopper = Task.Run(() =>
        {
            started.Wait(TimeSpan.FromSeconds(10));
            cts.Cancel();
        });

        Assert.ThrowsAny<OperationCanceledException>(() => dispatcher.Run(async ct =>
        {
            started.Set();
            await Task.Delay(Timeout.Infinite, ct);
        }, cts));
        await stopper;
    }
}
