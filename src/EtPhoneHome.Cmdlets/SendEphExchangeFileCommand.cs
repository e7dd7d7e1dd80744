using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Uploads a file to the exchange bucket (exchange_upload) and, with -RemotePath, tells each destination
/// client's agent to fetch it into that path (inside its path policy, SHA-256 verified). -TransferId hands an
/// earlier upload to clients (for example a client that was offline at upload time).
/// </summary>
[Cmdlet(VerbsCommunications.Send, "EphExchangeFile", HelpUri = HelpLinks.Base + "Send-EphExchangeFile.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = PathSet)]
[OutputType(typeof(EphExchangeTransfer), typeof(EphExchangeDelivery))]
public sealed class SendEphExchangeFileCommand : EphAsyncCmdlet
{
    public const string PathSet = "Path";
    public const string TransferIdSet = "TransferId";

    private readonly List<string> _clients = [];

    /// <summary>The local file to upload.</summary>
    [Parameter(ParameterSetName = PathSet, Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>An existing transfer to hand to the destination clients.</summary>
    [Parameter(ParameterSetName = TransferIdSet, Mandatory = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TransferIdCompleter))]
    public string? TransferId { get; set; }

    /// <summary>Destination clients (display names or uuids); binds Id/Uuid of piped clients.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id", "ClientId")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? DestinationClient { get; set; }

    /// <summary>Where each destination agent writes the file (absolute path on the client).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? RemotePath { get; set; }

    /// <summary>Hours the download URL stays valid, 1 to 12.</summary>
    [Parameter]
    [ValidateRange(ExchangeLimits.MinExpiresHours, ExchangeLimits.MaxExpiresHours)]
    public int ExpiresHours { get; set; } = ExchangeLimits.DefaultExpiresHours;

    /// <summary>Most clients fetching at once.</summary>
    [Parameter]
    [ValidateRange(FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit)]
    public int ThrottleLimit { get; set; } = 16;

    private protected override bool SupportsRemote => true;

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        if (DestinationClient is not null)
        {
            _clients.AddRange(DestinationClient);
        }

        return Task.CompletedTask;
    }

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        if (_clients.Count == 0 && MyInvocation.ExpectingInput)
        {
            return; // upstream delivered no client: nothing is uploaded or sent
        }

        if (RemotePath is not null && _clients.Count == 0)
        {
            throw new EphTerminatingException(NewError(Strings.ExchangeInvalidArgumentId, ErrorCategory.InvalidArgument, RemotePath, Strings.ExchangeRemotePathNeedsClient));
        }

        if (Remote is not null)
        {
            // Through the server: it signs, this machine sends the file straight to the bucket, the server tells the agents.
            var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            var targets = _clients.Count > 0 ? await ResolveRemoteTargetsAsync(op, _clients, all: false, ct).ConfigureAwait(false) : [];
            await SendAsync(new RemoteExchange(op), targets, ct).ConfigureAwait(false);
            return;
        }

        using var registry = OpenRegistry();
        using var exchange = ExchangeCmdletSupport.Open(NewGuard(registry));
        // An unknown name refuses the whole send.
        await SendAsync(new LocalExchangeOperations(registry, exchange), _clients.Count > 0 ? ResolveTargets(registry, _clients, all: false) : [], ct).ConfigureAwait(false);
    }

    /// <summary>The upload (with -Path), then the deliveries to the targets the operator confirms; on this host or through a server.</summary>
    private async Task SendAsync(IExchangeOperations ops, IReadOnlyList<FleetTarget> targets, CancellationToken ct)
    {
        var transferId = TransferId;
        if (ParameterSetName == PathSet)
        {
            var path = GetUnresolvedProviderPathFromPSPath(Path);
            if (!await ShouldProcessAsync(path, string.Format(CultureInfo.CurrentCulture, Strings.ExchangeUploadAction, ExpiresHours)).ConfigureAwait(false))
            {
                return;
            }

            var progress = new ExchangeCmdletSupport.ThrottledProgress(this, path);
            try
            {
                var upload = await ops.UploadAsync(path, targets.Count == 1 ? targets[0].Uuid : null, ExpiresHours, progress.AsProgress(), ct).ConfigureAwait(false);
                WriteObject(new EphExchangeTransfer(upload));
                transferId = upload.TransferId;
            }
            catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, path, Remote) is { } error)
            {
                WriteError(error);
                return;
            }
            finally
            {
                progress.Complete();
            }
        }

        if (RemotePath is null || transferId is null)
        {
            return;
        }

        var approved = new List<string>(targets.Count);
        foreach (var target in targets)
        {
            if (await ShouldProcessAsync(target.Describe(), string.Format(CultureInfo.CurrentCulture, Strings.ExchangeDeliverAction, transferId, RemotePath)).ConfigureAwait(false))
            {
                approved.Add(target.Uuid);
            }
        }

        if (approved.Count == 0)
        {
            return;
        }

        try
        {
            await foreach (var result in ops.DeliverAsync(approved, transferId, RemotePath, ThrottleLimit, ct).ConfigureAwait(false))
            {
                WriteObject(new EphExchangeDelivery(result));
                if (result.Status != CommandStatus.Succeeded)
                {
                    WriteError(NewError(Strings.ExchangeDeliveryFailedId, result.Status == CommandStatus.Denied ? ErrorCategory.PermissionDenied : ErrorCategory.NotSpecified,
                        result.Uuid, string.Format(CultureInfo.CurrentCulture, Strings.TargetFailed, result.DisplayName, result.Error, result.Status)));
                }
            }
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, transferId, Remote) is { } error)
        {
            WriteError(error);
        }
    }
}
