using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Adds an operator: a person's SSH public key with a name and a role. The key can then reach the hub's operator service
/// through sshd, and nothing else (no shell, no forwarding). Adding a removed operator's key again makes it active.
/// </summary>
[Cmdlet(VerbsCommon.Add, "EphOperator", HelpUri = HelpLinks.Base + "Add-EphOperator.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = KeySet)]
[OutputType(typeof(EphOperator))]
public sealed class AddEphOperatorCommand : EphAsyncCmdlet
{
    public const string KeySet = "PublicKey";
    public const string PathSet = "PublicKeyPath";

    /// <summary>The operator's name: 1–64 letters, digits, '.', '_' or '-', starting with a letter or digit.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>The public key line: 'ssh-ed25519 AAAA… comment'.</summary>
    [Parameter(ParameterSetName = KeySet, Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? PublicKey { get; set; }

    /// <summary>A public key file such as ~/.ssh/id_ed25519.pub.</summary>
    [Parameter(ParameterSetName = PathSet, Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? PublicKeyPath { get; set; }

    /// <summary>Reader, Operator or Admin.</summary>
    [Parameter(Mandatory = true)]
    public EphOperatorRole Role { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        string line;
        if (ParameterSetName == PathSet)
        {
            var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(PublicKeyPath!);
            try
            {
                line = File.ReadLines(path).Select(l => l.Trim()).FirstOrDefault(l => l.Length > 0 && !l.StartsWith('#')) ?? "";
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                WriteError(NewError(Strings.InvalidOperatorId, ErrorCategory.ReadError, PublicKeyPath, ex.Message, ex));
                return;
            }
        }
        else
        {
            line = PublicKey!;
        }

        if (!await ShouldProcessAsync(Name!, string.Format(CultureInfo.CurrentCulture, Strings.AddOperatorAction, Role)).ConfigureAwait(false))
        {
            return;
        }

        if (Remote is not null)
        {
            try
            {
                var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
                WriteObject(new EphOperator(await op.AddOperatorAsync(Name!, line, (OperatorRole)(int)Role, ct).ConfigureAwait(false)));
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(RemoteTargetError(ex, Name!, Strings.InvalidOperatorId));
            }

            return;
        }

        using var registry = OpenRegistry();
        try
        {
            var context = Core.Operations.OperatorContext.ForSurface(Surfaces.PowerShell);
            WriteObject(new EphOperator(registry.Operators.AddOperator(Name!, line, (OperatorRole)(int)Role, context.Actor, context.Surface)));
        }
        catch (RegistryValidationException ex)
        {
            WriteError(NewError(Strings.InvalidOperatorId, ErrorCategory.InvalidArgument, Name, ex.Message, ex));
        }
    }
}
