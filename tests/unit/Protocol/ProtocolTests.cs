using System.Text;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit;

public sealed class FramingTests
{
    [Fact]
    public async Task Frame_RoundTripsPayload()
    {
        var stream = new MemoryStream();
        await Framing.WriteFrameAsync(stream, Encoding.UTF8.GetBytes("{\"a\":1}"));
        stream.Position = 0;
        var frame = await Framing.ReadFrameAsync(stream);
        Assert.Equal("{\"a\":1}", Encoding.UTF8.GetString(frame!));
        Assert.Null(await Framing.ReadFrameAsync(stream));
    }

    [Fact]
    public async Task Frame_OversizedHeader_IsRefusedBeforeAllocation()
    {
        var stream = new MemoryStream([0x7f, 0xff, 0xff, 0xff, 1, 2, 3]);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => Framing.ReadFrameAsync(stream, 1024));
        Assert.Equal(ProtocolError.FrameTooLarge, ex.Error);
    }

    [Fact]
    public async Task Frame_NegativeLength_IsRefused()
    {
        var stream = new MemoryStream([0xff, 0xff, 0xff, 0xff]);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => Framing.ReadFrameAsync(stream));
        Assert.Equal(ProtocolError.FrameTooLarge, ex.Error);
    }

    [Fact]
    public async Task Frame_TruncatedPayload_IsReported()
    {
        var stream = new MemoryStream([0, 0, 0, 10, 1, 2]);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => Framing.ReadFrameAsync(stream));
        Assert.Equal(ProtocolError.Truncated, ex.Error);
    }

    [Fact]
    public async Task Frame_TruncatedHeader_IsReported()
    {
        var stream = new MemoryStream([0, 0]);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() => Framing.ReadFrameAsync(stream));
        Assert.Equal(ProtocolError.Truncated, ex.Error);
    }

    [Fact]
    public void Malformed_Json_IsProtocolError()
    {
        var ex = Assert.Throws<ProtocolException>(() => Wire.Deserialize("{not json"u8, ProtocolJson.Default.RpcRequest));
        Assert.Equal(ProtocolError.Malformed, ex.Error);
    }

    [Fact]
    public void Messages_UseSnakeCase_AndOmitNulls()
    {
        var json = Encoding.UTF8.GetString(System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(
            new ControlMessage { Type = ControlTypes.Hello, TunnelPort = 4242, AgentVersion = "1" }, ProtocolJson.Default.ControlMessage));
        Assert.Contains("\"tunnel_port\":4242", json);
        Assert.Contains("\"agent_version\":\"1\"", json);
        Assert.DoesNotContain("session_secret", json);
    }
}
