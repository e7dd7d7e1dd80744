using EtPhoneHome.Core.Logging;
using System.Net.Sockets;
using EtPhoneHome.Hub;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;
using Xunit.Abstractions;
using static EtPhoneHome.Tests.Unit.Hub.HubSessionProbe;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// Issue 12 item 11: the hub's registry on a real file system that fills up (a 2 MiB tmpfs). The hub keeps its sessions
/// and control channels, says so in one line, refuses new admissions saying why, and recovers by itself.
/// </summary>
public sealed class DiskFullHubTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AFullDisk_KeepsTheSessions_SaysSoOnce_RefusesNewAdmissions_AndRecoversByItself()
    {
        if (!SmallDisk.Available)
        {
            output.WriteLine("not run: mounting a tmpfs needs root");
            return;
        }

        using var disk = SmallDisk.Mount();
        var log = new List<string>();
        using var registry = SqliteRegistry.Open(disk.Data);
        await using var hub = FaultTestHub(registry, disk.Data, log);
        await hub.StartAsync();
        try
        {
            await RunAsync(disk, registry, hub, log);
        }
        finally
        {
            output.WriteLine(string.Join('\n', Snapshot(log)));
        }
    }

    private static async Task RunAsync(SmallDisk disk, SqliteRegistry registry, HubServer hub, List<string> log)
    {

        // An online client.
        var (tunnel, control, uuid) = await OnlineClientAsync(hub, registry);
        await using var tunnelLifetime = tunnel;
        await using var controlLifetime = control;
        var session = registry.GetOpenSession(uuid)!;

        // A key approved before the disk filled, whose agent has not connected since: it has no tunnel port yet.
        registry.RecordPendingKey(Keys.C, null, new AgentIdentity { Hostname = "approved-01" });
        registry.ApproveKey(Keys.C, "tester");

        disk.Fill();

        // Heartbeats go on being answered although none can be recorded; the session stays.
        for (var seq = 1; seq <= 5; seq++)
        {
            await Wire.WriteAsync(control, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = seq }, ProtocolJson.Default.ControlMessage);
            var answer = await ReadUntilAsync(control, ControlTypes.Heartbeat);
            Assert.Equal(seq, answer.Sequence);
        }

        Assert.Equal(1, hub.ActiveSessions);
        Assert.True(hub.RegistryUnwritable);
        Assert.Null(registry.GetSession(session.Id)!.ClosedAt);
        var full = Assert.Single(Snapshot(log), l => l.Contains("disk full", StringComparison.Ordinal));
        Assert.Equal($"registry: disk full at {disk.Data.Path} (0 MiB free); heartbeats and events are not being recorded; sessions are kept; new sessions are refused", full);
        Assert.DoesNotContain(Snapshot(log), l => l.Contains("offline", StringComparison.Ordinal) || l.Contains("   at ", StringComparison.Ordinal));

        // A new machine is refused, told why, and nothing of it is recorded.
        await using (var newcomer = await OpenSessionAsync(hub, Keys.B, Hello(null, host: "new-01")))
        {
            var refused = await ReadAsync(newcomer);
            Assert.Equal(ControlTypes.Refused, refused!.Type);
            Assert.Equal(HubServer.OutOfDiskSpace, refused.Message);
            Assert.Equal(60, refused.RetryAfterSeconds);
        }

        Assert.Null(registry.GetKey(Keys.B));

        // Its port cannot be recorded now: the agent is refused with the reason (not a fault with a stack trace).
        await using (var approved = await OpenSessionAsync(hub, Keys.C, Hello(null, host: "approved-01")))
        {
            var refused = await ReadAsync(approved);
            Assert.Equal(ControlTypes.Refused, refused!.Type);
            Assert.Equal(HubServer.OutOfDiskSpace, refused.Message);
        }

        // sshd asking about that key: the hub answers (no forward while no port can be recorded), and logs no fault.
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(hub.SocketPath));
        await using (var keys = new NetworkStream(socket, ownsSocket: true))
        {
            await Wire.WriteAsync(keys, new GateRequest { Op = "keys", Fingerprint = Keys.C, User = "eph", KeyType = "ssh-ed25519", Key = "AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyBlobForTestsOnly0123456789abcdef" }, ProtocolJson.Default.GateRequest);
            var answer = await Wire.ReadAsync(keys, ProtocolJson.Default.GateKeysResponse);
            Assert.NotNull(answer);
        }

        Assert.Null(registry.GetKey(Keys.C)!.TunnelPort);
        Assert.DoesNotContain(Snapshot(log), l => l.Contains("   at ", StringComparison.Ordinal) || l.Contains("unexpected fault", StringComparison.Ordinal));

        // Space returns: the next heartbeat is recorded, the hub says so, and a new machine is recorded again.
        disk.Free();
        await Wire.WriteAsync(control, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = 6 }, ProtocolJson.Default.ControlMessage);
        await ReadUntilAsync(control, ControlTypes.Heartbeat);
        await Until(() => !hub.RegistryUnwritable);
        Assert.Single(Snapshot(log), l => l.StartsWith($"registry: writable again at {disk.Data.Path}", StringComparison.Ordinal));
        Assert.True(registry.GetClient(uuid)!.Online);
        await using (var newcomer = await OpenSessionAsync(hub, Keys.B, Hello(null, host: "new-01")))
        {
            Assert.Equal(ControlTypes.Pending, (await ReadAsync(newcomer))!.Type);
        }

        Assert.Equal(KeyStatus.Pending, registry.GetKey(Keys.B)!.Status);
        await hub.StopAsync();
    }
}
