using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Webhooks;

/// <summary>One spelling of a delivery's status for the registry's column, the verbs' --status and --json.</summary>
public abstract class WebhookDeliveryStatusesTests(TestEngine engine)
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; } = engine;

    [Fact]
    public void EveryStatus_HasOneSnakeCaseName_ThatParsesBack()
    {
        Assert.Equal(["pending", "delivered", "failed", "no_destination"], WebhookDeliveryStatuses.All);
        foreach (var status in Enum.GetValues<WebhookDeliveryStatus>())
        {
            Assert.Equal(status, WebhookDeliveryStatuses.Parse(WebhookDeliveryStatuses.Wire(status)));
        }
    }

    [Theory]
    [InlineData("NoDestination")]
    [InlineData("Delivered")]
    [InlineData("")]
    [InlineData(null)]
    public void AnythingElse_NamesNoStatus(string? text)
    {
        Assert.Null(WebhookDeliveryStatuses.Parse(text));
    }

    [Fact]
    public void TheRegistry_StoresAndReadsTheSameNames()
    {
        using var data = new TempData();
        using var registry = TestRegistries.Open(Engine, data.Dir);
        var pending = registry.RecordEvent("client.unhealthy", null);
        registry.MarkWebhookNoDestination(pending.Id);

        var listed = registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Status = WebhookDeliveryStatus.NoDestination });

        Assert.Equal(pending.Id, Assert.Single(listed).Id);
        Assert.Equal(WebhookDeliveryStatus.NoDestination, listed[0].Status);
    }
}

public sealed class WebhookDeliveryStatusesTestsOnSqlite() : WebhookDeliveryStatusesTests(TestEngine.Sqlite);

public sealed class WebhookDeliveryStatusesTestsOnPostgres() : WebhookDeliveryStatusesTests(TestEngine.Postgres);
