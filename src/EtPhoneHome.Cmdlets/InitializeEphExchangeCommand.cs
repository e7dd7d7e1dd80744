using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>Installs the bucket lifecycle rule that deletes transfers after 48 hours, and writes the rules in force.</summary>
[Cmdlet(VerbsData.Initialize, "EphExchange", HelpUri = HelpLinks.Base + "Initialize-EphExchange.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(EphExchangeLifecycleRule))]
public sealed class InitializeEphExchangeCommand : EphAsyncCmdlet
{
    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        // Here or the server's bucket with its credentials (reading the rules is a reader's there, installing an admin's).
        using var session = await ExchangeCmdletSupport.OpenAsync(this, ct).ConfigureAwait(false);
        var rule = ExchangeClient.DesiredRule;
        var apply = await ShouldProcessAsync(session.Bucket,
            string.Format(CultureInfo.CurrentCulture, Strings.ExchangeInitializeAction, rule.Id, rule.Prefix, rule.ExpirationDays)).ConfigureAwait(false);
        try
        {
            foreach (var r in await session.Ops.LifecycleAsync(apply, ct).ConfigureAwait(false))
            {
                WriteObject(new EphExchangeLifecycleRule(r));
            }
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, session.Bucket, Remote) is { } error)
        {
            WriteError(error);
        }
    }
}
