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

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            await RemoteAsync(ct).ConfigureAwait(false);
            return;
        }

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

    /// <summary>The same resend through the server (an operator's operation there): its NOT_FOUND and refusals as the local errors.</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        foreach (var id in DeliveryId)
        {
            if (!await ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.ResendTargetRemote, id, Remote!.Describe()), Strings.ResendAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var queued = await op.ResendWebhookAsync(id, ct).ConfigureAwait(false);
                if (PassThru)
                {
                    WriteObject(new EphWebhookDelivery(queued, null, []));
                }
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex) when (ex.Code == EtPhoneHome.Protocol.OperatorErrorCodes.NotFound)
            {
                WriteError(NewError(Strings.WebhookDeliveryNotFoundId, ErrorCategory.ObjectNotFound, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.WebhookDeliveryNotFound, id), ex));
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex) when (ex.Code == EtPhoneHome.Protocol.OperatorErrorCodes.Failed)
            {
                // The registry's refusal of a delivery already queued (its InvalidOperationException on the server).
                WriteError(NewError(Strings.WebhookDeliveryQueuedId, ErrorCategory.ResourceBusy, id,
                    string.Format(CultureInfo.CurrentCulture, Strings.WebhookDeliveryQueued, ex.Message), ex));
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(RemoteTargetError(ex, id, null));
            }
        }
    }
}
