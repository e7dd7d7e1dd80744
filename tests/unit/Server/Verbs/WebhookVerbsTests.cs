using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class WebhookVerbsTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly SqliteRegistry _registry;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private readonly string _uuid;

    public WebhookVerbsTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        _uuid = Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01")).Uuid;
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot().Parse([.. args, "--data", _data.Dir.Path]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    private List<JsonElement> JsonLines() => _out.ToString()
        .Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public async Task Webhooks_Json_ListsDeliveriesNewestFirst_WithStateFields_AndFiltersByStatus()
    {
        _registry.RecordEvent(WebhookEvents.ClientUnhealthy, _uuid);

        Assert.Equal(0, await RunAsync("webhooks", "--json"));
        var rows = JsonLines();
        Assert.Equal(["client.unhealthy", "client.pending"], rows.Select(r => r.GetProperty("event").GetString()));
        Assert.Equal(["id", "delivery_id", "event", "uuid", "display_name", "status", "attempts", "created_at", "last_attempt_at",
                      "next_attempt_at", "delivered_at", "last_status_code", "last_error", "url"], rows[0].EnumerateObject().Select(p => p.Name));
        Assert.Equal("web-01", rows[0].GetProperty("display_name").GetString());
        Assert.Equal("pending", rows[0].GetProperty("status").GetString());

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("webhooks", "--status", "failed", "--json"));
        Assert.Empty(JsonLines());
        Assert.NotEqual(0, await RunAsync("webhooks", "--status", "lost"));
    }

    [Fact]
    public async Task Webhooks_Table_SaysWhetherASecretIsSet_NeverItsValue()
    {
        _registry.SetSetting(WebhookConfiguration.UrlSetting, "https://u:p@hooks.example/in?token=abc");
        _registry.SetSetting(WebhookConfiguration.SecretSetting, "very-secret-value");
        Assert.Equal(0, await RunAsync("webhooks"));
        var text = _out.ToString();
        Assert.Contains("Global webhook URL: https://hooks.example/in?…; secret: set", text);
        Assert.DoesNotContain("very-secret-value", text);
        Assert.DoesNotContain("token=abc", text);
        Assert.Contains("client.pending", text);
    }

    [Fact]
    public async Task WebhooksResend_QueuesAFailedDelivery_AndRefusesAPendingOne()
    {
        var row = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery()).Single();
        Assert.Equal(1, await RunAsync("webhooks", "resend", row.DeliveryId));
        Assert.Contains("already queued", _err.ToString());

        _registry.RecordWebhookAttempt(new WebhookAttemptResult { EventId = row.Id, Url = "http://x", StatusCode = 500, Error = "HTTP 500", DurationMs = 1, Delivered = false });
        Assert.Equal(WebhookDeliveryStatus.Failed, _registry.GetWebhookDelivery(row.DeliveryId)!.Status);
        Assert.Equal(0, await RunAsync("webhooks", "resend", row.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Equal(WebhookDeliveryStatus.Pending, _registry.GetWebhookDelivery(row.DeliveryId)!.Status);
        Assert.Equal(1, await RunAsync("webhooks", "resend", "no-such-id"));
    }

    [Fact]
    public async Task WebhooksTest_WithoutConfiguration_SaysWhatToSet()
    {
        Assert.Equal(1, await RunAsync("webhooks", "test", "--url", "http://127.0.0.1:9/none"));
        Assert.Contains("ETPHONEHOME_WEBHOOK_SECRET", _err.ToString());
    }

    [Fact]
    public async Task Limits_Json_HasTheReferenceFields()
    {
        _registry.UpdateClient(_uuid, new ClientUpdate { RateLimitRpm = 120 }, "t");
        var guard = new OperationGuard(_registry, new OperatorContext("alice", Surfaces.Cli));
        using (var lease = guard.Begin(_uuid, "run_command"))
        {
            lease.Complete(OperationStatus.Succeeded);
        }

        Assert.Equal(0, await RunAsync("limits", "web-01", "--json"));
        var row = Assert.Single(JsonLines());
        Assert.Equal(["uuid", "display_name", "requests_per_minute", "current_concurrent", "rpm_limit", "concurrent_limit", "rpm_warnings", "concurrent_warnings", "mode"],
            row.EnumerateObject().Select(p => p.Name));
        Assert.Equal((1, 0, 120, 10, "warn"), (row.GetProperty("requests_per_minute").GetInt32(), row.GetProperty("current_concurrent").GetInt32(),
            row.GetProperty("rpm_limit").GetInt32(), row.GetProperty("concurrent_limit").GetInt32(), row.GetProperty("mode").GetString()));

        Assert.Equal(OperatorVerbs.UsageError, await RunAsync("limits", "nope"));
        Assert.Contains("no client named 'nope'", _err.ToString());
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }
}
