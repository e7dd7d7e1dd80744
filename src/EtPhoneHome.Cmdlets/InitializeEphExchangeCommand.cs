using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Exchange;

namespace EtPhoneHome;

/// <summary>Installs the bucket lifecycle rule that deletes transfers after 48 hours, and writes the rules in force.</summary>
[Cmdlet(VerbsData.Initialize, "EphExchange", HelpUri = HelpLinks.Base + "Initialize-EphExchange.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(EphExchangeLifecycleRule))]
public sealed class InitializeEphExchangeCommand : EphAsyncCmdlet
{
    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        using var exchange = ExchangeCmdletSupport.Open(NewGuard(registry));
        var rule = ExchangeClient.DesiredRule;
        try
        {
            var rules = await ShouldProcessAsync(exchange.Settings.ToString(),
                    string.Format(CultureInfo.CurrentCulture, Strings.ExchangeInitializeAction, rule.Id, rule.Prefix, rule.ExpirationDays)).ConfigureAwait(false)
                ? await exchange.InitializeAsync(ct).ConfigureAwait(false)
                : await exchange.GetLifecycleAsync(ct).ConfigureAwait(false);
            foreach (var r in rules)
            {
                WriteObject(new EphExchangeLifecycleRule(r));
            }
        }
        catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, exchange.Settings.Bucket) is { } error)
        {
            WriteError(error);
        }
    }
}
