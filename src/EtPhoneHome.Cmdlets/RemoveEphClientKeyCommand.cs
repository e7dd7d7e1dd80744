using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Purges pending keys whose agent has not been seen for longer than an age (7 days unless -OlderThan says otherwise);
/// approved and revoked keys stay. Writes the keys it removed.
/// </summary>
[Cmdlet(VerbsCommon.Remove, "EphClientKey", HelpUri = HelpLinks.Base + "Remove-EphClientKey.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High, DefaultParameterSetName = PendingSet)]
[OutputType(typeof(EphClientKey))]
public sealed class RemoveEphClientKeyCommand : EphAsyncCmdlet
{
    public const string PendingSet = "Pending";

    /// <summary>Only pending keys are purged (the only kind this cmdlet removes; revoke a key with Revoke-EphClientKey).</summary>
    [Parameter(ParameterSetName = PendingSet, Mandatory = true)]
    public SwitchParameter Pending { get; set; }

    /// <summary>Keys unseen for longer than this go; 7 days when omitted, 0 for every pending key.</summary>
    [Parameter(ParameterSetName = PendingSet, Position = 0)]
    public TimeSpan? OlderThan { get; set; }

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        var age = OlderThan ?? KeyLimits.DefaultPendingKeyMaxAge;
        using var registry = OpenRegistry();
        IReadOnlyList<KeyRecord> candidates;
        try
        {
            candidates = KeyLimits.ExpiredPendingKeys(registry.Keys, age);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            throw new EphTerminatingException(NewError(Strings.InvalidKeyAgeId, ErrorCategory.InvalidArgument, OlderThan, ex.Message, ex));
        }

        var listed = System.Diagnostics.Stopwatch.StartNew();
        if (candidates.Count == 0)
        {
            WriteVerbose(KeyLimits.Describe(candidates, age, dryRun: false));
            return;
        }

        const int named = 3;
        var names = string.Join(", ", candidates.Take(named).Select(k => string.Format(CultureInfo.CurrentCulture, Strings.PendingKeyInTarget,
            k.Fingerprint, Core.Text.UntrustedText.ForTerminal(k.ClaimedHostname ?? "?"))));
        var target = string.Format(CultureInfo.CurrentCulture, Strings.PendingKeysTarget, candidates.Count, KeyLimits.DescribeAge(age),
            candidates.Count > named ? names + ", …" : names);
        if (!await ShouldProcessAsync(target, Strings.PurgePendingKeysAction).ConfigureAwait(false))
        {
            return;
        }

        // The registry decides again in its transaction, with the listing's cutoff (the age plus the time the prompt took):
        // a key seen since the listing stays, and no key that was not listed goes.
        var purged = KeyLimits.PurgePendingKeys(registry.Keys, age + listed.Elapsed, OperatorContext.ForSurface(Surfaces.PowerShell));
        WriteVerbose(KeyLimits.Describe(purged, age, dryRun: false));
        foreach (var key in purged)
        {
            WriteObject(new EphClientKey(key));
        }
    }
}
