using EtPhoneHome.Agent;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Health;

/// <summary>get_metrics end to end over a real RpcServer: handshake, request, answer.</summary>
public sealed class MetricsRpcTests : IAsyncLifetime
{
    private const string Uuid = "0c3d1b7e-41f2-4d6a-9a8b-2e5f7c9d1a30";
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly RpcServer _server = new();

    public Task InitializeAsync()
    {
        _server.Start();
        _server.SetSession(_secret, Uuid, null);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _server.DisposeAsync();

    [Fact]
    public async Task GetMetrics_ThroughTheTunnel_AnswersBothForms()
    {
        await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, TimeSpan.FromSeconds(10), CancellationToken.None);

        var full = await tunnel.InvokeAsync(MetricsMethods.GetMetrics, new GetMetricsParams(), MetricsJson.Default.GetMetricsParams, MetricsJson.Default.MetricsResult, CancellationToken.None);
        Assert.InRange(full.CpuPercent!.Value, 0, 100);
        Assert.NotEmpty(full.Disks!);
        Assert.NotNull(full.ProcessCount);

        var summary = await tunnel.InvokeAsync(MetricsMethods.GetMetrics, new GetMetricsParams { Summary = true }, MetricsJson.Default.GetMetricsParams, MetricsJson.Default.MetricsResult, CancellationToken.None);
        Assert.NotNull(summary.MemoryPercent);
        Assert.Null(summary.Disks);
        Assert.Null(summary.Hostname);
    }

    [Fact]
    public async Task GetMetrics_WithBadParams_IsInvalidParams_AndTheConnectionStaysUsable()
    {
        await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, TimeSpan.FromSeconds(10), CancellationToken.None);
        var ex = await Assert.ThrowsAsync<RpcException>(() =>
            tunnel.InvokeAsync(MetricsMethods.GetMetrics, System.Text.Json.JsonDocument.Parse("{\"summary\":1}").RootElement, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.InvalidParams, ex.Code);

        var beat = await tunnel.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, CancellationToken.None);
        Assert.Equal(Uuid, beat.Uuid);
    }

    [Fact]
    public async Task MetricsClient_RecordsTheRequestInTheHistory()
    {
        using var data = new TempData();
        using var registry = SqliteRegistry.Open(data.Dir);
        var client = new MetricsClient { Guard = new OperationGuard(registry, new OperatorContext("alice", Surfaces.Cli)) };
        var target = new FleetTarget(Uuid, "web-01", FakeFleet.Session(Uuid, _server.Port, _secret));

        var metrics = await client.GetAsync(target, summary: true, CancellationToken.None);

        Assert.NotNull(metrics.UptimeS);
        var entry = Assert.Single(registry.ListAudit());
        Assert.Equal(("get_client_metrics", Uuid, "alice", "cli", "succeeded", "summary"), (entry.Operation, entry.Uuid, entry.Actor, entry.Surface, entry.Status, entry.Detail));
    }

    [Fact]
    public async Task MetricsClient_WrongSecret_Throws_AndRecordsAnError()
    {
        using var data = new TempData();
        using var registry = SqliteRegistry.Open(data.Dir);
        var client = new MetricsClient { Guard = new OperationGuard(registry, new OperatorContext("alice", Surfaces.PowerShell)) };
        var target = new FleetTarget(Uuid, "web-01", FakeFleet.Session(Uuid, _server.Port, TunnelHandshake.NewSecret()));

        await Assert.ThrowsAsync<ProtocolException>(() => client.GetAsync(target, summary: false, CancellationToken.None));

        var entry = Assert.Single(registry.ListAudit());
        Assert.Equal(("get_client_metrics", "error"), (entry.Operation, entry.Status));
    }
}
