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

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            await RemoteAsync(ct).ConfigureAwait(false);
            return;
        }

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

    /// <summary>The same removal through the server (an admin's operation there).</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        var lookup = await op.SearchAsync(new ClientQuery { Names = Id }, ct).ConfigureAwait(false);
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
                var outcome = await op.RemoveClientAsync(client.Uuid, ct).ConfigureAwait(false);
                WriteVerbose(string.Format(CultureInfo.CurrentCulture, "Removed {0} through the server: {1} key(s) revoked, {2} session(s) closed.",
                    ClientText.Describe(client.DisplayName, client.Uuid), outcome.RevokedFingerprints.Count, outcome.ClosedSessions.Count));
                if (PassThru)
                {
                    WriteObject(new EphClient(client with { RemovedAt = DateTimeOffset.UtcNow }));
                }
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(RemoteTargetError(ex, client.Uuid, null));
            }
        }
    }
}
