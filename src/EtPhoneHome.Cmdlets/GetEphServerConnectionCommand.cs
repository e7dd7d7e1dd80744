using System.Management.Automation;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>Shows the session's server connection, or (-ListSaved) the connections saved in the user's profile.</summary>
[Cmdlet(VerbsCommon.Get, "EphServerConnection", HelpUri = HelpLinks.Base + "Get-EphServerConnection.md")]
[OutputType(typeof(EphServerConnection))]
public sealed class GetEphServerConnectionCommand : EphCmdlet
{
    /// <summary>Lists the saved connections (Connect-EphServer -Save) instead of the current one.</summary>
    [Parameter]
    public SwitchParameter ListSaved { get; set; }

    private protected override bool SupportsRemote => true;

    protected override void EndProcessing()
    {
        var current = Remote;
        if (!ListSaved)
        {
            if (current is not null)
            {
                WriteObject(ServerConnections.Describe(current));
            }

            return;
        }

        try
        {
            foreach (var saved in new SavedConnections().List())
            {
                WriteObject(ServerConnections.Describe(saved, current));
            }
        }
        catch (ConnectionProfileException ex)
        {
            ThrowTerminatingError(NewError(Strings.ProfileErrorId, ErrorCategory.ReadError, null, ex.Message, ex));
        }
    }
}
