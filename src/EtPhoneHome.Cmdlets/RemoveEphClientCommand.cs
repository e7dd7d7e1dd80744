using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Decommissions clients: revokes their keys, disconnects them now and hides them from Get-EphClient;
/// their history stays (Get-EphHistory).
/// </summary>
[Cmdlet(VerbsCommon.Remove, "EphClient", HelpUri = HelpLinks.Base + "Remove-EphClient.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(EphClient))]
public sealed class RemoveEphClientCommand : EphAsyncCmdlet
{
    /// <summary>Client uuids or display names (wildcards allowed); binds Id/Uuid of piped objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "ClientId")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? Id { get; set; }

    /// <summary>Writes each removed client (with RemovedAt set).</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry.Clients, names: Id, ids: null, onlineOnly: false);
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        foreach (var client in lookup.Clients)
        {
            if (!await ShouldProcessAsync(ClientText.Describe(client.DisplayName, client.Uuid), Strings.RemoveClientAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var report = ClientAdministration.Remove(registry.Clients, client.Uuid, OperatorContext.ForSurface(Surfaces.PowerShell));
                WriteVerbose(ClientAdministration.Describe(report));
                if (PassThru && registry.Clients.GetClient(client.Uuid) is { } removed)
                {
                    WriteObject(new EphClient(removed));
                }
            }
            catch (RegistryNotFoundException ex)
            {
                WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, client.Uuid, ex.Message, ex));
            }
        }
    }
}
