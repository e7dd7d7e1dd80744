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
        if (Remote is { } session)
        {
            // The server's bucket, with the server's credentials (an admin's operation there, even for -WhatIf).
            var remote = new RemoteExchange(await RemoteOperatorAsync(ct).ConfigureAwait(false));
            var desired = ExchangeClient.DesiredRule;
            var apply = await ShouldProcessAsync(string.Format(CultureInfo.CurrentCulture, Strings.ExchangeOfServer, session.Describe()),
                string.Format(CultureInfo.CurrentCulture, Strings.ExchangeInitializeAction, desired.Id, desired.Prefix, desired.ExpirationDays)).ConfigureAwait(false);
            try
            {
                foreach (var r in await remote.LifecycleAsync(apply, ct).ConfigureAwait(false))
                {
                    WriteObject(new EphExchangeLifecycleRule(r));
                }
            }
            catch (Exception ex) when (ExchangeCmdletSupport.ToError(ex, session.Describe(), Remote) is { } error)
            {
                WriteError(error);
            }

            return;
        }

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
