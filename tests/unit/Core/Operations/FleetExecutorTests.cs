using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class FleetExecutorTests
{
    private static readonly RunCommandParams Uname = new() { Cmd = "uname -a", TimeoutS = 30 };
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    private static async Task<List<FleetCommandResult>> CollectAsync(IAsyncEnumerable<FleetCommandResult> results)
    {
        var list = new List<FleetCommandResult>();
        await foreach (var r in results)
        {
            list.Add(r);
        }

        return list;
    }

    [Fact]
    public async Task EveryTarget_GetsExactlyOneResult()
    {
        var transport = new FakeTransport();
        transport.Answer("b", FakeTransport.Exit(2));
        transport.Throw("c", new InvalidOperationException("kaput"));
        var targets = new[] { FakeFleet.Online("a"), FakeFleet.Online("b"), FakeFleet.Online("c"), FakeFleet.Offline("d") };

        var results = await CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname));

        Assert.Equal(targets.Select(t => t.Uuid).Order(), results.Select(r => r.Uuid).Order());
        var byName = results.ToDictionary(r => r.DisplayName);
        Assert.Equal(CommandStatus.Succeeded, byName["a"].Status);
        Assert.Equal("a", byName["a"].Stdout);
        Assert.Equal(CommandStatus.Failed, byName["b"].Status);
        Assert.Equal(2, byName["b"].ExitCode);
        Assert.Equal(CommandStatus.Error, byName["c"].Status);
        Assert.Equal("kaput", byName["c"].Error);
        Assert.Equal(CommandStatus.Offline, byName["d"].Status);
    }

    [Fact]
    public async Task OfflineTarget_IsAnsweredAtOnce_WithoutCallingTheTransport()
    {
        var transport = new FakeTransport();
        var release = new TaskCompletionSource();
        transport.Hold("slow", release.Task);
        var targets = new[] { FakeFleet.Online("slow"), FakeFleet.Offline("down") };

        await using var e = new FleetExecutor(transport).RunAsync(targets, Uname).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync().AsTask().WaitAsync(Patience));
        Assert.Equal("down", e.Current.DisplayName);
        Assert.Equal(CommandStatus.Offline, e.Current.Status);
        Assert.DoesNotContain("down", transport.Called);

        release.SetResult();
        Assert.True(await e.MoveNextAsync());
        Assert.Equal("slow", e.Current.DisplayName);
        Assert.False(await e.MoveNextAsync());
    }

    [Fact]
    public async Task DeniedTarget_IsAnsweredDenied_WithoutCallingTheTransport()
    {
        var transport = new FakeTransport();
        var target = FakeFleet.Online("mismatch") with { DeniedReason = "key mismatch" };

        var results = await CollectAsync(new FleetExecutor(transport).RunAsync([target], Uname));

        Assert.Equal(CommandStatus.Denied, Assert.Single(results).Status);
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task Results_StreamInCompletionOrder_FastBeforeSlowFinishes()
    {
        var transport = new FakeTransport();
        var release = new TaskCompletionSource();
        transport.Hold("slow", release.Task);
        var targets = new[] { FakeFleet.Online("slow"), FakeFleet.Online("fast") };

        await using var e = new FleetExecutor(transport).RunAsync(targets, Uname).GetAsyncEnumerator();
        Assert.True(await e.MoveNextAsync().AsTask().WaitAsync(Patience));
        Assert.Equal("fast", e.Current.DisplayName);
        Assert.False(release.Task.IsCompleted); // the slow one has not finished, yet the fast one is out

        release.SetResult();
        Assert.True(await e.MoveNextAsync().AsTask().WaitAsync(Patience));
        Assert.Equal("slow", e.Current.DisplayName);
    }

    [Theory]
    [InlineData(1, 10)]
    [InlineData(3, 20)]
    [InlineData(32, 100)]
    public async Task Throttle_IsNeverExceeded_AndIsReached(int throttle, int count)
    {
        var transport = new FakeTransport();
        var release = new TaskCompletionSource();
        var started = 0;
        var enoughStarted = new TaskCompletionSource();
        transport.Started += _ =>
        {
            if (Interlocked.Increment(ref started) == throttle)
            {
                enoughStarted.TrySetResult();
            }
        };
        var targets = Enumerable.Range(0, count).Select(i => FakeFleet.Online("t" + i)).ToArray();
        foreach (var t in targets)
        {
            transport.Hold(t.DisplayName, release.Task);
        }

        var run = CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname, new FleetOptions { ThrottleLimit = throttle }));
        await enoughStarted.Task.WaitAsync(Patience);
        Assert.Equal(throttle, transport.Calls); // the throttle is full and nothing more was launched
        release.SetResult();
        var results = await run.WaitAsync(Patience);

        Assert.Equal(count, results.Count);
        Assert.Equal(throttle, transport.MaxConcurrency);
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, r.Status));
    }

    [Fact]
    public async Task ThrowingTarget_DoesNotStopOthers()
    {
        var transport = new FakeTransport();
        transport.Script("bad", _ => throw new IOException("socket reset"));
        var targets = new[] { FakeFleet.Online("bad"), FakeFleet.Online("good1"), FakeFleet.Online("good2") };

        var results = await CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname, new FleetOptions { ThrottleLimit = 1 }));

        Assert.Equal(3, results.Count);
        Assert.Equal(CommandStatus.Error, results.Single(r => r.DisplayName == "bad").Status);
        Assert.StartsWith("tunnel closed", results.Single(r => r.DisplayName == "bad").Error);
        Assert.Equal(2, results.Count(r => r.Status == CommandStatus.Succeeded));
    }

    [Fact]
    public async Task MaxErrors_StopsLaunching_AndReportsTheRestSkipped()
    {
        var transport = new FakeTransport();
        var targets = Enumerable.Range(0, 10).Select(i => FakeFleet.Online("t" + i)).ToArray();
        foreach (var t in targets)
        {
            transport.Answer(t.DisplayName, FakeTransport.Exit(1));
        }

        var results = await CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname,
            new FleetOptions { ThrottleLimit = 1, MaxErrors = ErrorLimit.Count(2) }));

        Assert.Equal(10, results.Count);
        Assert.Equal(2, results.Count(r => r.Status == CommandStatus.Failed));
        Assert.Equal(8, results.Count(r => r.Status == CommandStatus.Skipped));
        Assert.Equal(2, transport.Calls);
        Assert.Contains("error limit", results.First(r => r.Status == CommandStatus.Skipped).Error);
    }

    [Fact]
    public async Task MaxErrorsPercent_CountsOfflineTargets()
    {
        var transport = new FakeTransport();
        var targets = new[] { FakeFleet.Offline("down") }
            .Concat(Enumerable.Range(0, 3).Select(i => FakeFleet.Online("t" + i))).ToArray();

        // 25 % of 4 targets = 1 error; the offline one reaches it.
        var results = await CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname,
            new FleetOptions { MaxErrors = ErrorLimit.Percent(25) }));

        Assert.Equal(3, results.Count(r => r.Status == CommandStatus.Skipped));
        Assert.Equal(0, transport.Calls);
    }

    [Fact]
    public async Task Cancellation_CompletesPromptly_WithAResultForEveryTarget()
    {
        var transport = new FakeTransport();
        var never = new TaskCompletionSource().Task;
        var targets = Enumerable.Range(0, 5).Select(i => FakeFleet.Online("t" + i)).ToArray();
        foreach (var t in targets)
        {
            // Ignores its token on purpose: the executor must still end promptly.
            transport.Script(t.DisplayName, _ => never.ContinueWith(_ => FakeTransport.Exit(0), TaskScheduler.Default));
        }

        var twoStarted = new TaskCompletionSource();
        var started = 0;
        transport.Started += _ =>
        {
            if (Interlocked.Increment(ref started) == 2)
            {
                twoStarted.TrySetResult();
            }
        };
        using var cts = new CancellationTokenSource();
        var run = CollectAsync(new FleetExecutor(transport).RunAsync(targets, Uname, new FleetOptions { ThrottleLimit = 2 }, cts.Token));
        await twoStarted.Task.WaitAsync(Patience);
        cts.Cancel();
        var results = await run.WaitAsync(Patience);

        Assert.Equal(5, results.Count);
        Assert.Equal(2, results.Count(r => r.Status == CommandStatus.Error && r.Error == "cancelled"));
        Assert.Equal(3, results.Count(r => r.Status == CommandStatus.Skipped));
    }

    [Fact]
    public async Task PerTargetTimeout_GivesTimedOut()
    {
        var transport = new FakeTransport();
        transport.Hold("stuck", new TaskCompletionSource().Task);
        var results = await CollectAsync(new FleetExecutor(transport).RunAsync([FakeFleet.Online("stuck")], Uname,
            new FleetOptions { PerTargetTimeout = TimeSpan.FromMilliseconds(50) })).WaitAsync(Patience);

        Assert.Equal(CommandStatus.TimedOut, Assert.Single(results).Status);
    }

    [Fact]
    public async Task StoppingEnumerationEarly_CancelsInFlightTargets()
    {
        var transport = new FakeTransport();
        var cancelled = new TaskCompletionSource();
        transport.Script("stuck", async ct =>
        {
            using var reg = ct.Register(() => cancelled.TrySetResult());
            await Task.Delay(Timeout.Infinite, ct);
            return FakeTransport.Exit(0);
        });
        var targets = new[] { FakeFleet.Offline("down"), FakeFleet.Online("stuck") };

        await foreach (var _ in new FleetExecutor(transport).RunAsync(targets, Uname))
        {
            break;
        }

        await cancelled.Task.WaitAsync(Patience);
    }

    [Fact]
    public async Task EmptyTargetList_CompletesWithNoResults()
    {
        var results = await CollectAsync(new FleetExecutor(new FakeTransport()).RunAsync([], Uname));
        Assert.Empty(results);
    }

    [Theory]
    [InlineData(RpcErrorCodes.PathDenied, CommandStatus.Denied)]
    [InlineData(RpcErrorCodes.RateLimited, CommandStatus.RateLimited)]
    [InlineData(RpcErrorCodes.Timeout, CommandStatus.TimedOut)]
    [InlineData(RpcErrorCodes.Internal, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.Busy, CommandStatus.Error)]
    public async Task RpcErrorCodes_MapToStatuses(int code, CommandStatus expected)
    {
        var transport = new FakeTransport();
        transport.Throw("x", new RpcException(code, "nope"));

        var result = Assert.Single(await CollectAsync(new FleetExecutor(transport).RunAsync([FakeFleet.Online("x")], Uname)));

        Assert.Equal(expected, result.Status);
        Assert.Contains(RpcErrorCodes.Name(code), result.Error);
    }

    [Theory]
    [InlineData(0, false, CommandStatus.Succeeded)]
    [InlineData(1, false, CommandStatus.Failed)]
    [InlineData(-1, false, CommandStatus.Failed)]
    [InlineData(137, true, CommandStatus.TimedOut)]
    public void Answers_MapToStatuses(int exit, bool timedOut, CommandStatus expected)
    {
        var result = FleetCommandResult.FromAnswer(FakeFleet.Online("x"), FakeTransport.Exit(exit, timedOut: timedOut), 5);
        Assert.Equal(expected, result.Status);
        Assert.Equal(timedOut ? null : exit, result.ExitCode);
    }

    [Fact]
    public void ErrorMessages_AreShortSingleLines()
    {
        var result = FleetCommandResult.FromException(FakeFleet.Online("x"), new InvalidOperationException(new string('x', 1000) + "\nsecond line"), 1);
        Assert.DoesNotContain("\n", result.Error!, StringComparison.Ordinal);
        Assert.True(result.Error!.Length <= FleetCommandResult.MaxErrorLength);
    }

    [Theory]
    [InlineData("5", 100, 5)]
    [InlineData("10%", 100, 10)]
    [InlineData("10%", 5, 1)]
    [InlineData("50%", 3, 2)]
    public void ErrorLimit_ParsesCountsAndPercentages(string text, int total, int threshold) =>
        Assert.Equal(threshold, ErrorLimit.Parse(text).Threshold(total));

    [Theory]
    [InlineData("0")]
    [InlineData("101%")]
    [InlineData("-1")]
    [InlineData("lots")]
    public void ErrorLimit_RejectsNonsense(string text) =>
        Assert.ThrowsAny<Exception>(() => ErrorLimit.Parse(text));

    [Fact]
    public void Summary_CountsByStatus()
    {
        var t = FakeFleet.Online("x");
        var summary = FleetSummary.Of([
            FleetCommandResult.Unstarted(t, CommandStatus.Succeeded, "ok"),
            FleetCommandResult.Unstarted(t, CommandStatus.Succeeded, "ok"),
            FleetCommandResult.Unstarted(t, CommandStatus.Offline, "down"),
        ]);

        Assert.Equal(3, summary.Total);
        Assert.Equal(2, summary[CommandStatus.Succeeded]);
        Assert.Equal(1, summary.NotSucceeded);
        Assert.False(summary.AllSucceeded);
        Assert.Equal("3 targets: 2 succeeded, 1 offline", summary.ToString());
    }
}
