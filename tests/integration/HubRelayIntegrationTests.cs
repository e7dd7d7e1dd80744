using System.Diagnostics;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Sandbox;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// The hub-to-hub relay with real processes: two sshd + hub pairs on one private PostgreSQL, each hub started with
/// <c>--relay-address</c> (its relay key published in the registry), an operator connected over ssh to hub-1 only. The
/// clients hub-2 holds are reached through hub-2 — hub-1 logs in to hub-2's sshd with its relay key — for the operator,
/// recorded as relayed; when hub-2 dies mid fan-out its targets get an error naming it, not a hang.
/// </summary>
public sealed class HubRelayIntegrationTests(ITestOutputHelper output)
{
    private static SandboxOptions Fast => new() { HeartbeatSeconds = 2, ReconnectInitialSeconds = 0.5, ReconnectMaxSeconds = 2 };

    private static readonly string[] OnHub1 = ["rl-a1"];
    private static readonly string[] OnHub2 = ["rl-b1", "rl-b2"];

    private static async Task<(MultiHubSandbox Sandbox, RemoteServer Operator, RemoteServer Reader)> StartAsync()
    {
        var sandbox = await MultiHubSandbox.CreateAsync(2, Fast);
        try
        {
            await sandbox.StartAsync();
            foreach (var name in OnHub1)
            {
                await sandbox.AddAgentAsync(name, home: 0, ["relay"]);
            }

            foreach (var name in OnHub2)
            {
                await sandbox.AddAgentAsync(name, home: 1, ["relay"]);
            }

            var hub1 = sandbox.Hubs[0];
            string[] all = [.. OnHub1, .. OnHub2];
            var pending = await hub1.WaitForPendingKeysAsync(all.Length, SandboxFixture.Patience);
            using (var registry = hub1.OpenRegistry())
            {
                foreach (var key in pending)
                {
                    registry.ApproveKey(key.Fingerprint, "test");
                }
            }

            await hub1.WaitOnlineAsync(all, SandboxFixture.Patience);
            var (operatorKey, _) = await sandbox.AddOperatorAsync("relay-op", "operator");
            var (readerKey, _) = await sandbox.AddOperatorAsync("relay-reader", "reader");
            return (sandbox, Connect(hub1, operatorKey), Connect(hub1, readerKey));
        }
        catch
        {
            await sandbox.DisposeAsync();
            throw;
        }
    }

    private static RemoteServer Connect(SandboxEnvironment hub, string keyFile) =>
        new(new ServerAddress("127.0.0.1") { Port = hub.SshPort, User = hub.FleetUser, KeyFile = keyFile },
            HostKey.Parse(File.ReadAllText(hub.Data.HostKeyFile + ".pub")), Surfaces.Cli,
            new SshLinkOptions { ConfigFile = "none", OpenTimeout = TimeSpan.FromSeconds(30) });

    private static RunCommandsArgs Everyone(string command) =>
        new() { Targets = new TargetSelection { Tags = ["relay"] }, Request = new CommandRequest { Command = command, TimeoutSeconds = 60 } };

    [Fact]
    public async Task AnOperatorOnHub1_ReachesHub2sClients_ThroughHub2_RecordedAsRelayedForTheOperator()
    {
        var (sandbox, op, reader) = await StartAsync();
        await using var sandboxLifetime = sandbox;
        await using var opLifetime = op;
        await using var readerLifetime = reader;
        var remote = await op.GetAsync(CancellationToken.None);

        var results = new List<FleetCommandResult>();
        await foreach (var r in remote.RunCommandsAsync(Everyone("echo relayed-$(hostname)"), null, CancellationToken.None))
        {
            results.Add(r);
        }

        Assert.Equal([.. OnHub1, .. OnHub2], results.Select(r => r.DisplayName).Order(StringComparer.Ordinal));
        Assert.All(results, r => Assert.True(r.Status == CommandStatus.Succeeded, $"{r.DisplayName}: {r.Status} {r.Error}"));
        Assert.All(results, r => Assert.StartsWith("relayed-", r.Stdout, StringComparison.Ordinal));

        // Hub-2 ran its clients' commands for the operator, recorded with the operator's source "via hub hub-1";
        // hub-1 ran its own client's, recorded as usual. One history row per target, none twice.
        using (var registry = sandbox.Hubs[0].OpenRegistry())
        {
            var uuids = registry.QueryClients(new ClientQuery { Tags = ["relay"] }).ToDictionary(c => c.DisplayName, c => c.Uuid);
            var rows = registry.QueryHistory(new HistoryQuery { Uuids = [.. uuids.Values], Operations = [OperationNames.RunCommand] });
            foreach (var (name, uuid) in uuids)
            {
                var row = Assert.Single(rows, e => e.Uuid == uuid);
                Assert.Equal("relay-op", row.Actor);
                Assert.Equal("operator", row.Role);
                Assert.Equal("cli+ssh", row.Surface);
                if (OnHub2.Contains(name))
                {
                    Assert.Equal("127.0.0.1 via hub hub-1", row.Source);
                }
                else
                {
                    Assert.Equal("127.0.0.1", row.Source);
                }
            }
        }

        Assert.Contains("hub hub-1", await File.ReadAllTextAsync(Path.Combine(sandbox.Hubs[1].WorkDirectory, "hub.log")), StringComparison.Ordinal);

        // A reader reads metrics of every client, hub-2's through the relay with the reader's own role.
        var metrics = new List<ClientMetricsResult>();
        await foreach (var m in (await reader.GetAsync(CancellationToken.None)).CollectMetricsAsync(
            new CollectMetricsArgs { Targets = new TargetSelection { Tags = ["relay"] }, Summary = true }, null, CancellationToken.None))
        {
            metrics.Add(m);
        }

        Assert.Equal(3, metrics.Count);
        Assert.All(metrics, m => Assert.True(m.Status == MetricsStatus.Succeeded, $"{m.DisplayName}: {m.Status} {m.Error}"));
    }

    [Fact]
    public async Task Hub2KilledMidRelayedFanOut_ItsTargetsGetAnErrorNamingIt_AndHub1sClientItsOutput()
    {
        var (sandbox, op, reader) = await StartAsync();
        await using var sandboxLifetime = sandbox;
        await using var opLifetime = op;
        await using var readerLifetime = reader;
        var remote = await op.GetAsync(CancellationToken.None);

        var clock = Stopwatch.StartNew();
        var running = Task.Run(async () =>
        {
            var list = new List<FleetCommandResult>();
            await foreach (var r in remote.RunCommandsAsync(Everyone("sleep 8; echo done"), null, CancellationToken.None))
            {
                list.Add(r);
            }

            return list;
        });
        await Task.Delay(TimeSpan.FromSeconds(3));
        await sandbox.KillHubAsync(1);
        var results = await running.WaitAsync(TimeSpan.FromSeconds(60));
        output.WriteLine($"fan-out ended {clock.Elapsed.TotalSeconds:0.0} s after it started (hub-2 killed at 3 s)");
        foreach (var r in results)
        {
            output.WriteLine($"{r.DisplayName}: {r.Status} {r.Error}");
        }

        Assert.Equal([.. OnHub1, .. OnHub2], results.Select(r => r.DisplayName).Order(StringComparer.Ordinal));
        Assert.Equal("done\n", Assert.Single(results, r => r.DisplayName == OnHub1[0]).Stdout);
        Assert.All(results.Where(r => OnHub2.Contains(r.DisplayName)), r =>
        {
            Assert.Equal(CommandStatus.Error, r.Status);
            Assert.Contains("hub hub-2", r.Error, StringComparison.Ordinal);
        });
    }
}
