using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Approves a pending key or resolves a key mismatch (the client is re-pinned to the new key and the old one
/// revoked). Approving a client that has no mismatch changes nothing and says so.
/// </summary>
[Cmdlet(VerbsLifecycle.Approve, "EphClientKey", HelpUri = HelpLinks.Base + "Approve-EphClientKey.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = FingerprintSet)]
[OutputType(typeof(EphClientKey))]
public sealed class ApproveEphClientKeyCommand : EphAsyncCmdlet
{
    public const string FingerprintSet = "Fingerprint";
    public const string UuidSet = "Uuid";

    /// <summary>Key fingerprints (SHA256:…), such as those of Get-EphClientKey -Pending.</summary>
    [Parameter(ParameterSetName = FingerprintSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KeyFingerprintCompleter))]
    public string[]? Fingerprint { get; set; }

    /// <summary>Client uuids: approves the key that claims the client in a mismatch.</summary>
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

            // Re-pinning a client to a new key names both keys and which one will be trusted.
            var target = string.Format(CultureInfo.CurrentCulture, Strings.KeyTarget, id);
            if (registry.Keys.GetKey(id.Trim()) is { IsMismatch: true, ClaimedUuid: { } claimed } claim && registry.Clients.GetClient(claimed) is { } pinnedClient)
            {
                target = string.Format(CultureInfo.CurrentCulture, Strings.KeyReplacesTarget, claim.Fingerprint,
                    ClientText.Describe(pinnedClient.DisplayName, pinnedClient.Uuid), pinnedClient.KeyFingerprint);
            }

            if (!await ShouldProcessAsync(target, Strings.ApproveKeyAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var outcome = KeyAdministration.Approve(registry.Keys, id, OperatorContext.ForSurface(Surfaces.PowerShell));
                var answer = KeyAdministration.Describe(outcome, id);
                if (outcome.AlreadyApproved)
                {
                    // The reference's accept_key answer: not an error, but the operator should know nothing happened.
                    WriteWarning(answer);
                }
                else
                {
                    WriteVerbose(answer);
                }

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
            id => ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.KeyTarget, id), Strings.ApproveKeyAction),
            async id =>
            {
                var outcome = await op.ApproveKeyAsync(id, ct).ConfigureAwait(false);
                var answer = KeyAdministration.Describe(outcome, id);
                if (outcome.AlreadyApproved)
                {
                    WriteWarning(answer);
                }
                else
                {
                    WriteVerbose(answer);
                }

                return outcome.Fingerprint;
            },
            PassThru, ct).ConfigureAwait(false);
    }
}
