using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;
using Xunit.Abstractions;
using static EtPhoneHome.Tests.Unit.Hub.HubSessionProbe;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// PostgreSQL restarted (<c>pg_ctl restart -m fast</c>, on a cluster of the test's own) while a hub holds a session and
/// an operator on another connection keeps editing the client: the hub keeps the session and its heartbeats, the
/// operator's edits each either commit whole or fail with an error (none half-written), both recover by themselves
/// once the database is back, and a new machine is admitted again.
/// </summary>
public sealed class PostgresRestartHubTests(ITestOutputHelper output)
{
    [Fact]
    public async Task ARestartUnderLoad_KeepsTheSession_LeavesNoEditHalfWritten_AndEveryoneRecovers()
    {
        var cluster = PostgresCluster.StartPrivate();
        try
        {
            using var data = new TempData();
            var connection = cluster.ConnectionString(TestRegistries.SchemaOf(data.Dir));
            var log = new List<string>();
            using var registry = SqliteRegistry.Open(data.Dir, RegistrySource.Postgres(connection));
            await using var hub = FaultTestHub(registry, data.Dir, log);
            await hub.StartAsync();
            var (tunnel, control, uuid) = await OnlineClientAsync(hub, registry);
            await using var tunnelLifetime = tunnel;
            await using var controlLifetime = control;

            // The operator: another registry instance (another process, another host) editing the client in a loop;
            // each edit writes the purpose and the tags in one transaction, so they must always agree.
            using var operatorRegistry = SqliteRegistry.Open(data.Dir, RegistrySource.Postgres(connection));
            using var stop = new CancellationTokenSource();
            var committed = 0;
            var failed = 0;
            var committedAfterRestart = 0;
            var restarted = false;
            var edits = Task.Run(async () =>
            {
                for (var i = 0; i < 100_000 && !stop.IsCancellationRequested; i++)
                {
                    try
                    {
                        operatorRegistry.UpdateClient(uuid, new ClientUpdate { Purpose = $"edit {i}", Tags = [$"edit-{i}"] }, "operator");
                        Interlocked.Increment(ref committed);
                        if (Volatile.Read(ref restarted))
                        {
                            Interlocked.Increment(ref committedAfterRestart);
                        }
                    }
                    catch (Exception ex) when (RegistryFaults.Unwritable(ex) is not null || ex is InvalidOperationException or TimeoutException)
                    {
                        Interlocked.Increment(ref failed);
                        await Task.Delay(20);
                    }
                }
            });

            await Until(() => Volatile.Read(ref committed) >= 20);
            var away = cluster.Restart();
            Volatile.Write(ref restarted, true);
            output.WriteLine($"restart took {away.TotalMilliseconds:0} ms; edits before it {committed}, failed {failed}");

            // The session is kept through it: heartbeats answered all along.
            for (var seq = 1; seq <= 3; seq++)
            {
                await Wire.WriteAsync(control, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = seq }, ProtocolJson.Default.ControlMessage);
                Assert.Equal(seq, (await ReadUntilAsync(control, ControlTypes.Heartbeat)).Sequence);
            }

            // Both recover by themselves: the operator's edits commit again, the hub writes again.
            await Until(() => Volatile.Read(ref committedAfterRestart) >= 20);
            await Until(() => !hub.RegistryUnwritable);
            await stop.CancelAsync();
            await edits;
            output.WriteLine($"edits committed {committed} (after the restart {committedAfterRestart}), failed {failed}");

            Assert.Equal(1, hub.ActiveSessions);
            var client = registry.GetClient(uuid)!;
            Assert.True(client.Online);
            Assert.StartsWith("edit ", client.Purpose, StringComparison.Ordinal);
            Assert.Equal([client.Purpose!.Replace(' ', '-')], client.Tags);

            // A new machine is admitted (pending) as before.
            await using (var newcomer = await OpenSessionAsync(hub, Keys.B, Hello(null, host: "new-01")))
            {
                Assert.Equal(ControlTypes.Pending, (await ReadAsync(newcomer))!.Type);
            }

            Assert.Equal(KeyStatus.Pending, registry.GetKey(Keys.B)!.Status);
            Assert.DoesNotContain(Snapshot(log), l => l.Contains("   at ", StringComparison.Ordinal));
            Assert.DoesNotContain(cluster.Password, string.Join('\n', Snapshot(log)));
            await hub.StopAsync();
            output.WriteLine(string.Join('\n', Snapshot(log)));
        }
        finally
        {
            cluster.Stop();
        }
    }
}
