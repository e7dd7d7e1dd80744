using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>Lists the transfers waiting in the exchange bucket (exchange_list), every page.</summary>
[Cmdlet(VerbsCommon.Get, "EphExchangeFile", HelpUri = HelpLinks.Base + "Get-EphExchangeFile.md")]
[OutputType(typeof(EphExchangeFile))]
public sealed class GetEphExchangeFileCommand : EphAsyncCmdlet
{
    /// <summary>Only transfers uploaded by this client (display name, uuid, or "server").</summary>
    [Parameter(Position = 0)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string? SourceClient { get; set; }

    /// <summary>Only transfers addressed to this client (display name or uuid).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string? DestinationClient { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        // Here or through the server (which lists with its credentials); names are resolved where the registry is.
        using var session = await ExchangeCmdletSupport.OpenAsync(this, ct).ConfigureAwait(false);
        try
        {
            foreach (var item in await session.Ops.ListAsync(SourceClient, DestinationClient, ct).ConfigureAwait(false))
            {
                WriteObject(new EphExchangeFile(item));
            }
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, SourceClient, Remote) is { } error)
        {
            WriteError(error);
        }
    }
}
