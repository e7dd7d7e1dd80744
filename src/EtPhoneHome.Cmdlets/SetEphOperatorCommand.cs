using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Changes an operator's role; the last active admin cannot be demoted.</summary>
[Cmdlet(VerbsCommon.Set, "EphOperator", HelpUri = HelpLinks.Base + "Set-EphOperator.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(EphOperator))]
public sealed class SetEphOperatorCommand : EphAsyncCmdlet
{
    /// <summary>The operator's name or key fingerprint; binds Name of piped EphOperator objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>The new role: Reader, Operator or Admin.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    public EphOperatorRole Role { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            var remote = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            if (await OperatorLookup.FindAsync(remote, Name!, ct).ConfigureAwait(false) is not { } found)
            {
                WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, Name, string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, Name)));
                return;
            }

            if (!await ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.OperatorTarget, found.Name, found.Fingerprint),
                    string.Format(CultureInfo.CurrentCulture, Strings.SetOperatorAction, Role)).ConfigureAwait(false))
            {
                return;
            }

            try
            {
                WriteObject(new EphOperator(await remote.SetOperatorRoleAsync(found.Fingerprint, (OperatorRole)(int)Role, ct).ConfigureAwait(false)));
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(OperatorLookup.Error(this, ex, Name!));
            }

            return;
        }

        using var registry = OpenRegistry();
        if (registry.Operators.GetOperator(Name!) is not { } op)
        {
            WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, Name, string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, Name)));
            return;
        }

        var target = string.Format(CultureInfo.CurrentCulture, Strings.OperatorTarget, op.Name, op.Fingerprint);
        if (!await ShouldProcessAsync(target, string.Format(CultureInfo.CurrentCulture, Strings.SetOperatorAction, Role)).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            var context = Core.Operations.OperatorContext.ForSurface(Surfaces.PowerShell);
            WriteObject(new EphOperator(registry.Operators.SetOperatorRole(op.Fingerprint, (OperatorRole)(int)Role, context.Actor, context.Surface)));
        }
        catch (RegistryValidationException ex)
        {
            WriteError(NewError(Strings.InvalidOperatorId, ErrorCategory.InvalidOperation, Name, ex.Message, ex));
        }
        catch (RegistryNotFoundException ex)
        {
            WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, Name, ex.Message, ex));
        }
    }
}
