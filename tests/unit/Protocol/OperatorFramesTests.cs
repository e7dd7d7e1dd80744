using System.Buffers.Binary;
using System.IO.Pipes;
using System.Text;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit;

/// <summary>
/// The operator frames read into pooled buffers: the same frames and the same refusals as <see cref="OperatorFrames.ReadAsync"/>
/// (oversized, truncated, empty, unknown, a data chunk past its maximum), a data frame's bytes in a rented buffer at the
/// announced length, a long message read as its bytes arrive.
/// </summary>
public sealed class OperatorFramesTests
{
    private static async Task<MemoryStream> FramesAsync(params Func<Stream, Task>[] writes)
    {
        var stream = new MemoryStream();
        foreach (var write in writes)
        {
            await write(stream);
        }

        stream.Position = 0;
        return stream;
    }

    [Fact]
    public async Task Pooled_ReadsMessagesAndDataAsReadAsyncDoes_ThenTheCleanEnd()
    {
        var data = new byte[OperatorFrames.MaxDataBytes];
        Random.Shared.NextBytes(data);
        var stream = await FramesAsync(
            s => OperatorFrames.WriteMessageAsync(s, new OperatorMessage { Type = OperatorMessageTypes.Credit, Id = 7, Bytes = 123 }),
            s => OperatorFrames.WriteDataAsync(s, 7, data),
            s => OperatorFrames.WriteDataAsync(s, 8, new byte[] { 1, 2, 3 }));

        var message = (await OperatorFrames.ReadPooledAsync(stream))!.Value;
        Assert.False(message.IsData);
        Assert.Equal(7, message.Id);
        Assert.Equal(123, message.Message!.Bytes);
        Assert.Equal(1 + Encoding.UTF8.GetByteCount("{\"t\":\"credit\",\"id\":7,\"bytes\":123}"), message.Length);

        var big = (await OperatorFrames.ReadPooledAsync(stream))!.Value;
        Assert.True(big.IsData);
        Assert.Equal(7, big.Id);
        Assert.Equal(5 + data.Length, big.Length);
        Assert.True(big.Data.Span.SequenceEqual(data));
        OperatorFrames.ReturnData(big.Data);

        var small = (await OperatorFrames.ReadPooledAsync(stream))!.Value;
        Assert.Equal(8, small.Id);
        Assert.Equal(new byte[] { 1, 2, 3 }, small.Data.ToArray());
        OperatorFrames.ReturnData(small.Data);

        Assert.Null(await OperatorFrames.ReadPooledAsync(stream));
    }

    [Fact]
    public async Task Pooled_ASendersChunk_FillsOnePooledMebibyte()
    {
        var stream = await FramesAsync(s => OperatorFrames.WriteDataAsync(s, 3, new byte[OperatorFrames.PreferredDataBytes]));
        var frame = (await OperatorFrames.ReadPooledAsync(stream))!.Value;
        Assert.True(System.Runtime.InteropServices.MemoryMarshal.TryGetArray(frame.Data, out var segment));
        Assert.Equal(1024 * 1024, segment.Array!.Length);
        Assert.Equal(OperatorFrames.PreferredDataBytes, frame.Data.Length);
        OperatorFrames.ReturnData(frame.Data);
    }

    [Fact]
    public async Task Pooled_ALongMessage_IsReadAsItsBytesArrive()
    {
        var body = new string('x', 3 * 1024 * 1024);
        var stream = await FramesAsync(s => OperatorFrames.WriteMessageAsync(s, new OperatorMessage { Type = OperatorMessageTypes.Call, Id = 1, Op = "hello", Sha256 = body }));
        var frame = (await OperatorFrames.ReadPooledAsync(stream))!.Value;
        Assert.Equal(body, frame.Message!.Sha256);
        Assert.True(frame.Length > OperatorFrames.MaxDataBytes);
    }

    [Fact]
    public async Task Pooled_RefusesAnOversizedFrame_BeforeReadingIt()
    {
        var header = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, OperatorFrames.MaxFrameBytes + 1);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => OperatorFrames.ReadPooledAsync(new MemoryStream(header)));
        Assert.Equal(ProtocolError.FrameTooLarge, ex.Error);
    }

    [Fact]
    public async Task Pooled_RefusesADataChunkPastItsMaximum()
    {
        // A frame long enough to be a message, whose kind byte says data: refused, not taken as a 12 MiB chunk.
        var payload = new byte[5 + OperatorFrames.MaxDataBytes + 1];
        payload[0] = OperatorFrames.Data;
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => OperatorFrames.ReadPooledAsync(new MemoryStream(frame)));
        Assert.Equal(ProtocolError.FrameTooLarge, ex.Error);
    }

    [Theory]
    [InlineData(new byte[] { 0, 0, 0, 9, OperatorFrames.Data, 0, 0 }, ProtocolError.Truncated)] // closed inside the frame
    [InlineData(new byte[] { 0, 0 }, ProtocolError.Truncated)] // closed inside the header
    [InlineData(new byte[] { 0, 0, 0, 0 }, ProtocolError.Malformed)] // empty
    [InlineData(new byte[] { 0, 0, 0, 1, 9 }, ProtocolError.Malformed)] // unknown kind
    [InlineData(new byte[] { 0, 0, 0, 3, OperatorFrames.Data, 0, 0 }, ProtocolError.Malformed)] // data without its id
    public async Task Pooled_RefusesWhatReadAsyncRefuses(byte[] bytes, ProtocolError expected)
    {
        var pooled = await Assert.ThrowsAsync<ProtocolException>(() => OperatorFrames.ReadPooledAsync(new MemoryStream(bytes)));
        var plain = await Assert.ThrowsAsync<ProtocolException>(() => OperatorFrames.ReadAsync(new MemoryStream(bytes)));
        Assert.Equal(expected, pooled.Error);
        Assert.Equal(expected, plain.Error);
    }

    [Fact]
    public void PipeCapacity_GrowsAPipe_AndLeavesAFileAlone()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        using var server = new AnonymousPipeServerStream(PipeDirection.Out);
        Assert.True(PipeCapacity.TryGrow(server.SafePipeHandle, 256 * 1024) >= 256 * 1024);

        var path = Path.GetTempFileName();
        try
        {
            using var file = File.OpenWrite(path);
            Assert.Equal(-1, PipeCapacity.TryGrow(file.SafeFileHandle));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
