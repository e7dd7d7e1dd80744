using EtPhoneHome.Core.Logging;
using System.Net;
using System.Net.Sockets;
using EtPhoneHome.Hub;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>A fake agent tunnel: answers the handshake with the welcome's secret, then heartbeat RPCs.</summary>
internal sealed class FakeTunnel : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    /// <param name="port">The port to listen on (the one the hub assigned to the key); 0 for any.</param>
    public FakeTunnel(int port = 0)
    {
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        _loop = Task.Run(AcceptLoopAsync);
    }

    public TaskCompletionSource<byte[]> Secret { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int HeartbeatsAnswered;

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient tcp;
            try
            {
                tcp = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            _ = Task.Run(async () =>
            {
                using (tcp)
                {
                    try
                    {
                        var stream = tcp.GetStream();
                        var secret = await Secret.Task.WaitAsync(_stop.Token);
                        await TunnelHandshake.AcceptAsync(stream, secret, null, "0.1.0", _stop.Token);
                        while (await Wire.ReadAsync(stream, ProtocolJson.Default.RpcRequest, Framing.MaxFrameBytes, _stop.Token) is { } request)
                        {
                            var result = new HeartbeatResult { Uuid = "u", AgentVersion = "0.1.0", UptimeS = 1, Time = DateTimeOffset.UtcNow };
                            await Wire.WriteAsync(stream, new RpcResponse { Id = request.Id, Result = Wire.ToElement(result, ProtocolJson.Default.HeartbeatResult) },
                                ProtocolJson.Default.RpcResponse, _stop.Token);
                            Interlocked.Increment(ref HeartbeatsAnswered);
                        }
                    }
                    catch (Exception)
                    {
                        // The test ended or the hub hung up.
                    }
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        await _loop;
        _stop.Dispose();
    }
}

public sealed class HubServerTests : IAsyncLifetime
{
    private const string PublicKeyBlob = "AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyBlobForTestsOnly0123456789abcdef";
    private readonly TempData _temp = new();
    private SqliteRegistry _registry = null!;
    private HubServer _hub = null!;
    private readonly List<string> _log = [];

    public async Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
        _hub = new HubServer(_registry, new HubOptions
        {
            DataDirectory = _temp.Dir,
            GatePath = "/opt/eph/eph-gate",
            PollInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatSeconds = 2,
            Host = "gw-test",
            Log = new DelegateLog(e => { lock (_log) { _log.Add(e.Message); } }),
        });
        await _hub.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _registry.Dispose();
        _temp.Dispose();
    }

    private async Task<NetworkStream> ConnectGateAsync(GateRequest request)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_hub.SocketPath));
        var stream = new NetworkStream(socket, ownsSocket: true);
        await Wire.WriteAsync(stream, request, ProtocolJson.Default.GateRequest);
        return stream;
    }

    private async Task<string[]> AskKeysAsync(string fingerprint)
    {
        await using var stream = await ConnectGateAsync(new GateRequest { Op = "keys", Fingerprint = fingerprint, User = "eph", KeyType = "ssh-ed25519", Key = PublicKeyBlob });
        var response = await Wire.ReadAsync(stream, ProtocolJson.Default.GateKeysResponse);
        return response!.Lines;
    }

    private static ControlMessage Hello(int? tunnelPort, string host = "agent-host", string? uuid = null, int protocol = ProtocolInfo.Version) => new()
    {
        Type = ControlTypes.Hello,
        Protocol = protocol,
        Uuid = uuid,
        Hostname = host,
        Platform = "linux-x64",
        Username = "svc",
        AgentVersion = "0.1.0",
        Capabilities = ["run_command"],
        Tags = ["lab"],
        TunnelPort = tunnelPort,
    };

    private async Task<NetworkStream> OpenSessionAsync(string fingerprint, ControlMessage hello)
    {
        var stream = await ConnectGateAsync(new GateRequest { Op = "session", Fingerprint = fingerprint, GatePid = 4242, User = "eph" });
        await Wire.WriteAsync(stream, hello, ProtocolJson.Default.ControlMessage);
        return stream;
    }

    private static async Task<ControlMessage?> ReadAsync(Stream stream, int seconds = 10)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
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

    /// <summary>Approves <paramref name="fingerprint"/>, lets sshd ask about it (which assigns its port) and listens on that port.</summary>
    private async Task<FakeTunnel> ApproveWithTunnelAsync(string fingerprint, string hostname = "agent-host")
    {
        _registry.RecordPendingKey(fingerprint, null, new AgentIdentity { Hostname = hostname });
        _registry.ApproveKey(fingerprint, "tester");
        await AskKeysAsync(fingerprint);
        return new FakeTunnel(_registry.GetKey(fingerprint)!.TunnelPort!.Value);
    }

    private async Task<(NetworkStream Stream, string Uuid, FakeTunnel Tunnel)> BringOnlineAsync()
    {
        var tunnel = await ApproveWithTunnelAsync(Keys.A);
        var stream = await OpenSessionAsync(Keys.A, Hello(tunnel.Port));
        var welcome = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Welcome, welcome!.Type);
        var secret = Convert.FromBase64String(welcome.SessionSecret!);
        Assert.Equal(32, secret.Length);
        tunnel.Secret.SetResult(secret);
        var uuid = welcome.Uuid!;
        await Until(() => _registry.GetClient(uuid)?.Online == true, "client online");
        return (stream, uuid, tunnel);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Start_CreatesGroupAccessibleSocket()
    {
        Assert.True(File.Exists(_hub.SocketPath));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(_hub.SocketPath) & (UnixFileMode)0x1FF);
    }

    [Fact]
    public async Task Keys_AnswerDependsOnKeyStatus()
    {
        var unknown = Assert.Single(await AskKeysAsync(Keys.A));
        Assert.StartsWith("restrict,command=\"/opt/eph/eph-gate session --socket " + _hub.SocketPath + " --fingerprint " + Keys.A + "\" ssh-ed25519 ", unknown);
        Assert.DoesNotContain("port-forwarding", unknown);
        Assert.Null(_registry.GetKey(Keys.A)); // an offered key is not persisted

        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity());
        Assert.DoesNotContain("port-forwarding", Assert.Single(await AskKeysAsync(Keys.A)));

        _registry.ApproveKey(Keys.A, "tester");
        var approved = Assert.Single(await AskKeysAsync(Keys.A));
        // Exactly one port, the key's own, from the hub's range: never a wildcard a client could use to take any port.
        var port = _registry.GetKey(Keys.A)!.TunnelPort!.Value;
        Assert.True(TunnelPortRange.Default.Contains(port));
        Assert.StartsWith($"restrict,port-forwarding,permitlisten=\"127.0.0.1:{port}\",command=\"/opt/eph/eph-gate session", approved);
        Assert.DoesNotContain("*", approved);
        Assert.EndsWith("ssh-ed25519 " + PublicKeyBlob, approved);
        Assert.Equal(approved, Assert.Single(await AskKeysAsync(Keys.A))); // stable: the port belongs to the key

        _registry.RevokeKey(Keys.A, "tester");
        Assert.Empty(await AskKeysAsync(Keys.A));
        Assert.Null(_registry.GetKey(Keys.A)!.TunnelPort); // a revoked key gives its port back
    }

    [Fact]
    public async Task ApprovedKeys_EachGetTheirOwnPort()
    {
        var ports = new HashSet<int>();
        foreach (var key in new[] { Keys.A, Keys.B, Keys.C })
        {
            _registry.RecordPendingKey(key, null, new AgentIdentity());
            _registry.ApproveKey(key, "tester");
            var line = Assert.Single(await AskKeysAsync(key));
            var port = _registry.GetKey(key)!.TunnelPort!.Value;
            Assert.Contains($"permitlisten=\"127.0.0.1:{port}\"", line);
            Assert.True(ports.Add(port), $"port {port} was handed out twice");
        }
    }

    [Fact]
    public async Task HelloWithAnotherPortThanTheKeys_IsNotAdmitted_AndIsToldItsPort()
    {
        // The hub connects only to the port sshd let this key open, never to one the hello names.
        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity());
        _registry.ApproveKey(Keys.A, "tester");
        await AskKeysAsync(Keys.A);
        var assigned = _registry.GetKey(Keys.A)!.TunnelPort!.Value;
        await using var elsewhere = new FakeTunnel();
        await using var stream = await OpenSessionAsync(Keys.A, Hello(elsewhere.Port) with { RequestedTunnelPort = elsewhere.Port });
        var reply = (await ReadAsync(stream))!;
        Assert.Equal(ControlTypes.Reconnect, reply.Type);
        Assert.Equal(assigned, reply.TunnelPort);
        Assert.Empty(_registry.ListOpenSessions());
        Assert.Equal(0, elsewhere.HeartbeatsAnswered);
    }

    [Fact]
    public async Task AgentRefusedItsOwnPort_MovesToAFreeOne()
    {
        // Something on the server holds the key's port (a leftover session, another program): sshd could not open it.
        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity());
        _registry.ApproveKey(Keys.A, "tester");
        await AskKeysAsync(Keys.A);
        var taken = _registry.GetKey(Keys.A)!.TunnelPort!.Value;
        await using var stream = await OpenSessionAsync(Keys.A, Hello(null) with { RequestedTunnelPort = taken });
        var reply = (await ReadAsync(stream))!;
        Assert.Equal(ControlTypes.Reconnect, reply.Type);
        Assert.NotNull(reply.TunnelPort);
        Assert.NotEqual(taken, reply.TunnelPort);
        Assert.Equal(reply.TunnelPort, _registry.GetKey(Keys.A)!.TunnelPort);
        Assert.Contains($"permitlisten=\"127.0.0.1:{reply.TunnelPort}\"", Assert.Single(await AskKeysAsync(Keys.A)));
    }

    [Fact]
    public async Task Keys_WithUnsafeCharacters_AreRefused()
    {
        await using var stream = await ConnectGateAsync(new GateRequest { Op = "keys", Fingerprint = Keys.A, KeyType = "ssh-ed25519\"", Key = PublicKeyBlob });
        Assert.Empty((await Wire.ReadAsync(stream, ProtocolJson.Default.GateKeysResponse))!.Lines);
    }

    [Fact]
    public async Task UnknownKey_BecomesPending_AndApprovalSendsReconnect()
    {
        await AskKeysAsync(Keys.B); // sshd offers the key first: the hub remembers the public key
        await using var stream = await OpenSessionAsync(Keys.B, Hello(null, host: "laptop-3"));
        var reply = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Pending, reply!.Type);
        var key = _registry.GetKey(Keys.B)!;
        Assert.Equal(KeyStatus.Pending, key.Status);
        Assert.Equal("laptop-3", key.ClaimedHostname);
        Assert.Equal("ssh-ed25519 " + PublicKeyBlob, key.PublicKey);

        _registry.ApproveKey(Keys.B, "tester");
        var next = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Reconnect, next!.Type);
        Assert.NotNull(next.TunnelPort); // the port to ask sshd for, so the next connection comes online at once
        Assert.Equal(_registry.GetKey(Keys.B)!.TunnelPort, next.TunnelPort);
        Assert.Null(await ReadAsync(stream)); // the hub closes the channel
    }

    [Fact]
    public async Task OneUnapprovedKey_HoldsAtMostTwoSessions_TheNextIsRefusedAndClosed_AndAFreedSlotIsUsableAgain()
    {
        // The report: one unapproved key held 60 sessions, each an sshd process and a gate on the server.
        var streams = new List<NetworkStream>();
        try
        {
            var replies = new List<string?>();
            for (var i = 0; i < 6; i++)
            {
                var stream = await OpenSessionAsync(Keys.B, Hello(null, host: $"flood-{i}"));
                streams.Add(stream);
                replies.Add((await ReadAsync(stream))?.Type);
            }

            Assert.Equal([ControlTypes.Pending, ControlTypes.Pending, ControlTypes.Refused, ControlTypes.Refused, ControlTypes.Refused, ControlTypes.Refused], replies);
            for (var i = 2; i < streams.Count; i++)
            {
                Assert.Null(await ReadAsync(streams[i])); // closed: the gate exits, and with it the sshd session
            }

            Assert.Equal(2, _hub.SessionsOf(Keys.B));
            Assert.Contains(_log.ToArray(), l => l.Contains("already holds 2 session(s)", StringComparison.Ordinal));

            await streams[0].DisposeAsync();
            await Until(() => _hub.SessionsOf(Keys.B) == 1, "the closed session's slot is freed");
            var next = await OpenSessionAsync(Keys.B, Hello(null));
            streams.Add(next);
            Assert.Equal(ControlTypes.Pending, (await ReadAsync(next))!.Type);

            // Another key is not affected by B's sessions.
            var other = await OpenSessionAsync(Keys.C, Hello(null));
            streams.Add(other);
            Assert.Equal(ControlTypes.Pending, (await ReadAsync(other))!.Type);
        }
        finally
        {
            foreach (var stream in streams)
            {
                await stream.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task SessionsThatNeverSayHello_CountAgainstTheKey()
    {
        await using var silent1 = await ConnectGateAsync(new GateRequest { Op = "session", Fingerprint = Keys.B, GatePid = 4242, User = "eph" });
        await using var silent2 = await ConnectGateAsync(new GateRequest { Op = "session", Fingerprint = Keys.B, GatePid = 4243, User = "eph" });
        await Until(() => _hub.SessionsOf(Keys.B) == 2, "both silent sessions hold a slot");

        await using var third = await OpenSessionAsync(Keys.B, Hello(null));

        Assert.Equal(ControlTypes.Refused, (await ReadAsync(third))!.Type);
        Assert.Null(await ReadAsync(third));
        Assert.Null(_registry.GetKey(Keys.B));
    }

    [Fact]
    public async Task RefusedExtraSession_SaysWhy_AndRecordsNothing()
    {
        await using var first = await OpenSessionAsync(Keys.B, Hello(null));
        await using var second = await OpenSessionAsync(Keys.B, Hello(null));
        Assert.Equal(ControlTypes.Pending, (await ReadAsync(first))!.Type);
        Assert.Equal(ControlTypes.Pending, (await ReadAsync(second))!.Type);
        var seen = _registry.GetKey(Keys.B)!.LastSeen;

        await using var third = await OpenSessionAsync(Keys.B, Hello(null, host: "changed-host"));
        var refused = (await ReadAsync(third))!;

        Assert.Equal(ControlTypes.Refused, refused.Type);
        Assert.Contains("already holds 2 open session(s)", refused.Message);
        Assert.Equal(60, refused.RetryAfterSeconds);
        Assert.Equal("agent-host", _registry.GetKey(Keys.B)!.ClaimedHostname);
        Assert.Equal(seen, _registry.GetKey(Keys.B)!.LastSeen);
    }

    [Fact]
    public async Task AWaitingAgentsKey_PurgedWhileItWaits_IsRecordedAgain()
    {
        await using var stream = await OpenSessionAsync(Keys.B, Hello(null, host: "laptop-3"));
        Assert.Equal(ControlTypes.Pending, (await ReadAsync(stream))!.Type);

        // "Unseen for zero time" means seen before now: let the clock move past the key's last sighting (same millisecond
        // otherwise, and the purge rightly spares it).
        var seenAt = _registry.GetKey(Keys.B)!.LastSeen;
        await Until(() => DateTimeOffset.UtcNow > seenAt.AddMilliseconds(2), "the clock past the key's last sighting");
        var purged = EtPhoneHome.Core.Operations.KeyLimits.PurgePendingKeys(_registry, TimeSpan.Zero, new("alice", "cli"));
        Assert.Equal(Keys.B, Assert.Single(purged).Fingerprint);

        await Until(() => _registry.GetKey(Keys.B) is not null, "the waiting agent's key is pending again");
        Assert.Equal("laptop-3", _registry.GetKey(Keys.B)!.ClaimedHostname);
        _registry.ApproveKey(Keys.B, "tester");
        Assert.Equal(ControlTypes.Reconnect, (await ReadAsync(stream))!.Type);
    }

    [Fact]
    public async Task TheHub_PurgesPendingKeysUnseenForLongerThanTheMaxAge_AndSparesKeysWhoseAgentStillWaits()
    {
        using var temp = new TempData();
        using var registry = SqliteRegistry.Open(temp.Dir);
        registry.RecordPendingKey(Keys.A, null, new AgentIdentity { Hostname = "gone-for-good" });
        registry.RecordPendingKey(Keys.C, null, new AgentIdentity { Hostname = "approved" });
        registry.ApproveKey(Keys.C, "tester");
        await using var hub = new HubServer(registry, new HubOptions
        {
            DataDirectory = temp.Dir,
            GatePath = "/opt/eph/eph-gate",
            PollInterval = TimeSpan.FromMilliseconds(50),
            PendingKeyMaxAge = TimeSpan.FromMilliseconds(600),
            PendingKeyExpiryInterval = TimeSpan.FromMilliseconds(100),
            PendingKeyRefreshInterval = TimeSpan.FromMilliseconds(100),
            Log = NullLog.Instance,
        });
        await hub.StartAsync();
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(hub.SocketPath));
        await using var waiting = new NetworkStream(socket, ownsSocket: true);
        await Wire.WriteAsync(waiting, new GateRequest { Op = "session", Fingerprint = Keys.B, GatePid = 4242, User = "eph" }, ProtocolJson.Default.GateRequest);
        await Wire.WriteAsync(waiting, Hello(null, host: "still-waiting"), ProtocolJson.Default.ControlMessage);
        Assert.Equal(ControlTypes.Pending, (await ReadAsync(waiting))!.Type);

        await Until(() => registry.GetKey(Keys.A) is null, "the unseen pending key is purged");
        await Task.Delay(TimeSpan.FromMilliseconds(900)); // longer than the max age: B's agent keeps its key seen
        Assert.Equal(KeyStatus.Pending, registry.GetKey(Keys.B)?.Status);
        Assert.Equal(KeyStatus.Approved, registry.GetKey(Keys.C)?.Status);
        var entry = registry.QueryHistory(new HistoryQuery { Operations = ["purge_keys"] }).Last();
        Assert.Equal(("eph-hub", "hub"), (entry.Actor, entry.Surface));
        Assert.Contains(Keys.A, entry.Detail);
    }

    [Fact]
    public async Task PendingKey_RevokedWhileWaiting_IsRefused()
    {
        await using var stream = await OpenSessionAsync(Keys.B, Hello(null));
        Assert.Equal(ControlTypes.Pending, (await ReadAsync(stream))!.Type);
        _registry.RevokeKey(Keys.B, "tester");
        Assert.Equal(ControlTypes.Refused, (await ReadAsync(stream))!.Type);
    }

    [Fact]
    public async Task ASecondHubOnTheSameData_IsRefused_AndLeavesTheRunningHubsSocketInPlace()
    {
        // A refused second `eph-server run` used to unlink hub.sock on its way out, locking every reconnecting client out.
        await using (var second = new HubServer(_registry, new HubOptions { DataDirectory = _temp.Dir, GatePath = "/opt/eph/eph-gate", Log = NullLog.Instance }))
        {
            var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => second.StartAsync());
            Assert.Contains("another hub", ex.Message);
        }

        Assert.True(File.Exists(_hub.SocketPath));
        Assert.NotEmpty(await AskKeysAsync(Keys.A));
    }

    [Fact]
    public async Task AStoppedHub_RemovesItsSocket_AndANewHubStartsOnTheSameData()
    {
        await _hub.StopAsync();
        Assert.False(File.Exists(_hub.SocketPath));

        await using var next = new HubServer(_registry, new HubOptions { DataDirectory = _temp.Dir, GatePath = "/opt/eph/eph-gate", Log = NullLog.Instance });
        await next.StartAsync();
        Assert.True(File.Exists(next.SocketPath));
    }

    [Fact]
    public async Task KeyClaimingPinnedUuid_GetsKeyMismatch_AndTheClientIsUntouched()
    {
        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity());
        _registry.ApproveKey(Keys.A, "tester");
        var client = _registry.AdmitClient(Keys.A, new AgentIdentity { Hostname = "h" });
        await using var stream = await OpenSessionAsync(Keys.B, Hello(null, uuid: client.Uuid));
        Assert.Equal(ControlTypes.KeyMismatch, (await ReadAsync(stream))!.Type);
        var after = _registry.GetClient(client.Uuid)!;
        Assert.False(after.KeyMismatch);
        Assert.Equal(Keys.A, after.KeyFingerprint);
        Assert.True(_registry.GetKey(Keys.B)!.IsMismatch);
    }

    [Fact]
    public async Task WrongProtocolVersion_IsRefusedWithReason()
    {
        await using var stream = await OpenSessionAsync(Keys.A, Hello(null, protocol: 99));
        var reply = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Refused, reply!.Type);
        Assert.Contains("protocol version", reply.Message);
        Assert.Null(_registry.GetKey(Keys.A));
    }

    [Fact]
    public async Task ApprovedKeyWithoutTunnel_IsToldToReconnect_WithItsPort()
    {
        _registry.RecordPendingKey(Keys.A, null, new AgentIdentity());
        _registry.ApproveKey(Keys.A, "tester");
        await using var stream = await OpenSessionAsync(Keys.A, Hello(null));
        var reply = (await ReadAsync(stream))!;
        Assert.Equal(ControlTypes.Reconnect, reply.Type);
        Assert.NotNull(reply.TunnelPort);
        Assert.Equal(_registry.GetKey(Keys.A)!.TunnelPort, reply.TunnelPort);
    }

    [Fact]
    public async Task TheOnlineLogLine_SaysWhereTheAdmissionsTimeWent()
    {
        var (stream, uuid, tunnel) = await BringOnlineAsync();
        await using var _ = tunnel;
        await using var __ = stream;
        string line;
        lock (_log)
        {
            line = _log.Single(l => l.Contains($"client {uuid}", StringComparison.Ordinal) && l.Contains("online on port", StringComparison.Ordinal));
        }

        // Every step is named with a whole number of milliseconds, and the parts are not more than the whole.
        var match = System.Text.RegularExpressions.Regex.Match(line,
            @"\(admitted in (\d+) ms: hello (\d+), queued (\d+), registry (\d+), tunnel check (\d+), online (\d+)\)$");
        Assert.True(match.Success, line);
        var parts = Enumerable.Range(2, 5).Sum(i => int.Parse(match.Groups[i].Value, System.Globalization.CultureInfo.InvariantCulture));
        Assert.InRange(parts, 0, int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) + 5);
    }

    [Fact]
    public async Task ApprovedKey_GetsWelcome_GoesOnline_AndEofGoesOffline()
    {
        var (stream, uuid, tunnel) = await BringOnlineAsync();
        await using var _ = tunnel;
        var client = _registry.GetClient(uuid)!;
        Assert.Equal(tunnel.Port, client.TunnelPort);
        Assert.Equal("agent-host", client.DisplayName);
        var session = _registry.GetOpenSession(uuid)!;
        Assert.Equal(4242, session.GatePid);
        Assert.Equal("gw-test", session.Host);
        Assert.True(tunnel.HeartbeatsAnswered >= 1);
        Assert.Equal(1, _hub.ActiveSessions);

        await Wire.WriteAsync(stream, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = 7 }, ProtocolJson.Default.ControlMessage);
        var beat = await ReadAsync(stream);
        Assert.Equal(ControlTypes.Heartbeat, beat!.Type);
        Assert.Equal(7, beat.Sequence);

        await stream.DisposeAsync();
        await Until(() => _registry.GetOpenSession(uuid) is null, "session closed after EOF");
        Assert.False(_registry.GetClient(uuid)!.Online);
        Assert.Equal("control channel closed", _registry.GetSession(session.Id)!.CloseReason);
        Assert.Contains(_registry.ListEvents(), e => e.Type == "client.connected" && e.Uuid == uuid);
        Assert.Contains(_registry.ListEvents(), e => e.Type == "client.disconnected" && e.Uuid == uuid);
        lock (_log)
        {
            Assert.DoesNotContain(_log, l => l.Contains(Convert.ToBase64String(session.Secret), StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task RevokedWhileOnline_ClosesTheChannel()
    {
        var (stream, uuid, tunnel) = await BringOnlineAsync();
        await using var _ = tunnel;
        await using var __ = stream;
        _registry.RevokeKey(uuid, "tester");
        Assert.Null(await ReadAsync(stream)); // the hub hangs up
        await Until(() => _hub.ActiveSessions == 0, "hub released the session");
        Assert.False(_registry.GetClient(uuid)!.Online);
    }

    [Fact]
    public async Task MissedHeartbeats_CloseTheSession()
    {
        var (stream, uuid, tunnel) = await BringOnlineAsync();
        await using var _ = tunnel;
        await using var __ = stream;
        var id = _registry.GetOpenSession(uuid)!.Id;
        Assert.Null(await ReadAsync(stream, seconds: 15)); // 3 × 2 s without a frame
        Assert.Equal("missed heartbeats", _registry.GetSession(id)!.CloseReason);
    }

    [Fact]
    public async Task FailedTunnelCheck_ClosesSessionWithReason()
    {
        await using var tunnel = await ApproveWithTunnelAsync(Keys.A);
        await using var stream = await OpenSessionAsync(Keys.A, Hello(tunnel.Port));
        var welcome = await ReadAsync(stream);
        tunnel.Secret.SetResult(new byte[32]); // the wrong secret
        Assert.Null(await ReadAsync(stream));
        var client = _registry.GetClient(welcome!.Uuid!)!;
        Assert.False(client.Online);
        Assert.Null(_registry.GetOpenSession(client.Uuid));
    }
}
