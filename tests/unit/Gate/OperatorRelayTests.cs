using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using EtPhoneHome.Gate;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Gate;

/// <summary>
/// eph-gate operator against a fake hub: one first frame naming the key, then bytes both ways; the operator's end of
/// input reaches the hub as an end of stream and the hub's later output still reaches the operator; the hub closing
/// ends the relay; no hub is one plain line and exit code 1.
/// </summary>
public sealed class OperatorRelayTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-oprelay-").FullName;

    private string HubPath => Path.Combine(_dir, "hub.sock");

    public void Dispose()
    {
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private static GateRequest First => new() { Op = "operator", Fingerprint = "SHA256:abc", GatePid = 77, SshConnection = "192.0.2.7 5 127.0.0.1 22", User = "eph" };

    private Socket Listen()
    {
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(HubPath));
        listener.Listen(4);
        return listener;
    }

    [Fact]
    public async Task BytesGoBothWays_TheOperatorsEndReachesTheHub_AndTheHubsLaterOutputStillArrives()
    {
        using var listener = Listen();
        var input = new MemoryStream(Encoding.UTF8.GetBytes("request one\nrequest two\n"));
        var output = new MemoryStream();
        var relay = OperatorRelay.RunAsync(input, output, HubPath, First, TextWriter.Null);

        using var hubSide = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await using (var stream = new NetworkStream(hubSide, ownsSocket: false))
        {
            var first = await Wire.ReadAsync(stream, ProtocolJson.Default.GateRequest, 64 * 1024);
            Assert.Equal(("operator", "SHA256:abc", 77, "192.0.2.7 5 127.0.0.1 22"), (first!.Op, first.Fingerprint, first.GatePid, first.SshConnection));

            using var received = new MemoryStream();
            await stream.CopyToAsync(received).WaitAsync(TimeSpan.FromSeconds(10)); // ends only when the gate shuts its sending side
            Assert.Equal("request one\nrequest two\n", Encoding.UTF8.GetString(received.ToArray()));

            await stream.WriteAsync("answer after your end"u8.ToArray());
        }

        hubSide.Shutdown(SocketShutdown.Both);
        hubSide.Close();
        Assert.Equal(0, await relay.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("answer after your end", Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public async Task MebibytesGoBothWaysIntact_InPiecesOfAtMostTheRelayBuffer()
    {
        using var listener = Listen();
        var up = new byte[3 * 1024 * 1024 + 17];
        var down = new byte[2 * 1024 * 1024 + 5];
        Random.Shared.NextBytes(up);
        Random.Shared.NextBytes(down);
        var output = new RecordingStream();
        var relay = OperatorRelay.RunAsync(new MemoryStream(up), output, HubPath, First, TextWriter.Null);

        using var hubSide = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await using (var stream = new NetworkStream(hubSide, ownsSocket: false))
        {
            await Wire.ReadAsync(stream, ProtocolJson.Default.GateRequest, 64 * 1024);
            using var received = new MemoryStream();
            await stream.CopyToAsync(received).WaitAsync(TimeSpan.FromSeconds(20));
            Assert.True(received.ToArray().AsSpan().SequenceEqual(up));
            await stream.WriteAsync(down);
        }

        hubSide.Shutdown(SocketShutdown.Both);
        hubSide.Close();
        Assert.Equal(0, await relay.WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.True(output.ToArray().AsSpan().SequenceEqual(down));
        Assert.InRange(output.LargestWrite, 1, OperatorRelay.BufferBytes);
    }

    /// <summary>A memory stream that remembers its largest write.</summary>
    private sealed class RecordingStream : MemoryStream
    {
        public int LargestWrite { get; private set; }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            LargestWrite = Math.Max(LargestWrite, buffer.Length);
            return base.WriteAsync(buffer, cancellationToken);
        }
    }

    [Fact]
    public async Task TheHubClosing_EndsTheRelay_WhileTheOperatorsInputIsStillOpen()
    {
        using var listener = Listen();
        var pipe = new Pipe(); // input that never ends
        var output = new MemoryStream();
        var relay = OperatorRelay.RunAsync(pipe.Reader.AsStream(), output, HubPath, First, TextWriter.Null);

        using (var hubSide = await listener.AcceptAsync().WaitAsync(TimeSpan.FromSeconds(10)))
        {
            await using var stream = new NetworkStream(hubSide, ownsSocket: false);
            await Wire.ReadAsync(stream, ProtocolJson.Default.GateRequest, 64 * 1024);
            await stream.WriteAsync("bye"u8.ToArray());
        }

        Assert.Equal(0, await relay.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("bye", Encoding.UTF8.GetString(output.ToArray()));
    }

    [Fact]
    public async Task NoHub_IsOnePlainLine_AndExitCode1()
    {
        var error = new StringWriter();

        var code = await OperatorRelay.RunAsync(new MemoryStream(), new MemoryStream(), HubPath, First, error);

        Assert.Equal(1, code);
        Assert.Equal($"eph-gate: the hub is not running at {HubPath}" + Environment.NewLine, error.ToString());
    }
}
