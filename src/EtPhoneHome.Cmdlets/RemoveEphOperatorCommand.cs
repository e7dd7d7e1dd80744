using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Removes operators: sshd refuses their keys from then on; they stay listed with Get-EphOperator -IncludeRemoved.
/// The last active admin cannot be removed.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "EphOperator", HelpUri = HelpLinks.Base + "Remove-EphOperator.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(EphOperator))]
public sealed class RemoveEphOperatorCommand : EphAsyncCmdlet
{
    /// <summary>Operator names or key fingerprints; binds Name of piped EphOperator objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string[]? Name { get; set; }

    /// <summary>Writes each removed operator.</summary>
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
        foreach (var name in Name ?? [])
        {
            if (registry.Operators.GetOperator(name) is not { } op)
            {
                WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, name, string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, name)));
                continue;
            }

            if (!await ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.OperatorTarget, op.Name, op.Fingerprint), Strings.RemoveOperatorAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var context = Core.Operations.OperatorContext.ForSurface(Surfaces.PowerShell);
                var removed = registry.Operators.RemoveOperator(op.Fingerprint, context.Actor, context.Surface);
                if (PassThru)
                {
                    WriteObject(new EphOperator(removed));
                }
            }
            catch (RegistryValidationException ex)
            {
                WriteError(NewError(Strings.InvalidOperatorId, ErrorCategory.InvalidOperation, name, ex.Message, ex));
            }
            catch (RegistryNotFoundException ex)
            {
                WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, name, ex.Message, ex));
            }
        }
    }

    /// <summary>The same removal through the server (an admin's operation there).</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var remote = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        foreach (var name in Name ?? [])
        {
            if (await OperatorLookup.FindAsync(remote, name, ct).ConfigureAwait(false) is not { } found)
            {
                WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, name, string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, name)));
                continue;
            }

            if (!await ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.OperatorTarget, found.Name, found.Fingerprint), Strings.RemoveOperatorAction).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var removed = await remote.RemoveOperatorAsync(found.Fingerprint, ct).ConfigureAwait(false);
                if (PassThru)
                {
                    WriteObject(new EphOperator(removed));
                }
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(OperatorLookup.Error(this, ex, name));
            }
        }
    }
}
