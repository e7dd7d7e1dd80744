using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Queues webhook deliveries again (failed ones, typically); the hub sends them with a fresh set of attempts.</summary>
[Cmdlet(VerbsCommunications.Send, "EphWebhookDelivery", HelpUri = HelpLinks.Base + "Send-EphWebhookDelivery.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(EphWebhookDelivery))]
public sealed class SendEphWebhookDeliveryCommand : EphAsyncCmdlet
{
    /// <summary>Delivery ids (the delivery uuid or the numeric outbox id).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[] DeliveryId { get; set; } = [];

    /// <summary>Writes the queued delivery.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        foreach (var id in DeliveryId)
        {
            var row = registry.Webhooks.GetWebhookDelivery(id);
            if (row is null)
            {
                WriteError(NewError(Strings.WebhookDeliveryNotFoundId, ErrorCategory.ObjectNotFound, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.WebhookDeliveryNotFound, id)));
                continue;
            }

            var target = string.Format(CultureInfo.CurrentCulture, Strings.ResendTarget, row.Id, row.Event, row.Status);
            if (!await ShouldProcessAsync(target, Strings.ResendAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var queued = registry.Webhooks.ResendWebhookDelivery(id, $"{Environment.UserName} (pwsh)");
                if (PassThru)
                {
                    WriteObject(new EphWebhookDelivery(queued, null, registry.Webhooks.ListWebhookAttempts([queued.Id])));
                }
            }
            catch (InvalidOperationException ex)
            {
                WriteError(NewError(Strings.WebhookDeliveryQueuedId, ErrorCategory.ResourceBusy, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.WebhookDeliveryQueued, ex.Message), ex));
            }
            catch (RegistryNotFoundException ex)
            {
                WriteError(NewError(Strings.WebhookDeliveryNotFoundId, ErrorCategory.ObjectNotFound, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.WebhookDeliveryNotFound, id), ex));
            }
        }
    }
}
