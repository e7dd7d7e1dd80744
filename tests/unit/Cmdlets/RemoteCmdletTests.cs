using System.Management.Automation;
using System.Net.Sockets;
using System.Reflection;
using EtPhoneHome;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Cmdlets;

/// <summary>
/// What the cmdlets do with a server connection, over a real operator service on a socket pair (the tests cannot host
/// PowerShell; Remote.Tests.ps1 runs the cmdlets themselves through the sandbox's sshd): the objects built from what the
/// server sends, the error records of its refusals, the remote fan-out of transfers, completion, and which cmdlets refuse.
/// </summary>
public sealed class RemoteCmdletTests : IAsyncLifetime
{
    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-rcmd-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _serving = [];
    private readonly List<Socket> _sockets = [];
    private OperatorRole _role = OperatorRole.Operator;

    public RemoteCmdletTests()
    {
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
        _fleet.AddClient("9b1c0000-0003", "db-01", false, 0, "db");
    }

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        await Task.WhenAll(_serving).WaitAsync(TimeSpan.FromSeconds(20));
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>A new operator-service connection, as RemoteServer opens one per (re)connect.</summary>
    private async Task<RemoteOperator> OpenAsync(CancellationToken ct)
    {
        var (client, server) = await EtPhoneHome.Tests.Unit.Hub.UnixSocketPair.ConnectAsync(_dir, "s" + _sockets.Count, ct);
        _sockets.Add(client);
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, _role, "10.0.0.5"))
        {
            CommandTransport = _ => _transport,
            HostName = "hub-test",
        };
        _serving.Add(service.ServeAsync(new NetworkStream(server, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", _role, "10.0.0.5"), _stop.Token));
        var stream = new NetworkStream(client, ownsSocket: false);
        return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.PowerShell, ct);
    }

    private EphRemoteSession Session() =>
        new(new RemoteServer(new ServerAddress("hub.example") { User = "ops" }, HostKey.Parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0mDcHDHricFye1yCfh6FHxzgWXPzt9ep9ORfxdi83x"), OpenAsync), "prod");

    [Fact]
    public async Task RemoteSearch_GivesTheSameClientObjects_AsTheLocalRegistry()
    {
        var session = Session();
        var op = await session.Server.GetAsync(CancellationToken.None);
        var found = await op.SearchAsync(new ClientQuery { Names = ["web-*"], OnlineOnly = true }, CancellationToken.None);
        var local = ClientQueries.Search(_fleet.Stores().Clients, new ClientQuery { Names = ["web-*"], OnlineOnly = true });

        var remote = found.Clients.Select(c => new EphClient(c)).ToList();
        var here = local.Clients.Select(c => new EphClient(c)).ToList();
        Assert.Equal(["web-01", "web-02"], remote.Select(c => c.Name));
        Assert.Equal(here.Select(c => (c.Uuid, c.Name, c.Online, string.Join(",", c.Tags))), remote.Select(c => (c.Uuid, c.Name, c.Online, string.Join(",", c.Tags))));
        await session.Server.DisposeAsync();
    }

    [Fact]
    public async Task AReadersRefusedFanOut_IsAPermissionDeniedError_NamingTheRoleNeeded_AndNothingRuns()
    {
        _role = OperatorRole.Reader;
        var session = Session();
        var op = await session.Server.GetAsync(CancellationToken.None);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in op.RunCommandsAsync(new RunCommandsArgs
            {
                Targets = new TargetSelection { Clients = ["web-01"] },
                Request = new CommandRequest { Command = "rm -rf /" },
            }, null, CancellationToken.None))
            {
            }
        });

        var record = RemoteErrors.Describe(refused, session);
        Assert.Equal("OperatorRoleRequired", record.Id);
        Assert.Equal(ErrorCategory.PermissionDenied, record.Category);
        Assert.Contains("needs the operator role", record.Message, StringComparison.Ordinal);
        Assert.Contains("'alice' with the reader role", record.Message, StringComparison.Ordinal);
        Assert.Equal(0, _transport.Calls);
        await session.Server.DisposeAsync();
    }

    [Fact]
    public async Task ARemoteFanOut_GivesTheSameResultObjects()
    {
        _transport.Answer("web-01", FakeTransport.Exit(0, "one\ntwo\n"));
        _transport.Answer("web-02", FakeTransport.Exit(3, "three"));
        var session = Session();
        var op = await session.Server.GetAsync(CancellationToken.None);
        var results = new List<EphCommandResult>();
        await foreach (var r in op.RunCommandsAsync(new RunCommandsArgs
        {
            Targets = new TargetSelection { Clients = ["3f2a9c1e-0001", "3f2a9c1e-0002", "9b1c0000-0003"] },
            Request = new CommandRequest { Command = "uptime" },
        }, null, CancellationToken.None))
        {
            results.Add(new EphCommandResult(r));
        }

        Assert.Equal(["one", "two"], results.Single(r => r.PSComputerName == "web-01").Output);
        Assert.Equal(3, results.Single(r => r.PSComputerName == "web-02").ExitCode);
        Assert.Equal(EphCommandStatus.Offline, results.Single(r => r.PSComputerName == "db-01").Status);
        await session.Server.DisposeAsync();
    }

    [Fact]
    public void ServerRefusals_MapToTheLocalErrorIds()
    {
        var notFound = RemoteErrors.Describe(new OperatorRemoteException(new OperatorError { Code = OperatorErrorCodes.NotFound, Message = "x", Names = ["web-99"] }), null);
        Assert.Equal("ClientNotFound", notFound.Id);
        Assert.Equal(ErrorCategory.ObjectNotFound, notFound.Category);
        Assert.Contains("'web-99'", notFound.Message, StringComparison.Ordinal);

        var invalid = RemoteErrors.Describe(new OperatorRemoteException(new OperatorError { Code = OperatorErrorCodes.InvalidArgument, Message = "bad timeout", Field = "timeout" }), null,
            invalidArgumentId: "InvalidCommandRequest");
        Assert.Equal("InvalidCommandRequest", invalid.Id);
        Assert.Equal(ErrorCategory.InvalidArgument, invalid.Category);
        Assert.Equal("timeout", invalid.Target);

        var limited = RemoteErrors.Describe(new OperatorRemoteException(new OperatorError { Code = OperatorErrorCodes.RateLimited, Message = "slow down" }), null);
        Assert.Equal("RateLimited", limited.Id);

        var changed = RemoteErrors.DescribeConnection(new HostKeyChangedException("pinned SHA256:a, offered SHA256:b", "SHA256:a", "SHA256:b"), null, "hub:22");
        Assert.Equal("ServerHostKeyChanged", changed.Id);
        Assert.Equal(ErrorCategory.SecurityError, changed.Category);
        Assert.Contains("SHA256:a", changed.Message, StringComparison.Ordinal);
        Assert.Contains("SHA256:b", changed.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RemoteTransfers_AnswerEveryTarget_AtMostTheThrottleAtOnce()
    {
        var targets = Enumerable.Range(1, 6).Select(i => new FleetTarget($"u{i}", $"c{i}", null)).ToList();
        var running = 0;
        var most = 0;
        var outcomes = new List<FleetFileOutcome<FileTransferResult>>();
        await foreach (var o in RemoteTransfers.RunAsync(targets, 2, async (t, ct) =>
        {
            most = Math.Max(most, Interlocked.Increment(ref running));
            await Task.Delay(20, ct);
            Interlocked.Decrement(ref running);
            return t.DisplayName == "c3"
                ? throw new OperatorRemoteException(new OperatorError { Code = OperatorErrorCodes.NotFound, Message = "no such file" })
                : new FileTransferResult { Uuid = "", DisplayName = "", Direction = TransferDirection.ToClient, LocalPath = "l", RemotePath = "r", Size = 1, Sha256 = "ab" };
        }, CancellationToken.None))
        {
            outcomes.Add(o);
        }

        Assert.Equal(6, outcomes.Count);
        Assert.True(most <= 2, $"{most} transfers ran at once");
        var failed = Assert.Single(outcomes, o => o.Status != CommandStatus.Succeeded);
        Assert.Equal("c3", failed.Target.DisplayName);
        Assert.Equal(FailureKind.NotFound, failed.Failure);
        Assert.All(outcomes.Where(o => o.Status == CommandStatus.Succeeded), o => Assert.Equal(o.Target.Uuid, o.Value!.Uuid));
    }

    [Fact]
    public async Task RemoteTransfers_ARoleRefusal_EndsTheWholeRun_ReportedOnce()
    {
        var targets = Enumerable.Range(1, 4).Select(i => new FleetTarget($"u{i}", $"c{i}", null)).ToList();
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in RemoteTransfers.RunAsync(targets, 1, (t, ct) =>
                Task.FromException<FileTransferResult>(new OperatorRemoteException(new OperatorError { Code = OperatorErrorCodes.Forbidden, Message = "files.upload needs the operator role", Needs = "operator" })),
                CancellationToken.None))
            {
            }
        });
        Assert.Equal("operator", refused.Error.Needs);
    }

    [Fact]
    public async Task Completion_ThroughTheServer_AnswersLikeTheRegistry()
    {
        var session = Session();
        var clients = session.CompletionClients(TimeSpan.FromSeconds(10));
        var remote = FleetCompletions.ClientNames(new SnapshotClientStore(clients), "web");
        var local = FleetCompletions.ClientNames(_fleet.Stores().Clients, "web");
        Assert.Equal(local.Select(c => c.Text), remote.Select(c => c.Text));
        Assert.Equal(["3f2a9c1e-0001", "3f2a9c1e-0002"], FleetCompletions.ClientIds(new SnapshotClientStore(clients), "3f2a").Select(c => c.Text));

        // Cached: a second completion within the lifetime asks the server nothing (the connection count stays).
        var connects = session.Server.Connects;
        Assert.Same(clients, session.CompletionClients(TimeSpan.FromSeconds(10)));
        Assert.Equal(connects, session.Server.Connects);
        await session.Server.DisposeAsync();
    }

    [Fact]
    public void NotAvailableRemotely_NamesTheCmdlet_AndSaysWhereToRunIt()
    {
        var message = EphCmdlet.NotAvailableRemotelyMessage("Backup-EphRegistry", Session());
        Assert.Contains("Backup-EphRegistry", message, StringComparison.Ordinal);
        Assert.Contains("ops@hub.example", message, StringComparison.Ordinal);
        Assert.Contains("server host", message, StringComparison.Ordinal);
    }

    /// <summary>The cmdlets that go through the server; every other cmdlet must refuse while connected.</summary>
    private static readonly string[] s_remote =
    [
        "Get-EphClient", "Invoke-EphCommand", "Copy-EphFile", "Get-EphClientMetric", "Get-EphFleetStatus", "Get-EphHistory", "Get-EphClientKey",
        "Set-EphClient", "Remove-EphClient", "Approve-EphClientKey", "Revoke-EphClientKey",
        "Get-EphFileContent", "Set-EphFileContent", "Get-EphChildItem", "Get-EphRateLimitStats", "Get-EphWebhookDelivery", "Send-EphWebhookDelivery",
        "Get-EphOperator", "Add-EphOperator", "Set-EphOperator", "Remove-EphOperator",
        "Get-EphConfiguration", "Connect-EphServer", "Disconnect-EphServer", "Get-EphServerConnection", "Remove-EphServerHostKey",
        "Send-EphExchangeFile", "Receive-EphExchangeFile", "Get-EphExchangeFile", "Remove-EphExchangeFile", "New-EphExchangeUploadUrl", "Initialize-EphExchange",
    ];

    [Fact]
    public void OnlyCmdletsWithARemoteOperation_RunWhileConnected()
    {
        var supports = typeof(EphCmdlet).GetProperty("SupportsRemote", BindingFlags.Instance | BindingFlags.NonPublic)!;
        var cmdlets = typeof(EphCmdlet).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(EphCmdlet).IsAssignableFrom(t))
            .Select(t => (Type: t, Attribute: t.GetCustomAttributesData().SingleOrDefault(d => d.AttributeType == typeof(CmdletAttribute))))
            .Where(t => t.Attribute is not null)
            .ToDictionary(t => $"{t.Attribute!.ConstructorArguments[0].Value}-{t.Attribute.ConstructorArguments[1].Value}",
                t => (bool)supports.GetValue(Activator.CreateInstance(t.Type))!);
        Assert.True(cmdlets.Count > s_remote.Length);
        Assert.Equal(s_remote.Order(StringComparer.Ordinal), cmdlets.Where(c => c.Value).Select(c => c.Key).Order(StringComparer.Ordinal));
    }
}
