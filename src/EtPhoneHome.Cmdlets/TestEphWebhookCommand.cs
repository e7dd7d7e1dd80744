using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;

namespace EtPhoneHome;

/// <summary>Sends a signed webhook.test event now and reports the receiver's HTTP status and the time it took.</summary>
[Cmdlet(VerbsDiagnostic.Test, "EphWebhook", HelpUri = HelpLinks.Base + "Test-EphWebhook.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(EphWebhookTestResult))]
public sealed class TestEphWebhookCommand : EphAsyncCmdlet
{
    /// <summary>An http(s) URL to send to instead of the configured one.</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    public string? Url { get; set; }

    /// <summary>A client (uuid or display name): its own webhook URL is used, and it is described in the event.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string? ClientId { get; set; }

    /// <summary>Longest wait for the receiver, in seconds.</summary>
    [Parameter]
    [ValidateRange(1, 300)]
    public int TimeoutSec { get; set; } = 10;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        ClientRecord? client = null;
        if (ClientId is { } name)
        {
            var lookup = ClientQueries.Find(registry.Clients, [name], null, onlineOnly: false);
            if (lookup.Clients.Count != 1)
            {
                WriteError(lookup.Clients.Count == 0
                    ? NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, name, string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, name))
                    : NewError(Strings.AmbiguousClientId, ErrorCategory.InvalidArgument, name, string.Format(CultureInfo.CurrentCulture, Strings.AmbiguousClient, name, lookup.Clients.Count)));
                return;
            }

            client = lookup.Clients[0];
        }

        string url;
        try
        {
            url = WebhookAdministration.ResolveTestUrl(registry.Settings, WebhookConfiguration.Resolve(registry.Settings), Url, client);
        }
        catch (InvalidOperationException ex)
        {
            WriteError(NewError(Strings.WebhookNotConfiguredId, ErrorCategory.NotSpecified, ClientId, ex.Message, ex));
            return;
        }
        catch (ArgumentException ex)
        {
            WriteError(NewError(Strings.WebhookUrlInvalidId, ErrorCategory.InvalidArgument, Url, ex.Message, ex));
            return;
        }

        if (!await ShouldProcessAsync(WebhookConfiguration.Redact(url), Strings.TestWebhookAction).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            var result = await WebhookAdministration.TestAsync(registry.Settings, url, client, $"{Environment.UserName} (pwsh)",
                TimeSpan.FromSeconds(TimeoutSec), ct: ct).ConfigureAwait(false);
            WriteObject(new EphWebhookTestResult(result));
        }
        catch (InvalidOperationException ex)
        {
            WriteError(NewError(Strings.WebhookNotConfiguredId, ErrorCategory.NotSpecified, ClientId, ex.Message, ex));
        }
    }
}
