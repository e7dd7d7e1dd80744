using EtPhoneHome.Core.Remote;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

/// <summary>The order in which calls waiting on one connection's bounds get their place.</summary>
public sealed class OperatorCallGateTests
{
    private static readonly OperatorCallCost Small = new(false, 10);

    [Fact]
    public async Task ALargeCall_KeepsItsTurn_SmallerOnesBehindItWait()
    {
        var gate = new OperatorCallGate(maxCalls: 10, maxTransfers: 2, maxBytes: 100);
        await gate.EnterAsync(new OperatorCallCost(false, 60), CancellationToken.None);
        var large = gate.EnterAsync(new OperatorCallCost(false, 60), CancellationToken.None);
        var small = gate.EnterAsync(Small, CancellationToken.None);

        // 30 bytes are free and the small call would fit, but the large one came first.
        Assert.False(large.IsCompleted);
        Assert.False(small.IsCompleted);

        gate.Release(new OperatorCallCost(false, 60));
        await large;
        await small;
        Assert.Equal(2, gate.InFlight);
        Assert.Equal(70, gate.Bytes);
    }

    [Fact]
    public async Task ACallWaitingForATransfersPlace_LetsTheOthersPass()
    {
        var gate = new OperatorCallGate(maxCalls: 10, maxTransfers: 1, maxBytes: 100);
        var transfer = new OperatorCallCost(true, 10);
        await gate.EnterAsync(transfer, CancellationToken.None);
        var second = gate.EnterAsync(transfer, CancellationToken.None);
        await gate.EnterAsync(Small, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(second.IsCompleted);

        gate.Release(transfer);
        await second.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(2, gate.InFlight);
    }

    [Fact]
    public async Task ACancelledWaiter_LeavesItsTurn_TheNextGoes()
    {
        var gate = new OperatorCallGate(maxCalls: 10, maxTransfers: 2, maxBytes: 100);
        await gate.EnterAsync(new OperatorCallCost(false, 60), CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var large = gate.EnterAsync(new OperatorCallCost(false, 60), cancel.Token);
        var small = gate.EnterAsync(Small, CancellationToken.None);
        Assert.Equal(2, gate.Waiting);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => large);
        await small.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal((0, 2, 70L), (gate.Waiting, gate.InFlight, gate.Bytes));
    }

    [Fact]
    public async Task Closing_FailsEveryWaiter_AndEveryLaterCall()
    {
        var gate = new OperatorCallGate(maxCalls: 1, maxTransfers: 1, maxBytes: 100);
        await gate.EnterAsync(Small, CancellationToken.None);
        var waiting = gate.EnterAsync(Small, CancellationToken.None);
        var lost = new OperatorConnectionLostException("the connection was closed");

        gate.Close(lost);
        Assert.Same(lost, await Assert.ThrowsAsync<OperatorConnectionLostException>(() => waiting));
        Assert.Same(lost, await Assert.ThrowsAsync<OperatorConnectionLostException>(() => gate.EnterAsync(Small, CancellationToken.None)));
        Assert.Equal(0, gate.Waiting);
    }
}
