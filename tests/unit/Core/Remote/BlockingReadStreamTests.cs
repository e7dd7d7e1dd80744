using System.Text.Json;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

/// <summary>
/// ssh's stdout read with blocking reads on the channel's own thread: a read completes before it returns, with the inner
/// stream's bytes, and the operator channel's read loop never sits on a thread-pool thread.
/// </summary>
public sealed class BlockingReadStreamTests
{
    /// <summary>A stream that notes on which kind of thread it was read.</summary>
    private sealed class WatchedStream(byte[] bytes) : MemoryStream(bytes)
    {
        public int PoolReads;
        public int OtherReads;

        // A span read of a derived MemoryStream comes here too (Stream.Read(Span) calls this overload).
        public override int Read(byte[] buffer, int offset, int count)
        {
            Interlocked.Increment(ref Thread.CurrentThread.IsThreadPoolThread ? ref PoolReads : ref OtherReads);
            return base.Read(buffer, offset, count);
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => throw new InvalidOperationException("the blocking view must never call the inner stream's asynchronous read");
    }

    [Fact]
    public async Task ReadAsync_CompletesBeforeItReturns_WithTheInnerBytes()
    {
        using var stream = new BlockingReadStream(new MemoryStream([1, 2, 3]));
        var buffer = new byte[8];
        var read = stream.ReadAsync(buffer.AsMemory());
        Assert.True(read.IsCompletedSuccessfully);
        Assert.Equal(3, await read);
        Assert.Equal(new byte[] { 1, 2, 3 }, buffer[..3]);
        Assert.Equal(0, await stream.ReadAsync(buffer.AsMemory()));
    }

    [Fact]
    public async Task ReadAsync_WithACancelledToken_ReadsNothing()
    {
        var inner = new MemoryStream([1, 2, 3]);
        using var stream = new BlockingReadStream(inner);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await stream.ReadExactlyAsync(new byte[3].AsMemory(), new CancellationToken(true)));
        Assert.Equal(0, inner.Position);
    }

    [Fact]
    public async Task TheChannelsReadLoop_ReadsOnItsOwnThread_NotThePool()
    {
        var frames = new MemoryStream();
        await OperatorFrames.WriteMessageAsync(frames, new OperatorMessage { Type = OperatorMessageTypes.Result, Id = 1, Body = JsonDocument.Parse("{}").RootElement });
        var inner = new WatchedStream(frames.ToArray());
        await using var channel = new OperatorChannel(new BlockingReadStream(inner), Stream.Null);
        await channel.Closed.WaitAsync(TimeSpan.FromSeconds(10)); // the frame, then the end of the stream
        Assert.True(inner.OtherReads >= 2, $"{inner.OtherReads} reads off the pool");
        Assert.Equal(0, inner.PoolReads);
    }
}
