using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>Deletes a transfer before the lifecycle rule would (exchange_delete); says truthfully whether one existed.</summary>
[Cmdlet(VerbsCommon.Remove, "EphExchangeFile", HelpUri = HelpLinks.Base + "Remove-EphExchangeFile.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(EphExchangeRemoval))]
public sealed class RemoveEphExchangeFileCommand : EphAsyncCmdlet
{
    /// <summary>The transfer to delete; binds TransferId of piped Get-EphExchangeFile objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TransferIdCompleter))]
    public string TransferId { get; set; } = "";

    /// <summary>The client (or "server") that uploaded it; binds SourceClient of piped objects.</summary>
    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string SourceClient { get; set; } = "";

    private ExchangeCmdletSupport.ExchangeSession? _session;

    private protected override bool SupportsRemote => true;

    protected override async Task BeginProcessingAsync(CancellationToken ct) =>
        _session = await ExchangeCmdletSupport.OpenAsync(this, ct).ConfigureAwait(false);

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        string key;
        try
        {
            key = TransferNames.Key(SourceClient, TransferId);
        }
        catch (ArgumentException ex)
        {
            WriteError(ExchangeCmdletSupport.ToError(ex, TransferId)!);
            return;
        }

        if (!await ShouldProcessAsync(key, Strings.ExchangeRemoveAction).ConfigureAwait(false))
        {
            return;
        }

        try
        {
            var result = await _session!.Ops.DeleteAsync(TransferId, SourceClient, ct).ConfigureAwait(false);
            if (!result.Deleted)
            {
                WriteWarning(string.Format(CultureInfo.CurrentCulture, Strings.ExchangeNotDeleted, TransferId));
            }

            WriteObject(new EphExchangeRemoval(result));
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, TransferId, Remote) is { } error)
        {
            WriteError(error);
        }
    }

    protected override Task EndProcessingAsync(CancellationToken ct)
    {
        _session?.Dispose();
        return Task.CompletedTask;
    }
}
