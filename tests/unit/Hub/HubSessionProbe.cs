using System.Net.Sockets;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Hub;
using EtPhoneHome.Tests.Unit.Registry;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>An agent's side of a hub session through the hub's socket, as eph-gate relays it: for fault tests of the hub.</summary>
internal static class HubSessionProbe
{
    /// <summary>A hub on <paramref name="registry"/> for fault tests: fast polls, 2 s heartbeats, no health monitor, its log lines in <paramref name="log"/>.</summary>
    internal static HubServer FaultTestHub(SqliteRegistry registry, DataDirectory data, List<string> log) => new(registry, new HubOptions
    {
        DataDirectory = data,
        GatePath = "/opt/eph/eph-gate",
        PollInterval = TimeSpan.FromMilliseconds(100),
        HeartbeatSeconds = 2,
        Host = "gw-test",
        Health = null,
        Log = new DelegateLog(e => { lock (log) { log.Add(e.Message); } }),
    });

    /// <summary>
    /// An approved client (key A) online through <paramref name="hub"/>: its agent listens on the port the hub handed its
    /// key (sshd allows that one only), the welcome's secret is given to that listener.
    /// </summary>
    internal static async Task<(FakeTunnel Tunnel, NetworkStream Control, string Uuid)> OnlineClientAsync(HubServer hub, SqliteRegistry registry)
    {
        registry.RecordPendingKey(Keys.A, null, new AgentIdentity { Hostname = "agent-host" });
        registry.ApproveKey(Keys.A, "tester");
        var tunnel = new FakeTunnel(registry.AssignTunnelPort(Keys.A, TunnelPortRange.Default, p => TunnelPortRange.IsFree("127.0.0.1", p)));
        var control = await OpenSessionAsync(hub, Keys.A, Hello(tunnel.Port));
        var welcome = await ReadAsync(control);
        Assert.Equal(ControlTypes.Welcome, welcome!.Type);
        tunnel.Secret.SetResult(Convert.FromBase64String(welcome.SessionSecret!));
        await Until(() => registry.GetClient(welcome.Uuid!)?.Online == true);
        return (tunnel, control, welcome.Uuid!);
    }

    internal static string[] Snapshot(List<string> log)
    {
        lock (log)
        {
            return [.. log];
        }
    }

    internal static ControlMessage Hello(int? tunnelPort, string host = "agent-host") => new()
    {
        Type = ControlTypes.Hello,
        Protocol = ProtocolInfo.Version,
        Hostname = host,
        Platform = "linux-x64",
        Username = "svc",
        AgentVersion = "0.1.0",
        Capabilities = ["run_command"],
        TunnelPort = tunnelPort,
    };

    internal static async Task<NetworkStream> OpenSessionAsync(HubServer hub, string fingerprint, ControlMessage hello)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(hub.SocketPath));
        var stream = new NetworkStream(socket, ownsSocket: true);
        await Wire.WriteAsync(stream, new GateRequest { Op = "session", Fingerprint = fingerprint, GatePid = 4242, User = "eph" }, ProtocolJson.Default.GateRequest);
        await Wire.WriteAsync(stream, hello, ProtocolJson.Default.ControlMessage);
        return stream;
    }

    internal static async Task<ControlMessage?> ReadAsync(Stream stream)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        return await Wire.ReadAsync(stream, ProtocolJson.Default.ControlMessage, Framing.MaxFrameBytes, timeout.Token);
    }

    /// <summary>The next frame of <paramref name="type"/>, skipping others (the hub's "online" notice).</summary>
    internal static async Task<ControlMessage> ReadUntilAsync(Stream stream, string type)
    {
        while (true)
        {
            var message = await ReadAsync(stream) ?? throw new Xunit.Sdk.XunitException("the hub closed the control channel");
            if (message.Type == type)
            {
                return message;
            }
        }
    }

    internal static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out");
            await Task.Delay(25);
        }
    }
}
