using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Revokes client keys and disconnects their clients now; sshd refuses a revoked key from then on.</summary>
[Cmdlet(VerbsSecurity.Revoke, "EphClientKey", HelpUri = HelpLinks.Base + "Revoke-EphClientKey.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = FingerprintSet)]
[OutputType(typeof(EphClientKey))]
public sealed class RevokeEphClientKeyCommand : EphAsyncCmdlet
{
    public const string FingerprintSet = "Fingerprint";
    public const string UuidSet = "Uuid";

    /// <summary>Key fingerprints (SHA256:…).</summary>
    [Parameter(ParameterSetName = FingerprintSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyFingerprintCompleter))]
    public string[]? Fingerprint { get; set; }

    /// <summary>Client uuids: revokes the key each client is pinned to.</summary>
    [Parameter(ParameterSetName = UuidSet, Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Id", "ClientId")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? Uuid { get; set; }

    /// <summary>Writes the key after the decision.</summary>
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
        foreach (var id in (ParameterSetName == UuidSet ? Uuid : Fingerprint) ?? [])
        {
            if (!KeyAdministration.Exists(registry.Keys, registry.Clients, id))
            {
                WriteError(NewError(Strings.KeyNotFoundId, ErrorCategory.ObjectNotFound, id, string.Format(CultureInfo.CurrentCulture, Strings.KeyNotFound, id)));
                continue;
            }

            var target = string.Format(CultureInfo.CurrentCulture, Strings.KeyTarget, id);
            if (ParameterSetName == UuidSet && registry.Clients.GetClient(id) is { } client)
            {
                target = string.Format(CultureInfo.CurrentCulture, Strings.KeyTargetOfClient, client.KeyFingerprint, ClientText.Describe(client.DisplayName, client.Uuid));
            }

            if (!await ShouldProcessAsync(target, Strings.RevokeKeyAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var report = KeyAdministration.Revoke(registry.Keys, id, OperatorContext.ForSurface(Surfaces.PowerShell));
                var outcome = report.Outcome;
                WriteVerbose(outcome.AlreadyRevoked
                    ? string.Format(CultureInfo.CurrentCulture, Strings.VerboseAlreadyRevoked, outcome.Fingerprint)
                    : string.Format(CultureInfo.CurrentCulture, Strings.VerboseRevoked, outcome.Fingerprint, outcome.ClosedSessions.Count, report.SignalledGatePids.Count));
                if (PassThru && registry.Keys.GetKey(outcome.Fingerprint) is { } key)
                {
                    WriteObject(new EphClientKey(key));
                }
            }
            catch (KeyDecisionException ex)
            {
                WriteError(NewError(Strings.KeyDecisionNeededId, ErrorCategory.InvalidOperation, id, ex.Message, ex));
            }
            catch (RegistryNotFoundException ex)
            {
                WriteError(NewError(Strings.KeyNotFoundId, ErrorCategory.ObjectNotFound, id, ex.Message, ex));
            }
        }
    }

    /// <summary>The same decision through the server (an admin's operation there); unknown keys are the server's NOT_FOUND.</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        await RemoteKeyDecisions.RunAsync(this, op, (ParameterSetName == UuidSet ? Uuid : Fingerprint) ?? [],
            id => ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.KeyTarget, id), Strings.RevokeKeyAction),
            async id =>
            {
                var outcome = await op.RevokeKeyAsync(id, ct).ConfigureAwait(false);
                WriteVerbose(outcome.AlreadyRevoked
                    ? string.Format(CultureInfo.CurrentCulture, Strings.VerboseAlreadyRevoked, outcome.Fingerprint)
                    : string.Format(CultureInfo.CurrentCulture, Strings.VerboseRevoked, outcome.Fingerprint, outcome.ClosedSessions.Count, 0));
                return outcome.Fingerprint;
            },
            PassThru, ct).ConfigureAwait(false);
    }
}
