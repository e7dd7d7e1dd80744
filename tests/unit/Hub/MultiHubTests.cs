using EtPhoneHome.Core;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// Several hubs on one registry, as on one PostgreSQL: each hub has its own data directory (socket, lock, hub id) and
/// registry instance. A hub starting leaves the others' sessions alone, its health monitor checks only its own, a hub id
/// cannot be used by two running hubs, and a dead hub's sessions are closed by the survivors after the timeout, once.
/// </summary>
public abstract class MultiHubTests(TestEngine engine) : IAsyncLifetime
{
    private static readonly int Me = Environment.ProcessId;
    private readonly TempData _shared = new();
    private readonly List<TempData> _dirs = [];
    private readonly List<SqliteRegistry> _registries = [];
    private readonly List<HubServer> _hubs = [];
    private readonly List<string> _log = [];

    public Task InitializeAsync() => Task.CompletedTask;

    // xUnit 2 disposes a test class through IAsyncLifetime (IAsyncDisposable alone is never called).
    public async Task DisposeAsync()
    {
        foreach (var hub in _hubs)
        {
            await hub.DisposeAsync();
        }

        foreach (var r in _registries)
        {
            r.Dispose();
        }

        foreach (var d in _dirs)
        {
            d.Dispose();
        }

        _shared.Dispose();
    }

    /// <summary>Another instance of the one shared registry (as another hub host opens it), on its own clock when given.</summary>
    private SqliteRegistry Registry(TimeProvider? time = null)
    {
        var r = engine == TestEngine.Sqlite
            ? SqliteRegistry.Open(_shared.Dir, time)
            : SqliteRegistry.Open(_shared.Dir, TestRegistries.Source(engine, _shared.Dir), time);
        _registries.Add(r);
        return r;
    }

    private async Task<HubServer> StartHubAsync(string hubId, string host, IHealthProbe? probe = null, TimeSpan? deadAfter = null, string? relayAddress = null, string? relayHostKey = null)
    {
        var dir = new TempData();
        _dirs.Add(dir);
        Directory.CreateDirectory(dir.Dir.Path);
        var hub = new HubServer(Registry(), new HubOptions
        {
            DataDirectory = dir.Dir,
            GatePath = "/opt/eph/eph-gate",
            PollInterval = TimeSpan.FromMilliseconds(100),
            HeartbeatSeconds = 2,
            Host = host,
            HubId = hubId,
            Health = probe is null ? null : new HealthOptions { Interval = TimeSpan.FromMilliseconds(100), Timeout = TimeSpan.FromSeconds(1), Threshold = 1 },
            HealthProbe = probe,
            ResumeGrace = TimeSpan.FromMilliseconds(300),
            HubHeartbeatInterval = TimeSpan.FromMilliseconds(100),
            DeadHubTimeout = deadAfter ?? TimeSpan.FromSeconds(60),
            // Every gate counts as running (the test process stands in for them): only the hub id decides.
            GateProcessCheck = (_, _) => true,
            Log = new DelegateLog(e => { lock (_log) { _log.Add(e.Message); } }),
            RelayAddress = relayAddress,
            RelayHostKeyFile = relayHostKey ?? "/nonexistent/ssh_host_ed25519_key.pub",
        });
        _hubs.Add(hub);
        await hub.StartAsync();
        return hub;
    }

    /// <summary>An online session of a new client held by <paramref name="hubId"/> on <paramref name="host"/>.</summary>
    private static SessionRecord SessionOf(SqliteRegistry r, string fingerprint, string hubId, string host)
    {
        r.RecordPendingKey(fingerprint, null, new AgentIdentity { Hostname = fingerprint[7..15] });
        r.ApproveKey(fingerprint, "tester");
        var client = r.AdmitClient(fingerprint, new AgentIdentity { Hostname = fingerprint[7..15], DisplayName = fingerprint[7..15] });
        var session = r.OpenSession(client.Uuid, fingerprint, host, 40_000, TunnelHandshake.NewSecret(), Me, 1, hubId);
        r.MarkSessionOnline(session.Id);
        return r.GetSession(session.Id)!;
    }

    private async Task Until(Func<bool> condition, string what, int seconds = 15)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                string[] log;
                lock (_log)
                {
                    log = [.. _log];
                }

                throw new TimeoutException($"timed out waiting for: {what}; hub log: {string.Join(" | ", log)}");
            }

            await Task.Delay(50);
        }
    }

    [Fact]
    public async Task AHubWithARelayAddress_PublishesItsRelayKey_WhichTheOtherHubsAnswerAsARestrictedOperatorGate_WhileItLives()
    {
        var hostKeyDir = new TempData();
        _dirs.Add(hostKeyDir);
        var hostKey = Path.Combine(hostKeyDir.Dir.Path, "host_ed25519_key");
        Directory.CreateDirectory(hostKeyDir.Dir.Path);
        var keygen = System.Diagnostics.Process.Start("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey])!;
        await keygen.WaitForExitAsync();

        var a = await StartHubAsync("hub-a", "gw-a", deadAfter: TimeSpan.FromSeconds(2), relayAddress: "eph@gw-a:2222", relayHostKey: hostKey + ".pub");
        var b = await StartHubAsync("hub-b", "gw-b", deadAfter: TimeSpan.FromSeconds(2));

        var row = Registry().ListHubs().Single(h => h.Id == "hub-a");
        var relay = Assert.IsType<HubRelayEndpoint>(row.Relay);
        Assert.Equal("eph@gw-a:2222", relay.Address);
        Assert.Equal(File.ReadAllText(hostKey + ".pub").Split(' ')[1], relay.HostKey.Split(' ')[1]);
        var keyFile = Path.Combine(_dirs[1].Dir.Path, "relay_key");
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, OperatingSystem.IsWindows() ? UnixFileMode.None : File.GetUnixFileMode(keyFile));
        Assert.Equal(File.ReadAllText(keyFile + ".pub").Split(' ')[1], relay.Key.Split(' ')[1]);
        Assert.Null(Registry().ListHubs().Single(h => h.Id == "hub-b").Relay);

        // Hub b's sshd asks hub b about hub a's relay key: the operator gate, restricted (no forwarding, no pty).
        var (type, blob) = (relay.Key.Split(' ')[0], relay.Key.Split(' ')[1]);
        var line = Assert.Single(b.KeyLines(relay.KeyFingerprint, type, blob));
        Assert.StartsWith($"restrict,command=\"/opt/eph/eph-gate operator --socket {b.SocketPath} --fingerprint {relay.KeyFingerprint}\" ", line, StringComparison.Ordinal);

        // Another key claiming that fingerprint is not hub a's: nothing.
        var other = File.ReadAllText(hostKey + ".pub").Split(' ')[1];
        Assert.Empty(b.KeyLines(relay.KeyFingerprint, "ssh-ed25519", other));

        // Once hub a is taken for dead, its key gets nothing: not the operator gate, and not an unknown key's pending
        // client session either — a hub's credential never lands in the approval queue as a client.
        await a.StopAsync();
        await Until(() => b.KeyLines(relay.KeyFingerprint, type, blob).Length == 0,
            "hub a's relay key refused after it died", seconds: 10);
    }

    [Fact]
    public async Task ARelayHostKeyThatCannotBeRead_StopsTheStart_SayingWhy()
    {
        var failed = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            StartHubAsync("hub-a", "gw-a", relayAddress: "eph@gw-a:2222", relayHostKey: "/nonexistent/host.pub"));
        Assert.Contains("--relay-host-key /nonexistent/host.pub", failed.Message, StringComparison.Ordinal);
        Assert.Contains("pin", failed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AHubStarting_LeavesTheSessionsOfAnotherRunningHubOpen()
    {
        var a = await StartHubAsync("hub-a", "gw");
        var registry = Registry();
        var held = SessionOf(registry, Keys.A, a.HubId, "gw");
        registry.BeatHub(a.HubId, "gw", Me);

        // Same host name (two hubs on one machine): before hub ids, the second start took these for its own leftovers.
        await StartHubAsync("hub-b", "gw");
        await Task.Delay(800); // past hub-b's resume grace

        Assert.Null(registry.GetSession(held.Id)!.ClosedAt);
        Assert.DoesNotContain(registry.ListEvents(), e => e.Type == "client.disconnected");
    }

    [Fact]
    public async Task AHubStarting_StillClosesItsOwnLeftoversNotReattached()
    {
        var registry = Registry();
        registry.BeatHub("hub-a", "gw", 999_999);
        var own = SessionOf(registry, Keys.A, "hub-a", "gw");
        var other = SessionOf(registry, Keys.B, "hub-b", "gw");

        await StartHubAsync("hub-a", "gw");
        await Until(() => registry.GetSession(own.Id)!.ClosedAt is not null, "hub-a closes its own session left open");

        Assert.Contains("re-attached", registry.GetSession(own.Id)!.CloseReason);
        Assert.Null(registry.GetSession(other.Id)!.ClosedAt);
    }

    [Fact]
    public async Task TheHealthMonitor_ChecksOnlyItsHubsSessions()
    {
        var registry = Registry();
        var probe = new RecordingProbe();
        var b = await StartHubAsync("hub-b", "gw", probe);
        var ofA = SessionOf(registry, Keys.A, "hub-a", "gw");
        registry.BeatHub("hub-a", "gw", Me);
        var ofB = SessionOf(registry, Keys.B, b.HubId, "gw");

        await Until(() => registry.GetSession(ofB.Id)!.ClosedAt is not null, "hub-b closes its own failing session: ");
        await Task.Delay(400);

        Assert.DoesNotContain(ofA.Id, probe.Checked);
        // The probe fails every check and the threshold is 1: a check of hub-a's session would have closed it.
        Assert.Null(registry.GetSession(ofA.Id)!.ClosedAt);
        Assert.Contains(ofB.Id, probe.Checked);
    }

    [Fact]
    public async Task ADeadHubsSessions_AreClosedByTheSurvivors_OnceEach()
    {
        var past = new ManualTime(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(10));
        var dead = Registry(past);
        dead.BeatHub("hub-dead", "gw-dead", 4242);
        var sessions = new[] { Keys.A, Keys.B, Keys.C }.Select(k => SessionOf(dead, k, "hub-dead", "gw-dead")).ToList();

        await StartHubAsync("hub-b", "gw-b", deadAfter: TimeSpan.FromSeconds(2));
        await StartHubAsync("hub-c", "gw-c", deadAfter: TimeSpan.FromSeconds(2));
        var registry = Registry();
        await Until(() => sessions.All(s => registry.GetSession(s.Id)!.ClosedAt is not null), "the dead hub's sessions are closed");
        await Task.Delay(500); // more rounds of both survivors

        foreach (var s in sessions)
        {
            Assert.Contains("hub hub-dead stopped", registry.GetSession(s.Id)!.CloseReason);
            Assert.False(registry.GetClient(s.Uuid)!.Online);
        }

        var disconnected = registry.ListEvents().Where(e => e.Type == "client.disconnected").Select(e => e.Uuid).Order().ToList();
        Assert.Equal(sessions.Select(s => s.Uuid).Order(), disconnected);
        Assert.Equal(["hub-b", "hub-c", "hub-dead"], registry.ListHubs().Select(h => h.Id).Order());
    }

    [Fact]
    public async Task AHubIdHeldByARunningHubOnAnotherHost_IsRefused_AndTheRegistryIsUntouched()
    {
        var registry = Registry();
        registry.BeatHub("hub-a", "gw-elsewhere", 4242);
        var session = SessionOf(registry, Keys.A, "hub-a", "gw-elsewhere");

        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => StartHubAsync("hub-a", "gw-here"));

        Assert.Contains("hub id hub-a is in use", ex.Message);
        Assert.Null(registry.GetSession(session.Id)!.ClosedAt);
        Assert.Equal("gw-elsewhere", registry.ListHubs().Single().Host);
    }

    [Fact]
    public async Task AHubRestartedOnItsHost_StartsWhileThePreviousProcessMayStillRun_AndAdoptsItsSessions()
    {
        // The previous hub released the data directory's lock and is still exiting (pid 1 stands for a live process).
        var registry = Registry();
        registry.BeatHub("hub-a", "gw", 1);
        var own = SessionOf(registry, Keys.A, "hub-a", "gw");

        var hub = await StartHubAsync("hub-a", "gw");

        Assert.Equal("hub-a", hub.HubId);
        Assert.Equal(Me, registry.ListHubs().Single().Pid);
        // Kept for its gate to re-attach (none does here, so it is closed after the grace), not closed at the start.
        await Until(() => registry.GetSession(own.Id)!.ClosedAt is not null, "the grace ends");
        Assert.Contains("re-attached", registry.GetSession(own.Id)!.CloseReason);
    }

    [Fact]
    public async Task AHubWithoutAGivenId_WritesOneToItsDataDirectory_AndKeepsIt()
    {
        var dir = new TempData();
        _dirs.Add(dir);
        Directory.CreateDirectory(dir.Dir.Path);
        var first = HubIdentity.Resolve(dir.Dir, null);
        var again = HubIdentity.Resolve(dir.Dir, null);
        var other = new TempData();
        _dirs.Add(other);
        Directory.CreateDirectory(other.Dir.Path);

        Assert.Equal(first, again);
        Assert.NotEqual(first, HubIdentity.Resolve(other.Dir, null));
        Assert.Equal("given-1", HubIdentity.Resolve(dir.Dir, "given-1"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(dir.Dir.HubIdFile));
        }

        Assert.Throws<ArgumentException>(() => HubIdentity.Resolve(dir.Dir, "bad id"));

        File.WriteAllText(dir.Dir.HubIdFile, "\u001b[31mred\n");
        var bad = Assert.Throws<InvalidOperationException>(() => HubIdentity.Resolve(dir.Dir, null));
        Assert.DoesNotContain("\u001b", bad.Message);
        await Task.CompletedTask;
    }

    private sealed class RecordingProbe : IHealthProbe
    {
        private readonly System.Collections.Concurrent.ConcurrentDictionary<long, bool> _checked = new();

        public ICollection<long> Checked => _checked.Keys;

        public Task CheckAsync(SessionRecord session, TimeSpan timeout, CancellationToken ct)
        {
            _checked[session.Id] = true;
            throw new IOException("no answer (test)");
        }
    }
}

public sealed class MultiHubTestsOnSqlite() : MultiHubTests(TestEngine.Sqlite);

public sealed class MultiHubTestsOnPostgres() : MultiHubTests(TestEngine.Postgres);
