using System.Text.Json;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Health;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// The operator service's file, webhook, key, operator and fleet-status operations over a real registry and a real
/// agent: what the cmdlets, the CLI and MCP get through a server connection, and what the history records of it.
/// </summary>
public sealed class OperatorServiceRegistryTests : IAsyncLifetime
{
    private readonly RemoteRegistryHarness _hub = new();

    public Task InitializeAsync() => _hub.StartAsync();

    public Task DisposeAsync() => _hub.DisposeAsync().AsTask();

    private Task<RemoteOperator> ConnectAsync() => _hub.ConnectAsync(Surfaces.PowerShell, CancellationToken.None);

    private static TargetSelection Web01 => new() { Clients = ["web-01"] };

    private static async Task<List<T>> All<T>(IAsyncEnumerable<T> items)
    {
        var list = new List<T>();
        await foreach (var item in items)
        {
            list.Add(item);
        }

        return list;
    }

    [Fact]
    public async Task Files_WrittenReadAndListed_ThroughTheService_AreTheAgentsAnswers_RecordedWithRoleAndSource()
    {
        await using var remote = await ConnectAsync();
        var path = Path.Combine(_hub.RemoteDir, "conf", "app.ini");

        var written = Assert.Single(await All(remote.WriteFilesAsync(Web01, new WriteFileParams { Path = path, Content = "a = 1\n", Encoding = FileEncodings.Utf8, CreateParents = true }, 4, null, CancellationToken.None)));
        var read = Assert.Single(await All(remote.ReadFilesAsync(Web01, new ReadFileParams { Path = path }, 4, null, CancellationToken.None)));
        var listed = Assert.Single(await All(remote.ListFilesAsync(Web01, new ListFilesParams { Path = Path.GetDirectoryName(path)! }, 4, null, CancellationToken.None)));

        Assert.Equal(CommandStatus.Succeeded, written.Status);
        Assert.True(written.Value!.Created);
        Assert.Equal("a = 1\n", File.ReadAllText(path));
        Assert.Equal("a = 1\n", read.Value!.Content);
        Assert.Equal(("web-01", _hub.Client.Uuid), (read.Target.DisplayName, read.Target.Uuid));
        Assert.Equal(["app.ini"], listed.Value!.Entries.Select(e => e.Name));

        var recorded = _hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.WriteFile, OperationNames.ReadFile, OperationNames.ListFiles] });
        Assert.Equal(3, recorded.Count);
        Assert.All(recorded, e => Assert.Equal(("alice", "pwsh+ssh", "operator", "10.0.0.5"), (e.Actor, e.Surface, e.Role, e.Source)));
    }

    [Fact]
    public async Task AFileThatIsNotThere_IsTheAgentsNotFound_ForThatTarget()
    {
        await using var remote = await ConnectAsync();
        var missing = Assert.Single(await All(remote.ReadFilesAsync(Web01, new ReadFileParams { Path = Path.Combine(_hub.RemoteDir, "nope") }, 4, null, CancellationToken.None)));
        Assert.Equal(FailureKind.NotFound, missing.Failure);
        Assert.Null(missing.Value);
    }

    [Fact]
    public async Task AReader_IsRefusedAWrite_NamingTheRoleItNeeds_AndNothingIsWritten()
    {
        _hub.Role = OperatorRole.Reader;
        await using var remote = await ConnectAsync();
        var path = Path.Combine(_hub.RemoteDir, "reader.txt");
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() =>
            All(remote.WriteFilesAsync(Web01, new WriteFileParams { Path = path, Content = "x", Encoding = FileEncodings.Utf8 }, 4, null, CancellationToken.None)));
        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal("operator", refused.Error.Needs);
        Assert.Contains("reader", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(path));
        Assert.Empty(_hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.WriteFile] }));
    }

    [Fact]
    public async Task OperatorChanges_ThroughTheService_AreRecordedWithTheAdminsRoleAndSource()
    {
        _hub.Role = OperatorRole.Admin;
        await using var remote = await ConnectAsync();
        var added = await remote.AddOperatorAsync("carol", RemoteRegistryHarness.OperatorKeyLine, OperatorRole.Reader, CancellationToken.None);
        await remote.SetOperatorRoleAsync("carol", OperatorRole.Operator, CancellationToken.None);
        var removed = await remote.RemoveOperatorAsync(added.Fingerprint, CancellationToken.None);
        Assert.NotNull(removed.RemovedAt);
        Assert.Contains(await remote.ListOperatorsAsync(includeRemoved: true, CancellationToken.None), o => o.Name == "carol");

        var recorded = _hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.AddOperator, OperationNames.SetOperatorRole, OperationNames.RemoveOperator] });
        Assert.Equal(3, recorded.Count);
        Assert.All(recorded, e => Assert.Equal(("alice", "pwsh+ssh", "admin", "10.0.0.5"), (e.Actor, e.Surface, e.Role, e.Source)));
    }

    [Fact]
    public async Task ClientEdits_AndKeyDecisions_ThroughTheService_RecordRoleAndSource_LocalOnesDoNot()
    {
        _hub.Role = OperatorRole.Admin;
        await using var remote = await ConnectAsync();
        await remote.UpdateClientAsync("web-01", new ClientUpdate { Purpose = "front end" }, CancellationToken.None);
        await remote.RevokeKeyAsync(Keys.A, CancellationToken.None);
        _hub.Registry.UpdateClient(_hub.Client.Uuid, new ClientUpdate { Purpose = "local" }, "root", "cli");

        var remoteEntries = _hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.UpdateClient, OperationNames.RevokeKey] })
            .Where(e => e.Actor == "alice").ToList();
        Assert.Equal(2, remoteEntries.Count);
        Assert.All(remoteEntries, e => Assert.Equal(("admin", "10.0.0.5"), (e.Role, e.Source)));
        var local = Assert.Single(_hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.UpdateClient] }), e => e.Actor == "root");
        Assert.Equal((null, null), (local.Role, local.Source));
    }

    [Fact]
    public async Task ListKeys_ForOneFingerprint_SendsThatKeyAlone()
    {
        Keys.Admit(_hub.Registry, Keys.B, Keys.Identity(host: "web-02", name: "web-02"));
        await using var remote = await ConnectAsync();
        var answer = await remote.InvokeAsync(OperatorOperations.ListKeys, new { fingerprint = Keys.B }, CancellationToken.None);
        var keys = OperatorOperations.FromElement<KeyRecord[]>(answer);
        Assert.Equal([Keys.B], keys.Select(k => k.Fingerprint));
        Assert.Equal(Keys.B, (await remote.GetKeyAsync(Keys.B, CancellationToken.None))!.Fingerprint);
        Assert.Null(await remote.GetKeyAsync("SHA256:nosuch", CancellationToken.None));
        Assert.Equal(2, (await remote.ListKeysAsync(false, CancellationToken.None)).Count);
    }

    [Fact]
    public async Task WebhookDeliveries_ThroughTheService_NeverCarryTheUrlsCredentials_AndAResendIsRecorded()
    {
        var delivery = _hub.Registry.RecordEvent(WebhookEvents.ClientConnected, _hub.Client.Uuid);
        _hub.Registry.RecordWebhookAttempt(new WebhookAttemptResult
        {
            EventId = delivery.Id,
            Url = "https://hook:s3cret@hooks.example/in?token=t0ken",
            StatusCode = 500,
            Error = "server error",
            DurationMs = 5,
            Delivered = false,
        });
        _hub.Role = OperatorRole.Reader;
        await using (var reader = await ConnectAsync())
        {
            var page = await reader.WebhookDeliveriesAsync(new WebhookDeliveryQuery { Uuids = [_hub.Client.Uuid], Status = WebhookDeliveryStatus.Failed }, CancellationToken.None);
            var row = Assert.Single(page.Deliveries);
            var attempt = Assert.Single(page.Attempts);
            var text = JsonSerializer.Serialize(page);
            Assert.DoesNotContain("s3cret", text, StringComparison.Ordinal);
            Assert.DoesNotContain("t0ken", text, StringComparison.Ordinal);
            Assert.StartsWith("https://hooks.example/in", row.Url, StringComparison.Ordinal);
            Assert.StartsWith("https://hooks.example/in", attempt.Url, StringComparison.Ordinal);
            // The client.connected event of the session names its tunnel port; the operator connection never carries one.
            var all = await reader.WebhookDeliveriesAsync(new WebhookDeliveryQuery(), CancellationToken.None);
            Assert.Contains(_hub.Registry.ListWebhookDeliveries(new WebhookDeliveryQuery()), d => d.Payload.Contains("tunnel_port", StringComparison.Ordinal));
            Assert.Equal(_hub.Registry.ListWebhookDeliveries(new WebhookDeliveryQuery()).Count, all.Deliveries.Count);
            Assert.All(all.Deliveries, d => Assert.DoesNotContain("tunnel_port", d.Payload, StringComparison.Ordinal));
            Assert.All(all.Deliveries.Where(d => d.Uuid is not null), d => Assert.Equal("web-01", JsonDocument.Parse(d.Payload).RootElement.GetProperty("client").GetProperty("display_name").GetString()));
            var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => reader.ResendWebhookAsync(delivery.Id.ToString(System.Globalization.CultureInfo.InvariantCulture), CancellationToken.None));
            Assert.Equal("operator", refused.Error.Needs);
        }

        _hub.Role = OperatorRole.Operator;
        await using var remote = await ConnectAsync();
        var queued = await remote.ResendWebhookAsync(delivery.DeliveryId, CancellationToken.None);
        Assert.Equal(WebhookDeliveryStatus.Pending, queued.Status);
        var missing = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.ResendWebhookAsync("999999", CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.NotFound, missing.Code);
        var resent = Assert.Single(_hub.Registry.QueryHistory(new HistoryQuery { Operations = [OperationNames.ResendWebhook] }));
        Assert.Equal(("operator", "10.0.0.5"), (resent.Role, resent.Source));
    }

    [Fact]
    public async Task FleetStatus_AppliesTheThresholdsSent()
    {
        _hub.Metrics.Answers["web-01"] = ScriptedMetrics.Summary(cpu: 10, memory: 50, disk: 20);
        await using var remote = await ConnectAsync();
        var defaults = await remote.FleetStatusAsync(CancellationToken.None);
        var strict = await remote.FleetStatusAsync(new FleetStatusArgs { Thresholds = new FleetThresholds { CpuPercent = 5, MemoryPercent = 40, DiskPercent = 10 }, ThrottleLimit = 2, TimeoutSeconds = 5 }, CancellationToken.None);

        Assert.Empty(defaults.OverMemory);
        Assert.Equal(["web-01"], strict.OverMemory.Select(c => c.DisplayName));
        Assert.Equal(["web-01"], strict.OverCpu.Select(c => c.DisplayName));
        Assert.Equal(["web-01"], strict.OverDisk.Select(c => c.DisplayName));
        var invalid = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.FleetStatusAsync(new FleetStatusArgs { Thresholds = new FleetThresholds { CpuPercent = 150 } }, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.InvalidArgument, invalid.Code);
    }
}
