using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>
/// Forgets the host key pinned for a server, after its key was changed on purpose: the next Connect-EphServer shows
/// the new key and asks, or needs -HostKeyFingerprint.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "EphServerHostKey", HelpUri = HelpLinks.Base + "Remove-EphServerHostKey.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(EphServerConnection))]
public sealed class RemoveEphServerHostKeyCommand : EphCmdlet
{
    /// <summary>The server's host name or address (as given to Connect-EphServer).</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string HostName { get; set; } = "";

    /// <summary>The server's sshd port (22).</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 22;

    /// <summary>Writes the server whose pin was forgotten, with the forgotten fingerprint.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override bool SupportsRemote => true;

    protected override void ProcessRecord()
    {
        ServerAddress address;
        try
        {
            address = ServerAddress.Parse(HostName);
            if (MyInvocation.BoundParameters.ContainsKey(nameof(Port)))
            {
                address = address with { Port = Port };
            }
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            WriteError(NewError(Strings.InvalidServerAddressId, ErrorCategory.InvalidArgument, HostName, ex.Message, ex));
            return;
        }

        try
        {
            var pins = new HostKeyPins();
            if (pins.Get(address) is not { } pinned)
            {
                WriteError(NewError(Strings.HostKeyPinNotFoundId, ErrorCategory.ObjectNotFound, address.PinKey,
                    string.Format(CultureInfo.CurrentCulture, Strings.HostKeyPinNotFound, address.PinKey)));
                return;
            }

            if (ShouldProcess(address.PinKey, string.Format(CultureInfo.CurrentCulture, Strings.ForgetHostKeyAction, pinned.Fingerprint)))
            {
                pins.Remove(address);
                if (PassThru)
                {
                    WriteObject(new EphServerConnection(null, address.HostName, address.Port, address.User, null, pinned.Fingerprint));
                }
            }
        }
        catch (ConnectionProfileException ex)
        {
            ThrowTerminatingError(NewError(Strings.ProfileErrorId, ErrorCategory.WriteError, address.PinKey, ex.Message, ex));
        }
    }
}
