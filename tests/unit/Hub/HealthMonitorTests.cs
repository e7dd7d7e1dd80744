using EtPhoneHome.Core.Logging;
using EtPhoneHome.Hub;
using System.Text.Json;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

/// <summary>A probe whose answer per client the test decides.</summary>
internal sealed class ScriptedProbe : IHealthProbe
{
    public HashSet<string> Failing { get; } = new(StringComparer.OrdinalIgnoreCase);
    public HashSet<string> Hanging { get; } = new(StringComparer.OrdinalIgnoreCase);
    public HashSet<string> Busy { get; } = new(StringComparer.OrdinalIgnoreCase);
    public List<long> Checked { get; } = [];

    public async Task CheckAsync(SessionRecord session, TimeSpan timeout, CancellationToken ct)
    {
        lock (Checked)
        {
            Checked.Add(session.Id);
        }

        if (Hanging.Contains(session.Uuid))
        {
            await Task.Delay(Timeout.Infinite, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5), CancellationToken.None);
        }

        if (Failing.Contains(session.Uuid))
        {
            throw new ProtocolException(ProtocolError.Truncated, "tunnel on port 1 closed during the handshake");
        }

        if (Busy.Contains(session.Uuid))
        {
            throw new EtPhoneHome.Core.Tunnel.RpcException(RpcErrorCodes.Busy, "the agent is serving 128 connections, its limit; retry shortly");
        }
    }
}

/// <summary>A registry with online clients, for the monitor and the fleet view.</summary>
internal sealed class HealthRegistry : IDisposable
{
    private readonly TempData _data = new();
    private int _next;

    public HealthRegistry()
    {
        Registry = SqliteRegistry.Open(_data.Dir, Time);
    }

    public ManualTime Time { get; } = new(DateTimeOffset.UtcNow);

    public SqliteRegistry Registry { get; }

    /// <summary>Approves a new key, admits its client and opens an online session.</summary>
    public (ClientRecord Client, SessionRecord Session) AddOnline(string name)
    {
        var fingerprint = "SHA256:" + name.PadRight(43, 'x');
        Registry.RecordPendingKey(fingerprint, null, Keys.Identity(host: name, name: name));
        Registry.ApproveKey(fingerprint, "test");
        var client = Registry.AdmitClient(fingerprint, Keys.Identity(host: name, name: name));
        var session = Registry.OpenSession(client.Uuid, fingerprint, "localhost", 40000 + _next++, new byte[32], null, null);
        Registry.MarkSessionOnline(session.Id);
        return (Registry.GetClient(client.Uuid)!, Registry.GetSession(session.Id)!);
    }

    public IReadOnlyList<RegistryEvent> Events(string type) => Registry.ListEvents().Where(e => e.Type == type).ToList();

    public void Dispose()
    {
        Registry.Dispose();
        _data.Dispose();
    }
}

public sealed class HealthMonitorTests : IDisposable
{
    private readonly HealthRegistry _fleet = new();
    private readonly ScriptedProbe _probe = new();
    private readonly List<string> _log = [];

    public void Dispose() => _fleet.Dispose();

    private HealthMonitor Monitor(int threshold = 3, TimeSpan? timeout = null) =>
        new(_fleet.Registry, _fleet.Registry, _probe, new HealthOptions { Threshold = threshold, Timeout = timeout ?? TimeSpan.FromSeconds(10) }, _fleet.Time, new DelegateLog(e => _log.Add(e.Message)));

    [Fact]
    public async Task FailingClient_BecomesUnhealthyAtTheThreshold_EventOnce_SessionClosed()
    {
        var (web, webSession) = _fleet.AddOnline("web-01");
        var (db, _) = _fleet.AddOnline("db-01");
        _probe.Failing.Add(web.Uuid);
        var monitor = Monitor(threshold: 3);

        for (var round = 1; round <= 2; round++)
        {
            var sweep = await monitor.CheckOnceAsync(CancellationToken.None);
            Assert.Equal((2, 1), (sweep.Checked, sweep.Healthy));
            Assert.Equal(round, Assert.Single(sweep.Failures).ConsecutiveFailures);
            Assert.Empty(sweep.MarkedUnhealthy);
            Assert.True(_fleet.Registry.GetClient(web.Uuid)!.Online);
        }

        var health = Assert.Single(_fleet.Registry.ListHealth(), h => h.Uuid == web.Uuid);
        Assert.Equal(2, health.ConsecutiveFailures);
        Assert.False(health.IsUnhealthy);
        Assert.Contains("closed during the handshake", health.LastError, StringComparison.Ordinal);
        Assert.Empty(_fleet.Events("client.unhealthy"));

        var third = await monitor.CheckOnceAsync(CancellationToken.None);
        var marked = Assert.Single(third.MarkedUnhealthy);
        Assert.Equal((web.Uuid, webSession.Id, 3), (marked.Uuid, marked.SessionId, marked.ConsecutiveFailures));

        // One event with the reason; the session is closed (client offline, client.disconnected) in the same step.
        var unhealthy = Assert.Single(_fleet.Events("client.unhealthy"));
        Assert.Equal(web.Uuid, unhealthy.Uuid);
        var payload = JsonDocument.Parse(unhealthy.Payload).RootElement.GetProperty("data");
        Assert.Contains("tunnel", payload.GetProperty("reason").GetString(), StringComparison.Ordinal);
        Assert.Equal(3, payload.GetProperty("consecutive_failures").GetInt32());
        Assert.False(_fleet.Registry.GetClient(web.Uuid)!.Online);
        Assert.StartsWith("unhealthy: ", _fleet.Registry.GetSession(webSession.Id)!.CloseReason, StringComparison.Ordinal);
        Assert.Single(_fleet.Events("client.disconnected"), e => e.Uuid == web.Uuid);
        Assert.True(_fleet.Registry.ListHealth().Single(h => h.Uuid == web.Uuid).IsUnhealthy);
        Assert.True(_fleet.Registry.GetClient(db.Uuid)!.Online);

        // Later rounds do not check the closed session again and emit nothing more.
        var fourth = await monitor.CheckOnceAsync(CancellationToken.None);
        Assert.Equal((1, 1), (fourth.Checked, fourth.Healthy));
        Assert.Single(_fleet.Events("client.unhealthy"));
    }

    [Fact]
    public async Task ABusyAnswer_AfterTheHandshake_IsAnAnsweredCheck()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        _probe.Busy.Add(web.Uuid);
        var monitor = Monitor(threshold: 1);
        for (var round = 0; round < 3; round++)
        {
            var sweep = await monitor.CheckOnceAsync(CancellationToken.None);
            Assert.Equal((1, 1), (sweep.Checked, sweep.Healthy));
        }

        Assert.True(_fleet.Registry.GetClient(web.Uuid)!.Online);
        Assert.Empty(_fleet.Events("client.unhealthy"));
    }

    [Fact]
    public async Task TunnelTrouble_WhileTheControlChannelSpeaks_MarksTheClientOnce_AndKeepsItsSession()
    {
        var (web, session) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        // The agent's heartbeats keep arriving on the control channel (the hub tells the monitor when).
        var monitor = new HealthMonitor(_fleet.Registry, _fleet.Registry, _probe, new HealthOptions { Threshold = 2 }, _fleet.Time, new DelegateLog(e => _log.Add(e.Message)),
            new ControlChannelLiveness(_ => _fleet.Time.GetUtcNow(), TimeSpan.FromSeconds(30)));

        await monitor.CheckOnceAsync(CancellationToken.None);
        var second = await monitor.CheckOnceAsync(CancellationToken.None);
        var marked = Assert.Single(second.MarkedUnhealthy);
        Assert.True(marked.SessionKept);
        for (var round = 0; round < 3; round++)
        {
            _fleet.Time.Advance(TimeSpan.FromSeconds(30));
            _fleet.Registry.TouchSession(session.Id); // the hub records the heartbeats too
            Assert.Empty((await monitor.CheckOnceAsync(CancellationToken.None)).MarkedUnhealthy);
        }

        // Marked and evented once; the session stays open.
        var unhealthy = Assert.Single(_fleet.Events("client.unhealthy"));
        Assert.False(JsonDocument.Parse(unhealthy.Payload).RootElement.GetProperty("data").GetProperty("session_closed").GetBoolean());
        Assert.Null(_fleet.Registry.GetSession(session.Id)!.ClosedAt);
        Assert.True(_fleet.Registry.GetClient(web.Uuid)!.Online);
        Assert.True(_fleet.Registry.ListHealth().Single().IsUnhealthy);
        Assert.Empty(_fleet.Events("client.disconnected"));
        Assert.Contains(_log, l => l.Contains("kept", StringComparison.Ordinal));

        // The tunnel answers again: the mark clears.
        _probe.Failing.Clear();
        await monitor.CheckOnceAsync(CancellationToken.None);
        Assert.False(_fleet.Registry.ListHealth().Single().IsUnhealthy);
    }

    [Fact]
    public async Task TunnelTrouble_WithAQuietControlChannel_ClosesTheSession()
    {
        var (web, session) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        // The last control frame arrived before the checks began to fail (a frozen agent): it proves nothing.
        var lastFrame = _fleet.Time.GetUtcNow() - TimeSpan.FromSeconds(1);
        var monitor = new HealthMonitor(_fleet.Registry, _fleet.Registry, _probe, new HealthOptions { Threshold = 2 }, _fleet.Time, new DelegateLog(e => _log.Add(e.Message)),
            new ControlChannelLiveness(_ => lastFrame, TimeSpan.FromSeconds(30)));

        await monitor.CheckOnceAsync(CancellationToken.None);
        var marked = Assert.Single((await monitor.CheckOnceAsync(CancellationToken.None)).MarkedUnhealthy);
        Assert.False(marked.SessionKept);
        Assert.StartsWith("unhealthy: ", _fleet.Registry.GetSession(session.Id)!.CloseReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AControlChannelThatFellQuiet_AfterTheSessionWasKept_GetsTheSessionClosed()
    {
        var (web, session) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        DateTimeOffset? lastFrame = _fleet.Time.GetUtcNow();
        var monitor = new HealthMonitor(_fleet.Registry, _fleet.Registry, _probe, new HealthOptions { Threshold = 2 }, _fleet.Time, new DelegateLog(e => _log.Add(e.Message)),
            new ControlChannelLiveness(_ => lastFrame, TimeSpan.FromSeconds(30)));
        await monitor.CheckOnceAsync(CancellationToken.None);
        Assert.True(Assert.Single((await monitor.CheckOnceAsync(CancellationToken.None)).MarkedUnhealthy).SessionKept);

        // The agent then freezes: no frame for longer than the fresh window.
        _fleet.Time.Advance(TimeSpan.FromSeconds(31));
        await monitor.CheckOnceAsync(CancellationToken.None);
        Assert.StartsWith("unhealthy: ", _fleet.Registry.GetSession(session.Id)!.CloseReason, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ASuccessfulCheck_ResetsTheCount()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        var monitor = Monitor(threshold: 2);
        _probe.Failing.Add(web.Uuid);
        await monitor.CheckOnceAsync(CancellationToken.None);
        _probe.Failing.Clear();
        await monitor.CheckOnceAsync(CancellationToken.None);
        Assert.Equal(0, _fleet.Registry.ListHealth().Single().ConsecutiveFailures);

        _probe.Failing.Add(web.Uuid);
        var sweep = await monitor.CheckOnceAsync(CancellationToken.None);

        // One failure after a success is 1 of 2, not the second in a row.
        Assert.Equal(1, Assert.Single(sweep.Failures).ConsecutiveFailures);
        Assert.Empty(_fleet.Events("client.unhealthy"));
        Assert.True(_fleet.Registry.GetClient(web.Uuid)!.Online);
    }

    [Fact]
    public async Task ANewSession_ClearsTheUnhealthyMark_AtItsFirstAnsweredCheck()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        var monitor = Monitor(threshold: 1);
        Assert.Single((await monitor.CheckOnceAsync(CancellationToken.None)).MarkedUnhealthy);
        Assert.True(_fleet.Registry.ListHealth().Single().IsUnhealthy);

        // The agent reconnects and answers again.
        _probe.Failing.Clear();
        var session = _fleet.Registry.OpenSession(web.Uuid, web.KeyFingerprint!, "localhost", 41000, new byte[32], null, null);
        _fleet.Registry.MarkSessionOnline(session.Id);
        await monitor.CheckOnceAsync(CancellationToken.None);

        var health = _fleet.Registry.ListHealth().Single();
        Assert.False(health.IsUnhealthy);
        Assert.NotNull(health.LastOkAt);
    }

    [Fact]
    public async Task AHangingProbe_FailsAtTheTimeout_WithoutHoldingUpTheOthers()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        _fleet.AddOnline("db-01");
        _probe.Hanging.Add(web.Uuid);
        var monitor = Monitor(threshold: 3, timeout: TimeSpan.FromMilliseconds(200));

        var sweep = await monitor.CheckOnceAsync(CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Equal(1, sweep.Healthy);
        var failure = Assert.Single(sweep.Failures);
        Assert.Equal(web.Uuid, failure.Uuid);
        Assert.Contains("no answer through the tunnel within 0.2 s", failure.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void SessionClosedByOthersBeforeTheThreshold_EmitsNoUnhealthyEvent()
    {
        var (web, session) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        Assert.False(_fleet.Registry.MarkUnhealthy(web.Uuid, session.Id + 100, "x", 3));
        _fleet.Registry.CloseSession(session.Id, "control channel closed");

        Assert.False(_fleet.Registry.MarkUnhealthy(web.Uuid, session.Id, "no answer", 3));
        Assert.Empty(_fleet.Events("client.unhealthy"));
        Assert.Empty(_fleet.Registry.ListHealth());
    }

    [Fact]
    public async Task RunAsync_ChecksEveryInterval_UntilCancelled()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        _probe.Failing.Add(web.Uuid);
        var monitor = new HealthMonitor(_fleet.Registry, _fleet.Registry, _probe,
            new HealthOptions { Interval = TimeSpan.FromMilliseconds(100), Timeout = TimeSpan.FromSeconds(5), Threshold = 3 });
        using var stop = new CancellationTokenSource();
        var run = monitor.RunAsync(stop.Token);

        await WaitUntilAsync(() => _fleet.Events("client.unhealthy").Count == 1);
        await stop.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(3, _probe.Checked.Count);
    }

    [Theory]
    [InlineData(0, 10, 3, "Interval")]
    [InlineData(30, 0, 3, "Timeout")]
    [InlineData(30, 10, 0, "Threshold")]
    [InlineData(30, 10, 101, "Threshold")]
    public void Options_OutOfRange_AreRefusedNamingTheSetting(double interval, double timeout, int threshold, string name)
    {
        var options = new HealthOptions { Interval = TimeSpan.FromSeconds(interval), Timeout = TimeSpan.FromSeconds(timeout), Threshold = threshold };
        var ex = Assert.Throws<ArgumentOutOfRangeException>(options.Validate);
        Assert.Equal(name, ex.ParamName);
    }

    [Fact]
    public void Defaults_Are30sInterval_10sTimeout_Threshold3()
    {
        var options = new HealthOptions();
        Assert.Equal((TimeSpan.FromSeconds(30), TimeSpan.FromSeconds(10), 3), (options.Interval, options.Timeout, options.Threshold));
        Assert.Equal(options.Interval, new EtPhoneHome.Hub.HubOptions { DataDirectory = new EtPhoneHome.Core.DataDirectory("/tmp/x") }.Health!.Interval);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not met within 30 s");
            await Task.Delay(20);
        }
    }
}

public sealed class HealthRegistryTests : IDisposable
{
    private readonly HealthRegistry _fleet = new();

    public void Dispose() => _fleet.Dispose();

    [Fact]
    public void HealthFailure_ClipsLongErrors_AndStampsTheTime()
    {
        var (web, _) = _fleet.AddOnline("web-01");
        _fleet.Registry.RecordHealthFailure(web.Uuid, new string('x', 900), 2);
        var health = Assert.Single(_fleet.Registry.ListHealth());
        Assert.Equal(500, health.LastError!.Length);
        Assert.Equal(_fleet.Time.GetUtcNow().ToUnixTimeMilliseconds(), health.LastFailureAt!.Value.ToUnixTimeMilliseconds());
    }
}
