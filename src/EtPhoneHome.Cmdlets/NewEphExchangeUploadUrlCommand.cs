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
        using var session = await ExchangeCmdletSupport.OpenAsync(this, ct).ConfigureAwait(false);
        try
        {
            WriteObject(new EphExchangeUploadUrl(await session.Ops.CreateUploadUrlAsync(SourceClient, FileName, ExpiresHours, ct).ConfigureAwait(false)));
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, FileName, Remote) is { } error)
        {
            WriteError(error);
        }
    }
}
