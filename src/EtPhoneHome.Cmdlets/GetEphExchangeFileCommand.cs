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
        if (Remote is not null)
        {
            // The server lists with its credentials; it resolves the names against its registry.
            var remote = new RemoteExchange(await RemoteOperatorAsync(ct).ConfigureAwait(false));
            try
            {
                foreach (var item in await remote.ListAsync(SourceClient, DestinationClient, ct).ConfigureAwait(false))
                {
                    WriteObject(new EphExchangeFile(item));
                }
            }
            catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, SourceClient, Remote) is { } error)
            {
                WriteError(error);
            }

            return;
        }

        using var registry = OpenRegistry();
        var source = SourceClient is null ? null : ExchangeCmdletSupport.Participant(registry.Clients, SourceClient, "source_client");
        var dest = DestinationClient is null ? null : ExchangeCmdletSupport.Participant(registry.Clients, DestinationClient, "dest_client");
        using var exchange = ExchangeCmdletSupport.Open(NewGuard(registry));
        try
        {
            foreach (var item in await exchange.ListAsync(source, dest, includeMetadata: true, ct).ConfigureAwait(false))
            {
                WriteObject(new EphExchangeFile(item));
            }
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, source) is { } error)
        {
            WriteError(error);
        }
    }
}
