using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Services;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// Hub to hub: what another hub may ask of this hub's operator service (fan-outs only, each for an active operator
/// whose own role decides, to this hub's own clients only, never relayed again), and how this hub's fan-outs send the
/// targets another hub holds to that hub — every target answered, also when that hub cannot be reached.
/// </summary>
public sealed class HubRelayTests : IAsyncLifetime
{
    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly FakeRelay _relay = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-relay-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly Dictionary<string, OperatorIdentity> _operators = new(StringComparer.OrdinalIgnoreCase)
    {
        ["alice"] = new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, null),
        ["rita"] = new OperatorIdentity("rita", "SHA256:rita", OperatorRole.Reader, null),
        ["ada"] = new OperatorIdentity("ada", "SHA256:ada", OperatorRole.Admin, null),
    };
    private readonly ConcurrentQueue<OperatorContext> _contexts = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket Client, Task Serving)> _connections = [];

    public HubRelayTests()
    {
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
        _fleet.AddClient("3f2a9c1e-0003", "web-03", true, 40003, "web");
        _fleet.Sessions["3f2a9c1e-0001"] = _fleet.Sessions["3f2a9c1e-0001"] with { HubId = "hub-a" };
        _fleet.Sessions["3f2a9c1e-0002"] = _fleet.Sessions["3f2a9c1e-0002"] with { HubId = "hub-b" };
        _fleet.Sessions["3f2a9c1e-0003"] = _fleet.Sessions["3f2a9c1e-0003"] with { HubId = "hub-c" };
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var (client, serving) in _connections)
        {
            client.Dispose();
            await serving.WaitAsync(TimeSpan.FromSeconds(20));
        }

        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    /// <summary>A connection to hub-a's operator service as <paramref name="who"/> (another hub when its Hub is set).</summary>
    private readonly EtPhoneHome.Tests.Unit.Health.ScriptedMetrics _metrics = new();

    private async Task<RemoteOperator> ConnectAsync(OperatorIdentity who, IFleetRelay? relay = null)
    {
        Directory.CreateDirectory(_dir);
        var (client, server) = await UnixSocketPair.ConnectAsync(_dir, "s" + _connections.Count.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var service = new OperatorService(() => _fleet.Stores(), fp => fp == who.Fingerprint ? who : null)
        {
            CommandTransport = guard =>
            {
                _contexts.Enqueue(guard.Context);
                return _transport;
            },
            MetricsSource = _ => _metrics,
            HostName = "hub-a-host",
            OperatorByName = name => _operators.TryGetValue(name, out var op) ? op : null,
            LocalHubId = () => "hub-a",
            Relay = relay,
        };
        _connections.Add((client, service.ServeAsync(new NetworkStream(server, ownsSocket: true), who, _stop.Token)));
        var stream = new NetworkStream(client, ownsSocket: false);
        return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.Cli, CancellationToken.None);
    }

    private static OperatorIdentity HubB => new("hub hub-b", "SHA256:hub-b-relay", OperatorRole.Reader, "10.0.0.2") { Hub = "hub-b" };

    private static RunCommandsArgs Run(params string[] clients) =>
        new() { Targets = new TargetSelection { Clients = clients }, Request = new CommandRequest { Command = "uptime" } };

    private static async Task<List<FleetCommandResult>> AllAsync(IAsyncEnumerable<FleetCommandResult> results)
    {
        var list = new List<FleetCommandResult>();
        await foreach (var r in results)
        {
            list.Add(r);
        }

        return list;
    }

    private static RelayOrigin For(string name) => new() { Operator = name, Surface = Surfaces.PowerShell, Source = "192.0.2.7" };

    [Fact]
    public async Task AHub_RelaysForAnActiveOperator_WhoIsRecordedWithTheirSourceAndTheHub()
    {
        await using var remote = await ConnectAsync(HubB);
        var results = await AllAsync(remote.RunCommandsAsync(Run("3f2a9c1e-0001"), null, For("alice"), CancellationToken.None));

        Assert.Equal(CommandStatus.Succeeded, Assert.Single(results).Status);
        Assert.Equal(1, _transport.Calls);
        var context = Assert.Single(_contexts);
        Assert.Equal("alice", context.Actor);
        Assert.Equal("operator", context.Role);
        Assert.Equal("192.0.2.7 via hub hub-b", context.Source);
        Assert.Equal(Surfaces.PowerShell + "+ssh", context.Surface);
    }

    [Theory]
    [InlineData("rita")]     // a reader may not run commands: the operator's own role decides, not the hub's
    [InlineData("mallory")]  // no such operator
    [InlineData(null)]       // for nobody
    public async Task AHub_IsRefusedACommandForAnOperatorWhoMayNotRunIt_AndNothingRuns(string? name)
    {
        await using var remote = await ConnectAsync(HubB);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() =>
            AllAsync(remote.RunCommandsAsync(Run("3f2a9c1e-0001"), null, name is null ? null : For(name), CancellationToken.None)));

        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task AHub_MayNotRelayAdministration_EvenForAnAdmin()
    {
        _fleet.Keys.Add(new KeyRecord { Fingerprint = "SHA256:pending", Status = KeyStatus.Pending, FirstSeen = DateTimeOffset.UnixEpoch, LastSeen = DateTimeOffset.UnixEpoch });
        await using var remote = await ConnectAsync(HubB);
        await using var call = await remote.Channel.StartAsync(OperatorOperations.ApproveKey,
            OperatorOperations.ToElement(new { id = "SHA256:pending" }), For("ada"), CancellationToken.None);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in call.ItemsAsync())
            {
            }
        });

        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Contains("not relayed", refused.Message, StringComparison.Ordinal);
        Assert.Equal(KeyStatus.Pending, _fleet.GetKey("SHA256:pending")!.Status);
    }

    [Fact]
    public async Task AnOperator_CannotClaimToActForAnother()
    {
        var alice = new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, "10.0.0.5");
        await using var remote = await ConnectAsync(alice);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() =>
            AllAsync(remote.RunCommandsAsync(Run("3f2a9c1e-0001"), null, For("ada"), CancellationToken.None)));

        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task ARelayedRequest_ReachesOnlyThisHubsClients_AndIsNeverRelayedAgain()
    {
        await using var remote = await ConnectAsync(HubB, _relay);
        var results = await AllAsync(remote.RunCommandsAsync(Run("web-*"), null, For("alice"), CancellationToken.None));

        Assert.Equal(3, results.Count);
        Assert.Equal(CommandStatus.Succeeded, results.Single(r => r.DisplayName == "web-01").Status);
        foreach (var (name, hub) in new[] { ("web-02", "hub-b"), ("web-03", "hub-c") })
        {
            var other = results.Single(r => r.DisplayName == name);
            Assert.Equal(CommandStatus.Error, other.Status);
            Assert.Contains($"connected to hub {hub}", other.Error, StringComparison.Ordinal);
            Assert.Contains("not relayed again", other.Error, StringComparison.Ordinal);
        }

        Assert.Equal(["web-01"], _transport.Called);
        Assert.Empty(_relay.Asked);
    }

    [Fact]
    public async Task AnOperatorsFanOut_SendsEachOtherHubsTargetsToThatHub_InOneCallEach()
    {
        var alice = new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, "10.0.0.5");
        await using var remote = await ConnectAsync(alice, _relay);
        var results = await AllAsync(remote.RunCommandsAsync(Run("web-*"), null, CancellationToken.None));

        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, r.Status));
        Assert.Equal("relayed by hub-b", results.Single(r => r.DisplayName == "web-02").Stdout);
        Assert.Equal("relayed by hub-c", results.Single(r => r.DisplayName == "web-03").Stdout);
        Assert.Equal(["web-01"], _transport.Called);
        Assert.Equal(["hub-b:web-02 for alice", "hub-c:web-03 for alice"], _relay.Asked.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task TheFleetStatus_AsksThisHubsClientsItself_AndTheOthersThroughTheirHubs()
    {
        _metrics.Answers["web-01"] = new MetricsResult();
        var alice = new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, "10.0.0.5");
        await using var remote = await ConnectAsync(alice, _relay);
        var status = await remote.FleetStatusAsync(CancellationToken.None);

        Assert.Equal(3, status.Online);
        Assert.Equal([("web-01", true)], _metrics.Asked);
        Assert.Equal(["hub-b:web-02 metrics for alice", "hub-c:web-03 metrics for alice"], _relay.Asked.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task WithoutARelay_TheOtherHubsTargetsAreToldWhichHubHoldsThem_WithoutATunnelAttempt()
    {
        var alice = new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, "10.0.0.5");
        await using var remote = await ConnectAsync(alice, relay: null);
        var results = await AllAsync(remote.RunCommandsAsync(Run("web-02"), null, CancellationToken.None));

        var only = Assert.Single(results);
        Assert.Equal(CommandStatus.Error, only.Status);
        Assert.Equal(FailureKind.Unreachable, only.Failure);
        Assert.Contains("connected to hub hub-b", only.Error, StringComparison.Ordinal);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task TheRelay_AnswersEveryTarget_WhenTheOtherHubIsUnknownDeadOrServesNoRelay()
    {
        var now = DateTimeOffset.UtcNow;
        var hubs = new Dictionary<string, HubRecord>
        {
            ["hub-dead"] = new("hub-dead", "h2", 1, now.AddHours(-1), now.AddMinutes(-5)) { Relay = new HubRelayEndpoint("eph@h2:22", "ssh-ed25519 AAAA", "ssh-ed25519 BBBB", "SHA256:x") },
            ["hub-plain"] = new("hub-plain", "h3", 1, now, now),
        };
        await using var relay = new HubRelay(id => hubs.GetValueOrDefault(id), "/nonexistent/relay_key");
        var targets = new[] { FakeFleet.Online("web-07"), FakeFleet.Online("web-08") };
        var who = new OperatorContext("alice", "cli+ssh");

        foreach (var (hub, why) in new[] { ("hub-gone", "not in the registry"), ("hub-dead", "has not been heard from"), ("hub-plain", "serves no relay") })
        {
            var results = await AllAsync(relay.RunCommandsAsync(hub, targets, new CommandRequest { Command = "true" }, new FleetOptions(), who, CancellationToken.None));
            Assert.Equal(["web-07", "web-08"], results.Select(r => r.DisplayName));
            Assert.All(results, r =>
            {
                Assert.Equal(CommandStatus.Error, r.Status);
                Assert.Contains($"connected to hub {hub}, which this hub could not reach", r.Error, StringComparison.Ordinal);
                Assert.Contains(why, r.Error, StringComparison.Ordinal);
            });
        }
    }

    /// <summary>Answers each relayed target "relayed by HUB" and records what it was asked.</summary>
    private sealed class FakeRelay : IFleetRelay
    {
        public ConcurrentQueue<string> Asked { get; } = new();

        public async IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(string hubId, IReadOnlyList<FleetTarget> targets, CommandRequest request,
            FleetOptions options, OperatorContext who, [EnumeratorCancellation] CancellationToken ct)
        {
            Asked.Enqueue($"{hubId}:{string.Join(",", targets.Select(t => t.DisplayName))} for {who.Actor}");
            foreach (var t in targets)
            {
                await Task.Yield();
                yield return FleetCommandResult.FromAnswer(t, FakeTransport.Exit(0, "relayed by " + hubId), 1);
            }
        }

        public async IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(string hubId, IReadOnlyList<FleetTarget> targets, bool summary,
            FleetMetricsOptions options, OperatorContext who, [EnumeratorCancellation] CancellationToken ct)
        {
            Asked.Enqueue($"{hubId}:{string.Join(",", targets.Select(t => t.DisplayName))} metrics for {who.Actor}");
            foreach (var t in targets)
            {
                await Task.Yield();
                yield return new ClientMetricsResult { Uuid = t.Uuid, DisplayName = t.DisplayName, Status = MetricsStatus.Unreachable, Error = "relayed by " + hubId };
            }
        }

        public IAsyncEnumerable<FleetFileOutcome<T>> FilesAsync<T>(string hubId, string op, IReadOnlyList<FleetTarget> targets, FileOperationArgs args,
            OperatorContext who, CancellationToken ct)
            where T : class => throw new NotSupportedException();
    }
}

/// <summary>
/// A front end on a server host over a shared PostgreSQL registry (local verbs, cmdlets, MCP without --server): the
/// clients of hubs on other hosts are answered with an error saying how to reach them, not tried through a tunnel port
/// that is on another host; the clients of hubs on this host are reached as before. On SQLite nothing changes.
/// </summary>
public sealed class FrontEndRoutingTests
{
    [Theory]
    [InlineData(TestEngine.Postgres)]
    [InlineData(TestEngine.Sqlite)]
    public async Task AFrontEnd_RefusesTheClientsOfHubsOnOtherHosts_OnAPostgresRegistry(TestEngine engine)
    {
        using var temp = new TempData();
        using var registry = TestRegistries.Open(engine, temp.Dir);
        foreach (var (fp, name, host, hub) in new[] { (Keys.A, "near-01", Environment.MachineName, "hub-here"), (Keys.B, "far-01", "far-host", "hub-far") })
        {
            registry.RecordPendingKey(fp, null, Keys.Identity(host: name, name: name));
            registry.ApproveKey(fp, "tester");
            var client = registry.AdmitClient(fp, Keys.Identity(host: name, name: name));
            var session = registry.OpenSession(client.Uuid, fp, host, 40_000 + name.Length, new byte[32], Environment.ProcessId, 1, hub);
            registry.MarkSessionOnline(session.Id);
        }

        var stores = RegistryStores.Borrow(registry);
        var transport = new FakeTransport();
        using var services = new OperatorServices(stores, new OperatorContext("tester", Surfaces.Cli), ownsRegistry: false)
        {
            CommandTransport = _ => transport,
            Routing = HubRouting.ForFrontEnd(stores),
        };
        var results = new List<FleetCommandResult>();
        await foreach (var r in services.RunCommandsAsync(services.Targets(new TargetSelection { Clients = ["near-01", "far-01"] }), new CommandRequest { Command = "true" }))
        {
            results.Add(r);
        }

        Assert.Equal(CommandStatus.Succeeded, results.Single(r => r.DisplayName == "near-01").Status);
        var far = results.Single(r => r.DisplayName == "far-01");
        if (engine == TestEngine.Postgres)
        {
            Assert.Equal(CommandStatus.Error, far.Status);
            Assert.Contains("connected to hub hub-far on host far-host", far.Error, StringComparison.Ordinal);
            Assert.Contains("--server", far.Error, StringComparison.Ordinal);
            Assert.Equal(["near-01"], transport.Called);
        }
        else
        {
            Assert.Equal(CommandStatus.Succeeded, far.Status);
            Assert.Equal(2, transport.Calls);
        }
    }
}
