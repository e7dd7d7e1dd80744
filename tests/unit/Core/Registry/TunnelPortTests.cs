using System.Net;
using System.Net.Sockets;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>One server port per approved key: what sshd's permitlisten names, so a client cannot listen anywhere else.</summary>
public abstract class TunnelPortTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private readonly TempData _temp = new();
    private readonly SqliteRegistry _registry;

    protected TunnelPortTests(TestEngine engine)
    {
        Engine = engine;
        _registry = TestRegistries.Open(Engine, _temp.Dir);
    }

    public void Dispose()
    {
        _registry.Dispose();
        _temp.Dispose();
    }

    private void Approve(string fingerprint)
    {
        _registry.RecordPendingKey(fingerprint, null, Keys.Identity());
        _registry.ApproveKey(fingerprint, "tester");
    }

    [Fact]
    public void Assign_GivesEachKeyItsOwnPort_InTheRange_AndSkipsPortsInUse()
    {
        var range = new TunnelPortRange(30000, 30003);
        Approve(Keys.A);
        Approve(Keys.B);
        Approve(Keys.C);
        var probed = new List<int>();
        var a = _registry.AssignTunnelPort(Keys.A, range, p => { probed.Add(p); return p != 30001 && p != 30002; });
        var b = _registry.AssignTunnelPort(Keys.B, range, p => p != 30001 && p != 30002);
        Assert.Equal([30000, 30003], new[] { a, b }.Order());
        Assert.Equal(a, _registry.GetKey(Keys.A)!.TunnelPort);

        // Every port of the range is held or in use: a clear refusal, and nothing changes.
        var full = Assert.Throws<InvalidOperationException>(() => _registry.AssignTunnelPort(Keys.C, range, p => p != 30001 && p != 30002));
        Assert.Contains("30000-30003", full.Message);
        Assert.Null(_registry.GetKey(Keys.C)!.TunnelPort);
    }

    [Fact]
    public void Assign_MovesAKeyOffItsCurrentPort()
    {
        var range = new TunnelPortRange(30000, 30001);
        Approve(Keys.A);
        var first = _registry.AssignTunnelPort(Keys.A, range, _ => true);
        var second = _registry.AssignTunnelPort(Keys.A, range, _ => true);
        Assert.NotEqual(first, second);
        Assert.Equal(second, _registry.GetKey(Keys.A)!.TunnelPort);
    }

    [Fact]
    public void Assign_RefusesKeysThatAreNotApproved()
    {
        _registry.RecordPendingKey(Keys.A, null, Keys.Identity());
        Assert.Throws<InvalidOperationException>(() => _registry.AssignTunnelPort(Keys.A, TunnelPortRange.Default, _ => true));
        Assert.Throws<InvalidOperationException>(() => _registry.AssignTunnelPort(Keys.D, TunnelPortRange.Default, _ => true));
        Assert.Null(_registry.GetKey(Keys.A)!.TunnelPort);
    }

    [Fact]
    public void Revoking_ReleasesThePort_ForTheNextKey()
    {
        var range = new TunnelPortRange(30000, 30000);
        Approve(Keys.A);
        Approve(Keys.B);
        Assert.Equal(30000, _registry.AssignTunnelPort(Keys.A, range, _ => true));
        Assert.Throws<InvalidOperationException>(() => _registry.AssignTunnelPort(Keys.B, range, _ => true));
        _registry.RevokeKey(Keys.A, "tester");
        Assert.Null(_registry.GetKey(Keys.A)!.TunnelPort);
        Assert.Equal(30000, _registry.AssignTunnelPort(Keys.B, range, _ => true));
    }

    [Theory]
    [InlineData("20000-29999", 20000, 29999)]
    [InlineData("1024-1024", 1024, 1024)]
    public void Range_Parses(string text, int first, int last)
    {
        var range = TunnelPortRange.Parse(text);
        Assert.Equal((first, last), (range.First, range.Last));
        Assert.Equal(text, range.ToString());
    }

    [Theory]
    [InlineData("")]
    [InlineData("20000")]
    [InlineData("29999-20000")]
    [InlineData("80-1000")]
    [InlineData("20000-70000")]
    [InlineData("-5-10")]
    [InlineData("2e4-3e4")]
    public void Range_RefusesNonsense_AndPrivilegedPorts(string text)
    {
        var ex = Assert.ThrowsAny<ArgumentException>(() => TunnelPortRange.Parse(text));
        Assert.Contains("FIRST-LAST", ex.Message);
    }

    [Fact]
    public void ServicePort_InTheRange_IsRefused_WithTheReason()
    {
        var ex = Assert.Throws<ArgumentException>(() => TunnelPortRange.EnsureServicePort(20500, TunnelPortRange.Default, "--http"));
        Assert.Contains("20000-29999", ex.Message);
        TunnelPortRange.EnsureServicePort(8765, TunnelPortRange.Default, "--http");
        TunnelPortRange.EnsureServicePort(443, TunnelPortRange.Default, "--http");
    }

    [Fact]
    public void RangeOf_ReadsWhatTheHubRecorded()
    {
        Assert.Equal(TunnelPortRange.Default, TunnelPortRange.Of(_registry));
        _registry.SetSetting(TunnelPortRange.Setting, "40000-40100");
        Assert.Equal(new TunnelPortRange(40000, 40100), TunnelPortRange.Of(_registry));
    }

    [Fact]
    public void IsFree_SeesAListener()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        Assert.False(TunnelPortRange.IsFree("127.0.0.1", port));
        listener.Stop();
        Assert.True(TunnelPortRange.IsFree("127.0.0.1", port));
    }
}

public sealed class TunnelPortTestsOnSqlite() : TunnelPortTests(TestEngine.Sqlite);

public sealed class TunnelPortTestsOnPostgres() : TunnelPortTests(TestEngine.Postgres);
