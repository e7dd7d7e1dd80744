using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>Creates a presigned PUT URL a client can upload to with nothing but curl (<c>curl -T FILE URL</c>).</summary>
[Cmdlet(VerbsCommon.New, "EphExchangeUploadUrl", HelpUri = HelpLinks.Base + "New-EphExchangeUploadUrl.md")]
[OutputType(typeof(EphExchangeUploadUrl))]
public sealed class NewEphExchangeUploadUrlCommand : EphAsyncCmdlet
{
    /// <summary>The client that will upload (display name or uuid); binds Id/Uuid of piped clients.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id", "ClientId")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string SourceClient { get; set; } = "";

    /// <summary>The file name the transfer id and key will carry.</summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string FileName { get; set; } = "";

    /// <summary>Hours the URL stays valid, 1 to 12.</summary>
    [Parameter]
    [ValidateRange(ExchangeLimits.MinExpiresHours, ExchangeLimits.MaxExpiresHours)]
    public int ExpiresHours { get; set; } = ExchangeLimits.DefaultExpiresHours;

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            var remote = new RemoteExchange(await RemoteOperatorAsync(ct).ConfigureAwait(false));
            try
            {
                WriteObject(new EphExchangeUploadUrl(await remote.CreateUploadUrlAsync(SourceClient, FileName, ExpiresHours, ct).ConfigureAwait(false)));
            }
            catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, FileName, Remote) is { } error)
            {
                WriteError(error);
            }

            return;
        }

        using var registry = OpenRegistry();
        var source = ExchangeCmdletSupport.Participant(registry.Clients, SourceClient, "source_client");
        using var exchange = ExchangeCmdletSupport.Open(null);
        try
        {
            WriteObject(new EphExchangeUploadUrl(exchange.CreateUploadUrl(source, FileName, ExpiresHours)));
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, FileName) is { } error)
        {
            WriteError(error);
        }
    }
}
