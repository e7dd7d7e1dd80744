using System.Buffers.Binary;
using System.Diagnostics;
using System.Net.Sockets;
using EtPhoneHome.Gate;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Gate;

/// <summary>
/// eph-gate's session relay against fake hubs on a unix socket: whole frames each way, a hub that dies mid-frame hands the
/// agent nothing of that frame, the relay waits (bounded) for the next hub and re-attaches the session it learned from the
/// welcome, and it ends when the hub refuses, when there is nothing to re-attach, or when the grace period runs out.
/// </summary>
public sealed class SessionRelayTests : IDisposable
{
    private const int GatePid = 4242;
    private static readonly byte[] Secret = Enumerable.Range(1, 32).Select(i => (byte)i).ToArray();
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-relay-").FullName;

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

    // ------------------------------------------------------------------ harness

    /// <summary>A hub on <see cref="HubPath"/>: accepts gates and reads their first frame.</summary>
    private sealed class FakeHub : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        private readonly string _path;

        public FakeHub(string path)
        {
            _path = path;
            File.Delete(path);
            _listener.Bind(new UnixDomainSocketEndPoint(path));
            _listener.Listen(16);
        }

        public async Task<(NetworkStream Stream, GateRequest First)> AcceptAsync(TimeSpan? within = null)
        {
            using var cts = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(10));
            var socket = await _listener.AcceptAsync(cts.Token);
            var stream = new NetworkStream(socket, ownsSocket: true);
            var first = await Wire.ReadAsync(stream, ProtocolJson.Default.GateRequest, 64 * 1024, cts.Token);
            return (stream, first!);
        }

        /// <summary>The hub process is gone: nobody listens, the socket file stays behind (as after kill -9).</summary>
        public void Dispose() => _listener.Dispose();

        public void RemoveSocketFile() => File.Delete(_path);
    }

    /// <summary>The SSH session's side of the relay: what the agent writes and reads (one duplex stream each way).</summary>
    private async Task<(NetworkStream RelaySide, NetworkStream Agent)> AgentPairAsync()
    {
        var path = Path.Combine(_dir, "agent-" + Guid.NewGuid().ToString("N")[..8] + ".sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var server = await listener.AcceptAsync();
        return (new NetworkStream(server, ownsSocket: true), new NetworkStream(client, ownsSocket: true));
    }

    private SessionRelay Relay(Stream relaySide, TimeSpan grace, List<string>? log = null) => new(
        relaySide, relaySide,
        async ct =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(HubPath), ct);
                return socket;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        new GateRequest { Op = "session", Fingerprint = "SHA256:relaytestrelaytestrelaytest", GatePid = GatePid, SshConnection = "127.0.0.1 1 127.0.0.1 22" },
        new SessionRelayOptions { Grace = grace, RetryInterval = TimeSpan.FromMilliseconds(100), AnswerTimeout = TimeSpan.FromSeconds(2) },
        line => { if (log is not null) { lock (log) { log.Add(line); } } });

    private static ControlMessage Welcome() => new()
    {
        Type = ControlTypes.Welcome,
        Uuid = "uuid-relay-1",
        SessionId = 7,
        SessionSecret = Convert.ToBase64String(Secret),
        Settings = new SessionSettings { HeartbeatSeconds = 2 },
    };

    private static Task SendAsync(Stream stream, ControlMessage message) => Wire.WriteAsync(stream, message, ProtocolJson.Default.ControlMessage);

    private static async Task<ControlMessage?> ReadAsync(Stream stream, TimeSpan? within = null)
    {
        using var cts = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(10));
        return await Wire.ReadAsync(stream, ProtocolJson.Default.ControlMessage, Framing.MaxFrameBytes, cts.Token);
    }

    private static ControlMessage Heartbeat(long sequence) => new() { Type = ControlTypes.Heartbeat, Sequence = sequence };

    private static byte[] FrameBytes(ControlMessage message)
    {
        var payload = System.Text.Json.JsonSerializer.SerializeToUtf8Bytes(message, ProtocolJson.Default.ControlMessage);
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }

    /// <summary>Starts the relay on a welcomed session: hub 1 got the gate's first frame and sent the welcome.</summary>
    private async Task<(Task<int> Run, NetworkStream Agent, NetworkStream Hub1)> WelcomedSessionAsync(FakeHub hub, TimeSpan grace, List<string>? log = null)
    {
        var (relaySide, agent) = await AgentPairAsync();
        var run = Relay(relaySide, grace, log).RunAsync();
        var (hub1, first) = await hub.AcceptAsync();
        Assert.Equal("session", first.Op);
        Assert.Equal(GatePid, first.GatePid);
        await SendAsync(hub1, Welcome());
        var welcome = await ReadAsync(agent);
        Assert.Equal(ControlTypes.Welcome, welcome!.Type);
        return (run, agent, hub1);
    }

    // ------------------------------------------------------------------ tests

    [Fact]
    public async Task AHubThatDiesMidFrame_HandsTheAgentNothingOfThatFrame_AndTheNextHubGetsTheSessionBack()
    {
        var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(30));

        // Half a frame, then the hub process is gone (kill -9: connection cut, nobody listening, socket file left).
        var half = FrameBytes(new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = 99, Message = new string('x', 200) });
        await hub1.WriteAsync(half.AsMemory(0, half.Length / 2));
        await hub1.FlushAsync();
        await Task.Delay(100);
        hub1.Dispose();
        hubA.Dispose();

        await Task.Delay(700);
        Assert.False(run.IsCompleted, "the relay ended with the hub instead of waiting for the next one");

        using var hubB = new FakeHub(HubPath);
        var (hub2, resume) = await hubB.AcceptAsync();
        Assert.Equal(GateResume.Op, resume.Op);
        Assert.Equal("SHA256:relaytestrelaytestrelaytest", resume.Fingerprint);
        Assert.Equal(GatePid, resume.GatePid);
        Assert.Equal("127.0.0.1 1 127.0.0.1 22", resume.SshConnection);
        Assert.Equal("uuid-relay-1", resume.Uuid);
        Assert.Equal(7, resume.SessionId);
        Assert.True(GateResume.Verify(Secret, resume.SessionSecret));
        await Wire.WriteAsync(hub2, new GateResumeResponse { Ok = true }, ProtocolJson.Default.GateResumeResponse);

        // The agent's next frame is the new hub's first, whole: nothing of the half frame, nothing of the resume answer.
        await SendAsync(hub2, Heartbeat(5));
        var next = await ReadAsync(agent);
        Assert.Equal(ControlTypes.Heartbeat, next!.Type);
        Assert.Equal(5, next.Sequence);

        // And the agent's frames reach the new hub.
        await SendAsync(agent, Heartbeat(6));
        var up = await ReadAsync(hub2);
        Assert.Equal(6, up!.Sequence);

        agent.Dispose();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(10)));
        hub2.Dispose();
    }

    [Fact]
    public async Task AgentFrames_ReachTheHubWhole_AndThoseSentWhileNoHubListens_AreDropped()
    {
        var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(30));

        // A frame written in pieces arrives as one frame.
        var split = FrameBytes(Heartbeat(1));
        await agent.WriteAsync(split.AsMemory(0, 3));
        await agent.FlushAsync();
        await Task.Delay(50);
        await agent.WriteAsync(split.AsMemory(3));
        await agent.FlushAsync();
        Assert.Equal(1, (await ReadAsync(hub1))!.Sequence);

        // The agent is inside a frame when the hub dies; the rest of it, and the next frame, come while no hub listens.
        var cut = FrameBytes(Heartbeat(2));
        await agent.WriteAsync(cut.AsMemory(0, 5));
        await agent.FlushAsync();
        await Task.Delay(50);
        hub1.Dispose();
        hubA.Dispose();
        await Task.Delay(300);
        await agent.WriteAsync(cut.AsMemory(5));
        await SendAsync(agent, Heartbeat(3));
        await Task.Delay(300);

        using var hubB = new FakeHub(HubPath);
        var (hub2, resume) = await hubB.AcceptAsync();
        Assert.Equal(GateResume.Op, resume.Op);
        await Wire.WriteAsync(hub2, new GateResumeResponse { Ok = true }, ProtocolJson.Default.GateResumeResponse);
        await Task.Delay(200);
        await SendAsync(agent, Heartbeat(4));

        // The new hub's first control frame is the first one the agent sent after it came: whole, nothing older.
        var first = await ReadAsync(hub2);
        Assert.Equal(ControlTypes.Heartbeat, first!.Type);
        Assert.Equal(4, first.Sequence);

        agent.Dispose();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(10)));
        hub2.Dispose();
    }

    [Fact]
    public async Task AHubThatDoesNotComeBack_EndsTheSession_WhenTheGracePeriodRunsOut()
    {
        var log = new List<string>();
        var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(2), log);
        var lost = Stopwatch.StartNew();
        hub1.Dispose();
        hubA.Dispose();
        hubA.RemoveSocketFile();

        await Task.Delay(1200);
        Assert.False(run.IsCompleted, "the relay ended before its grace period");
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.InRange(lost.Elapsed.TotalSeconds, 1.9, 8);
        lock (log)
        {
            Assert.Contains(log, l => l.Contains("did not come back", StringComparison.Ordinal));
        }

        agent.Dispose();
    }

    [Fact]
    public async Task AResumeTheHubRefuses_EndsTheSessionAtOnce()
    {
        var log = new List<string>();
        var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(60), log);
        hub1.Dispose();
        hubA.Dispose();

        using var hubB = new FakeHub(HubPath);
        var (hub2, resume) = await hubB.AcceptAsync();
        Assert.Equal(GateResume.Op, resume.Op);
        await Wire.WriteAsync(hub2, new GateResumeResponse { Ok = false, Message = "session 7 is closed" }, ProtocolJson.Default.GateResumeResponse);
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(5)));
        lock (log)
        {
            Assert.Contains(log, l => l.Contains("session 7 is closed", StringComparison.Ordinal));
        }

        // The agent sees its channel end (no frame of the refusal reaches it).
        agent.Dispose();
        hub2.Dispose();
    }

    [Fact]
    public async Task ASessionThatNeverGotAWelcome_OrWasToldToGo_EndsWithTheHub()
    {
        // Pending: nothing to re-attach.
        using (var hubA = new FakeHub(HubPath))
        {
            var (relaySide, agent) = await AgentPairAsync();
            var run = Relay(relaySide, TimeSpan.FromSeconds(60)).RunAsync();
            var (hub1, _) = await hubA.AcceptAsync();
            await SendAsync(hub1, new ControlMessage { Type = ControlTypes.Pending, Message = "waiting" });
            Assert.Equal(ControlTypes.Pending, (await ReadAsync(agent))!.Type);
            hub1.Dispose();
            Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(5)));
            agent.Dispose();
        }

        // Welcomed, then refused by the hub on purpose: the refusal is relayed and the relay ends with the hub.
        using (var hubA = new FakeHub(HubPath))
        {
            var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(60));
            await SendAsync(hub1, new ControlMessage { Type = ControlTypes.Refused, Message = "revoked" });
            hub1.Dispose();
            Assert.Equal(ControlTypes.Refused, (await ReadAsync(agent))!.Type);
            Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(5)));
            agent.Dispose();
        }
    }

    [Fact]
    public async Task TheAgentClosingItsSide_EndsTheHubConnection_AndTheRelay()
    {
        using var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(60));
        agent.Socket.Shutdown(SocketShutdown.Send);
        Assert.Null(await ReadAsync(hub1));
        hub1.Dispose();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(10)));
        agent.Dispose();
    }

    [Fact]
    public async Task AFrameOverTheLimit_FromTheAgent_EndsTheRelay_WithoutReachingTheHub()
    {
        using var hubA = new FakeHub(HubPath);
        var (run, agent, hub1) = await WelcomedSessionAsync(hubA, TimeSpan.FromSeconds(60));
        var header = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, Framing.MaxFrameBytes + 1);
        await agent.WriteAsync(header);
        await agent.FlushAsync();
        Assert.Equal(0, await run.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Null(await ReadAsync(hub1));
        hub1.Dispose();
        agent.Dispose();
    }
}
