using System.Net;
using System.Net.Sockets;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Npgsql;
using Xunit;
using Xunit.Abstractions;
using static EtPhoneHome.Tests.Unit.Hub.HubSessionProbe;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// A hub whose PostgreSQL registry becomes unreachable (the network between them cut: every connection reset, new ones
/// refused) keeps its sessions and control channels, says why in one line, refuses new admissions, and resumes by
/// itself when the database answers again; nothing is half-written.
/// </summary>
public sealed class PostgresPartitionHubTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ACutToPostgres_KeepsTheSessions_SaysWhy_RefusesNewAdmissions_AndResumesWhenItReturns()
    {
        var cluster = PostgresCluster.Shared;
        await using var link = await CuttableLink.StartAsync(cluster.Port);
        using var data = new TempData();
        var through = new NpgsqlConnectionStringBuilder(cluster.ConnectionString(TestRegistries.SchemaOf(data.Dir)))
        {
            Port = link.Port,
            // Npgsql's defaults: a loaded test machine can take seconds to open a connection through the relay. While the
            // link is cut every connection is reset at once, so nothing waits for these.
            Timeout = 15,
            CommandTimeout = 30,
        };
        var log = new List<string>();
        using var registry = SqliteRegistry.Open(data.Dir, RegistrySource.Postgres(through.ConnectionString));
        await using var hub = FaultTestHub(registry, data.Dir, log);
        await hub.StartAsync();
        try
        {
            var (tunnel, control, uuid) = await OnlineClientAsync(hub, registry);
            await using var tunnelLifetime = tunnel;
            await using var controlLifetime = control;

            link.Cut();

            // Heartbeats are answered although none can be recorded; the session stays.
            for (var seq = 1; seq <= 3; seq++)
            {
                await Wire.WriteAsync(control, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = seq }, ProtocolJson.Default.ControlMessage);
                Assert.Equal(seq, (await ReadUntilAsync(control, ControlTypes.Heartbeat)).Sequence);
            }

            await Until(() => hub.RegistryUnwritable);
            Assert.Equal(1, hub.ActiveSessions);
            var line = Assert.Single(Snapshot(log), l => l.StartsWith("registry: PostgreSQL not reachable", StringComparison.Ordinal));
            Assert.EndsWith("heartbeats and events are not being recorded; sessions are kept; new sessions are refused", line);
            Assert.DoesNotContain(cluster.Password, string.Join('\n', Snapshot(log)));
            Assert.DoesNotContain(Snapshot(log), l => l.Contains("disk full", StringComparison.Ordinal) || l.Contains("   at ", StringComparison.Ordinal));

            // A new machine is refused and told to retry; the hub answers instead of faulting.
            await using (var newcomer = await OpenSessionAsync(hub, Keys.B, Hello(null, host: "new-01")))
            {
                var refused = await ReadAsync(newcomer);
                Assert.Equal(ControlTypes.Refused, refused!.Type);
                Assert.Equal(HubServer.RegistryUnreachable, refused.Message);
            }

            link.Restore();
            await Wire.WriteAsync(control, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = 4 }, ProtocolJson.Default.ControlMessage);
            await ReadUntilAsync(control, ControlTypes.Heartbeat);
            await Until(() => !hub.RegistryUnwritable);
            Assert.Single(Snapshot(log), l => l.StartsWith("registry: writable again", StringComparison.Ordinal));
            Assert.True(registry.GetClient(uuid)!.Online);
            Assert.Null(registry.GetKey(Keys.B)); // the refused hello left nothing behind
            await using (var newcomer = await OpenSessionAsync(hub, Keys.B, Hello(null, host: "new-01")))
            {
                Assert.Equal(ControlTypes.Pending, (await ReadAsync(newcomer))!.Type);
            }

            Assert.Equal(KeyStatus.Pending, registry.GetKey(Keys.B)!.Status);
            await hub.StopAsync();
        }
        finally
        {
            output.WriteLine(string.Join('\n', Snapshot(log)));
        }
    }

    [Fact]
    public void PostgresFaults_ThatMeanNoWritesNow_AreToldApartFromOtherErrors()
    {
        Assert.Equal(RegistryFaults.Unreachable, RegistryFaults.Unwritable(new NpgsqlException("Failed to connect to 127.0.0.1:1", new SocketException(111))));
        Assert.Equal(RegistryFaults.Unreachable, RegistryFaults.Unwritable(new PostgresException("terminating connection due to administrator command", "FATAL", "FATAL", "57P01")));
        Assert.Equal(RegistryFaults.Unreachable, RegistryFaults.Unwritable(new PostgresException("cannot execute UPDATE in a read-only transaction", "ERROR", "ERROR", "25006")));
        Assert.Equal("disk full", RegistryFaults.Unwritable(new PostgresException("could not extend file", "ERROR", "ERROR", "53100")));
        Assert.Null(RegistryFaults.Unwritable(new PostgresException("duplicate key value violates unique constraint", "ERROR", "ERROR", "23505")));
        Assert.Null(RegistryFaults.Unwritable(new PostgresException("syntax error", "ERROR", "ERROR", "42601")));

        var said = RegistryFaults.ForOperator(new NpgsqlException("Failed to connect to 127.0.0.1:1\u001b[2J", new SocketException(111)), "/var/lib/eph");
        Assert.Equal("registry: PostgreSQL not reachable (Failed to connect to 127.0.0.1:1\\x1b[2J); nothing was changed or run; retry when the database answers", said);
    }

    /// <summary>
    /// A TCP relay on 127.0.0.1 to PostgreSQL that can be cut — every relayed connection reset, new ones closed at once —
    /// and restored: the network between a hub and its database failing, without touching the shared test cluster.
    /// </summary>
    private sealed class CuttableLink : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly int _target;
        private readonly CancellationTokenSource _stop = new();
        private readonly List<Socket> _open = [];
        private readonly Task _accepting;
        private volatile bool _cut;

        private CuttableLink(int target)
        {
            _target = target;
            _listener = new TcpListener(IPAddress.Loopback, 0);
            _listener.Start();
            _accepting = AcceptAsync();
        }

        public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

        public static Task<CuttableLink> StartAsync(int target) => Task.FromResult(new CuttableLink(target));

        public void Cut()
        {
            _cut = true;
            lock (_open)
            {
                foreach (var s in _open)
                {
                    try
                    {
                        s.LingerState = new LingerOption(true, 0); // a reset, as a dropped route would end in
                    }
                    catch (ObjectDisposedException)
                    {
                        // already closed by its pump
                    }

                    s.Dispose();
                }

                _open.Clear();
            }
        }

        public void Restore() => _cut = false;

        private async Task AcceptAsync()
        {
            while (!_stop.IsCancellationRequested)
            {
                Socket client;
                try
                {
                    client = await _listener.AcceptSocketAsync(_stop.Token);
                }
                catch (Exception) when (_stop.IsCancellationRequested)
                {
                    return;
                }

                if (_cut)
                {
                    client.LingerState = new LingerOption(true, 0);
                    client.Dispose();
                    continue;
                }

                var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                try
                {
                    await server.ConnectAsync(IPAddress.Loopback, _target, _stop.Token);
                }
                catch (Exception)
                {
                    client.Dispose();
                    server.Dispose();
                    continue;
                }

                lock (_open)
                {
                    _open.Add(client);
                    _open.Add(server);
                }

                _ = PumpAsync(client, server);
                _ = PumpAsync(server, client);
            }
        }

        private async Task PumpAsync(Socket from, Socket to)
        {
            var buffer = new byte[16 * 1024];
            try
            {
                while (true)
                {
                    var n = await from.ReceiveAsync(buffer, SocketFlags.None, _stop.Token);
                    if (n == 0)
                    {
                        break;
                    }

                    await to.SendAsync(buffer.AsMemory(0, n), SocketFlags.None, _stop.Token);
                }
            }
            catch (Exception)
            {
                // cut, reset or stopped
            }
            finally
            {
                from.Dispose();
                to.Dispose();
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            _listener.Stop();
            Cut();
            try
            {
                await _accepting;
            }
            catch (OperationCanceledException)
            {
            }

            _stop.Dispose();
        }
    }
}
