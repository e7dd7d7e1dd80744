using EtPhoneHome.Core.Logging;
using System.Net.Sockets;
using EtPhoneHome.Hub;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// A hub that starts where another hub left sessions open: gates that still run re-attach their sessions (verified
/// against the registry, the process table and the session secret) and get their control channel served again
/// without a new welcome; anything that does not verify is refused; sessions nobody re-attaches are closed.
/// The test process stands in for the live gate (its pid is what SO_PEERCRED reports for our connections).
/// </summary>
public sealed class HubResumeTests : IAsyncLifetime
{
    private const string Host = "gw-test";
    private const int OtherLiveGate = 999_999;
    private static readonly int Me = Environment.ProcessId;
    private readonly TempData _temp = new();
    private readonly SqliteRegistry _registry;
    private readonly List<string> _log = [];
    private readonly List<HubServer> _hubs = [];

    public HubResumeTests()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xUnit 2 disposes a test class through IAsyncLifetime (IAsyncDisposable alone is never called).
    public async Task DisposeAsync()
    {
        foreach (var hub in _hubs)
        {
            await hub.DisposeAsync();
        }

        _registry.Dispose();
        _temp.Dispose();
    }

    private async Task<HubServer> StartHubAsync(TimeSpan? grace = null)
    {
        var hub = new HubServer(_registry, new HubOptions
        {
            DataDirectory = _temp.Dir,
            GatePath = "/opt/eph/eph-gate",
            PollInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatSeconds = 2,
            Host = Host,
            Health = null,
            ResumeGrace = grace ?? TimeSpan.FromSeconds(30),
            // The live gates: this process, and one more pid that stands for another session's gate.
            GateProcessCheck = (_, pid) => pid == Me || pid == OtherLiveGate,
            Log = new DelegateLog(e => { lock (_log) { _log.Add(e.Message); } }),
        });
        _hubs.Add(hub);
        await hub.StartAsync();
        return hub;
    }

    /// <summary>What a hub that was killed leaves: an approved key, its client, an online session with its gate's pid.</summary>
    private (SessionRecord Session, byte[] Secret) SessionLeftOpen(string fingerprint, int gatePid, string host = "web-01")
    {
        _registry.RecordPendingKey(fingerprint, null, new AgentIdentity { Hostname = host });
        _registry.ApproveKey(fingerprint, "tester");
        var client = _registry.AdmitClient(fingerprint, new AgentIdentity { Hostname = host, DisplayName = host });
        var secret = TunnelHandshake.NewSecret();
        var session = _registry.OpenSession(client.Uuid, fingerprint, Host, 40_000, secret, gatePid, 1);
        _registry.MarkSessionOnline(session.Id);
        return (_registry.GetSession(session.Id)!, secret);
    }

    private static GateRequest Resume(SessionRecord session, byte[] secret, string? fingerprint = null, int? gatePid = null, long? sessionId = null)
    {
        var pid = gatePid ?? session.GatePid!.Value;
        var id = sessionId ?? session.Id;
        return new GateRequest
        {
            Op = GateResume.Op,
            Fingerprint = fingerprint ?? session.Fingerprint,
            GatePid = pid,
            SshConnection = "127.0.0.1 50000 127.0.0.1 22",
            Uuid = session.Uuid,
            SessionId = id,
            SessionSecret = Convert.ToBase64String(secret),
        };
    }

    private async Task<NetworkStream> ConnectAsync(HubServer hub, GateRequest first)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(hub.SocketPath));
        var stream = new NetworkStream(socket, ownsSocket: true);
        await Wire.WriteAsync(stream, first, ProtocolJson.Default.GateRequest);
        return stream;
    }

    private static async Task<GateResumeResponse?> AnswerAsync(Stream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await Wire.ReadAsync(stream, ProtocolJson.Default.GateResumeResponse, 64 * 1024, timeout.Token);
    }

    private static async Task<ControlMessage?> ReadAsync(Stream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await Wire.ReadAsync(stream, ProtocolJson.Default.ControlMessage, Framing.MaxFrameBytes, timeout.Token);
    }

    private static async Task Until(Func<bool> condition, string what, int seconds = 10)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"timed out waiting for: {what}");
            }

            await Task.Delay(25);
        }
    }

    private async Task AssertServedAgainAsync(NetworkStream stream, SessionRecord session, byte[] secret)
    {
        var answer = await AnswerAsync(stream);
        Assert.NotNull(answer);
        Assert.True(answer.Ok, answer.Message);

        // The control channel is served again: heartbeats are answered, no welcome and no new secret.
        await Wire.WriteAsync(stream, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = 41 }, ProtocolJson.Default.ControlMessage);
        var reply = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Heartbeat, reply!.Type);
        Assert.Equal(41, reply.Sequence);
        var open = _registry.GetOpenSession(session.Uuid);
        Assert.Equal(session.Id, open!.Id);
        Assert.Equal(secret, open.Secret);
        Assert.True(_registry.GetClient(session.Uuid)!.Online);
    }

    [Fact]
    public async Task AfterARestart_TheGateReattachesItsSession_AndItsControlChannelIsServedAgain_WithoutANewWelcome()
    {
        var (session, secret) = SessionLeftOpen(Keys.A, Me);
        var hub = await StartHubAsync();
        Assert.Equal(session.Id, _registry.GetOpenSession(session.Uuid)?.Id); // kept for its gate

        var stream = await ConnectAsync(hub, Resume(session, secret));
        await AssertServedAgainAsync(stream, session, secret);
        Assert.Equal(1, hub.ActiveSessions);

        // A second gate cannot take the same session while it is attached.
        await using (var again = await ConnectAsync(hub, Resume(session, secret)))
        {
            Assert.False((await AnswerAsync(again))!.Ok);
        }

        // It ends as any session does: the gate leaves, the session is closed.
        await stream.DisposeAsync();
        await Until(() => _registry.GetOpenSession(session.Uuid) is null, "the session closed");
        Assert.Equal("control channel closed", _registry.GetSession(session.Id)!.CloseReason);
    }

    public static TheoryData<string> Forgeries => ["another key", "another gate's pid", "a pid that is not the peer's", "another session id", "another session's secret", "no secret", "garbage for a secret"];

    [Theory]
    [MemberData(nameof(Forgeries))]
    public async Task AResumeThatDoesNotVerify_IsRefused_AndTheSessionStaysForItsGate(string forgery)
    {
        var (session, secret) = SessionLeftOpen(Keys.A, Me);
        var (other, otherSecret) = SessionLeftOpen(Keys.B, OtherLiveGate, host: "web-02");
        var hub = await StartHubAsync();

        var request = forgery switch
        {
            "another key" => Resume(session, secret, fingerprint: Keys.B),
            // The session of another live gate, asked for by this process under its own pid (with that session's secret).
            "another gate's pid" => Resume(other, otherSecret, gatePid: Me),
            // …or under the other gate's pid: SO_PEERCRED says who connected.
            "a pid that is not the peer's" => Resume(other, otherSecret),
            "another session id" => Resume(session, secret, sessionId: other.Id),
            "another session's secret" => Resume(session, otherSecret),
            "no secret" => Resume(session, secret) with { SessionSecret = null },
            "garbage for a secret" => Resume(session, secret) with { SessionSecret = "%%" + new string('A', 10_000) },
            _ => throw new ArgumentOutOfRangeException(nameof(forgery)),
        };

        await using (var stream = await ConnectAsync(hub, request))
        {
            var answer = await AnswerAsync(stream);
            Assert.NotNull(answer);
            Assert.False(answer.Ok);
            Assert.Null(await ReadAsync(stream)); // and closed
        }

        Assert.Equal(0, hub.ActiveSessions);
        lock (_log)
        {
            Assert.Contains(_log, l => l.Contains("refused to re-attach", StringComparison.Ordinal));
        }

        // Nothing was taken or closed: the real gate still gets its session back.
        Assert.NotNull(_registry.GetOpenSession(other.Uuid));
        await using var real = await ConnectAsync(hub, Resume(session, secret));
        await AssertServedAgainAsync(real, session, secret);
    }

    [Fact]
    public async Task AResume_OfAClosedSession_OrOfARevokedKeysSession_IsRefused()
    {
        var (closed, closedSecret) = SessionLeftOpen(Keys.A, Me);
        var (revoked, revokedSecret) = SessionLeftOpen(Keys.B, Me, host: "web-02");
        var hub = await StartHubAsync();
        _registry.CloseSession(closed.Id, "closed by an operator");
        _registry.RevokeKey(Keys.B, "tester");

        foreach (var (session, secret) in new[] { (closed, closedSecret), (revoked, revokedSecret) })
        {
            await using var stream = await ConnectAsync(hub, Resume(session, secret));
            var answer = await AnswerAsync(stream);
            Assert.NotNull(answer);
            Assert.False(answer.Ok);
            Assert.Contains("not open", answer.Message, StringComparison.Ordinal);
        }

        Assert.Equal(0, hub.ActiveSessions);
    }

    [Fact]
    public async Task AResume_WhoseKeyIsNoLongerApproved_IsRefused_AndTheSessionClosed()
    {
        // A key back to pending with its session still open (an older registry, or an edit by hand): never re-attached.
        var (session, secret) = SessionLeftOpen(Keys.A, Me);
        var hub = await StartHubAsync();
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={_temp.Dir.RegistryFile}"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE keys SET status = 'pending' WHERE fingerprint = $f";
            cmd.Parameters.AddWithValue("$f", Keys.A);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }

        await using var stream = await ConnectAsync(hub, Resume(session, secret));
        var answer = await AnswerAsync(stream);
        Assert.False(answer!.Ok);
        Assert.Contains("not approved", answer.Message, StringComparison.Ordinal);
        Assert.Null(_registry.GetOpenSession(session.Uuid));
    }

    [Fact]
    public async Task AtStart_SessionsWhoseGateIsGoneAreClosed_AndTheRestWaitOnlyForTheGrace()
    {
        var (live, _) = SessionLeftOpen(Keys.A, Me);
        var (gone, _) = SessionLeftOpen(Keys.B, 999_998, host: "web-02");
        await StartHubAsync(grace: TimeSpan.FromSeconds(1));

        Assert.Equal("hub restarted", _registry.GetSession(gone.Id)!.CloseReason);
        Assert.Null(_registry.GetSession(live.Id)!.ClosedAt);

        await Until(() => _registry.GetSession(live.Id)!.ClosedAt is not null, "the unclaimed session closed after the grace");
        Assert.Equal("not re-attached after a hub restart", _registry.GetSession(live.Id)!.CloseReason);
    }

    [Fact]
    public async Task AStoppingHub_LeavesItsSessionsOpen_AndTheNextHubGivesThemBackToTheirGates()
    {
        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity { Hostname = "agent-host" });
        _registry.ApproveKey(Keys.A, "tester");
        // The agent listens on the server port the hub handed its key (sshd allows that one only).
        await using var tunnel = new FakeTunnel(_registry.AssignTunnelPort(Keys.A, TunnelPortRange.Default, p => TunnelPortRange.IsFree("127.0.0.1", p)));
        var first = await StartHubAsync();
        var gate = await ConnectAsync(first, new GateRequest { Op = "session", Fingerprint = Keys.A, GatePid = Me });
        await Wire.WriteAsync(gate, new ControlMessage
        {
            Type = ControlTypes.Hello, Protocol = ProtocolInfo.Version, Hostname = "agent-host", Platform = "linux-x64",
            Username = "svc", AgentVersion = "0.1.0", TunnelPort = tunnel.Port,
        }, ProtocolJson.Default.ControlMessage);
        var welcome = await ReadAsync(gate);
        Assert.Equal(ControlTypes.Welcome, welcome!.Type);
        var secret = Convert.FromBase64String(welcome.SessionSecret!);
        tunnel.Secret.SetResult(secret);
        var uuid = welcome.Uuid!;
        await Until(() => _registry.GetClient(uuid)?.Online == true, "client online");
        var session = _registry.GetOpenSession(uuid)!;
        Assert.Equal(session.Id, welcome.SessionId); // the gate learns which session to re-attach

        await first.StopAsync();
        Assert.Null(await ReadAsync(gate)); // the gate's hub connection ends…
        Assert.Equal(session.Id, _registry.GetOpenSession(uuid)?.Id); // …and the session stays open for the next hub
        await gate.DisposeAsync();

        var second = await StartHubAsync();
        await using var back = await ConnectAsync(second, Resume(session, secret));
        await AssertServedAgainAsync(back, session, secret);
    }
}
