using System.Globalization;
using System.Management.Automation;

namespace EtPhoneHome;

/// <summary>Ends the session's server connection; the session works locally again (the server host's data directory).</summary>
[Cmdlet(VerbsCommunications.Disconnect, "EphServer", HelpUri = HelpLinks.Base + "Disconnect-EphServer.md")]
[OutputType(typeof(EphServerConnection))]
public sealed class DisconnectEphServerCommand : EphAsyncCmdlet
{
    /// <summary>Writes the connection that was ended.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        var previous = await OnPipelineThreadAsync(() =>
        {
            var current = ModuleConfiguration.Current;
            if (current.Remote is not null)
            {
                ModuleConfiguration.Current = current with { Remote = null };
            }

            return current.Remote;
        }).ConfigureAwait(false);
        if (previous is null)
        {
            return; // not connected: nothing to end
        }

        await previous.Server.DisposeAsync().ConfigureAwait(false);
        if (PassThru)
        {
            WriteObject(ServerConnections.Describe(previous, current: false));
        }

        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseDisconnected, previous.Describe()));
    }
}
