using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Downloads a transfer (exchange_download) by presigned URL or transfer id, resuming an interrupted download
/// and verifying SHA-256; or, with -SourceClient and -RemotePath, has the client's agent upload a file through
/// the exchange and downloads it here, verified.
/// </summary>
[Cmdlet(VerbsCommunications.Receive, "EphExchangeFile", HelpUri = HelpLinks.Base + "Receive-EphExchangeFile.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = TransferIdSet)]
[OutputType(typeof(EphExchangeDownload), typeof(EphExchangeDelivery))]
public sealed class ReceiveEphExchangeFileCommand : EphAsyncCmdlet
{
    public const string UrlSet = "Url";
    public const string TransferIdSet = "TransferId";
    public const string ClientSet = "Client";

    /// <summary>A presigned download URL (only on the configured endpoint unless -AllowAnyHost).</summary>
    [Parameter(ParameterSetName = UrlSet, Mandatory = true)]
    [ValidateNotNull]
    public Uri? Url { get; set; }

    /// <summary>The transfer to download; binds TransferId of piped Get-EphExchangeFile objects.</summary>
    [Parameter(ParameterSetName = TransferIdSet, Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TransferIdCompleter))]
    public string? TransferId { get; set; }

    /// <summary>The client whose agent uploads -RemotePath.</summary>
    [Parameter(ParameterSetName = ClientSet, Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id", "ClientId")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string? SourceClient { get; set; }

    /// <summary>The file on the client (absolute path, inside its allowed paths).</summary>
    [Parameter(ParameterSetName = ClientSet, Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? RemotePath { get; set; }

    /// <summary>Local file (or existing directory) to write.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    /// <summary>Fetch a -Url on another host than the configured endpoint.</summary>
    [Parameter(ParameterSetName = UrlSet)]
    public SwitchParameter AllowAnyHost { get; set; }

    /// <summary>Expected SHA-256 (hex), checked in addition to the object's own.</summary>
    [Parameter(ParameterSetName = UrlSet)]
    [Parameter(ParameterSetName = TransferIdSet)]
    [ValidatePattern("^[0-9a-fA-F]{64}$")]
    public string? Sha256 { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        var destination = GetUnresolvedProviderPathFromPSPath(Destination);
        if (Remote is not null)
        {
            // Through the server: it signs, the bytes come straight from the bucket to this machine.
            var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            FleetTarget? source = null;
            if (ParameterSetName == ClientSet)
            {
                source = (await ResolveRemoteTargetsAsync(op, [SourceClient!], all: false, ct).ConfigureAwait(false)) switch
                {
                    [var one] => one,
                    _ => throw new EphTerminatingException(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, SourceClient,
                        string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, SourceClient))),
                };
            }

            await ReceiveAsync(new RemoteExchange(op), source, destination, ct).ConfigureAwait(false);
            return;
        }

        using var registry = OpenRegistry();
        using var exchange = ExchangeCmdletSupport.Open(NewGuard(registry));
        FleetTarget? client = null;
        if (ParameterSetName == ClientSet)
        {
            var lookup = ClientQueries.Find(registry.Clients, names: [SourceClient!], ids: null, onlineOnly: false);
            if (lookup.Clients.Count != 1)
            {
                WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, SourceClient, string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, SourceClient)));
                return;
            }

            client = new FleetTarget(lookup.Clients[0].Uuid, lookup.Clients[0].DisplayName, null);
        }

        await ReceiveAsync(new LocalExchangeOperations(registry, exchange), client, destination, ct).ConfigureAwait(false);
    }

    /// <summary>A collection from <paramref name="client"/> (-SourceClient), or a download of -TransferId or -Url; on this host or through a server.</summary>
    private async Task ReceiveAsync(IExchangeOperations ops, FleetTarget? client, string destination, CancellationToken ct)
    {
        if (client is not null)
        {
            if (!await ShouldProcessAsync(client.Describe(), string.Format(CultureInfo.CurrentCulture, Strings.ExchangeCollectAction, RemotePath, destination)).ConfigureAwait(false))
            {
                return;
            }

            ExchangeDeliveryResult result;
            try
            {
                result = await ops.CollectAsync(client.Uuid, RemotePath!, destination, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, RemotePath, Remote) is { } error)
            {
                WriteError(error);
                return;
            }

            WriteObject(new EphExchangeDelivery(result));
            if (result.Status != CommandStatus.Succeeded)
            {
                WriteError(NewError(Strings.ExchangeDeliveryFailedId, result.Status == CommandStatus.Denied ? ErrorCategory.PermissionDenied : ErrorCategory.NotSpecified,
                    result.Uuid, string.Format(CultureInfo.CurrentCulture, Strings.TargetFailed, result.DisplayName, result.Error, result.Status)));
            }

            return;
        }

        var what = Url is null ? TransferId! : Protocol.PresignedHttpTransfer.Describe(Url);
        if (!await ShouldProcessAsync(what, string.Format(CultureInfo.CurrentCulture, Strings.ExchangeDownloadAction, destination)).ConfigureAwait(false))
        {
            return;
        }

        var progress = new ExchangeCmdletSupport.ThrottledProgress(this, what);
        try
        {
            WriteObject(new EphExchangeDownload(await ops.DownloadAsync(Url is null ? TransferId : null, Url, destination, AllowAnyHost.IsPresent, Sha256, progress.AsProgress(), ct).ConfigureAwait(false)));
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, what, Remote) is { } error)
        {
            WriteError(error);
        }
        finally
        {
            progress.Complete();
        }
    }
}
