using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Gets client keys: pending ones waiting for approval, approved and revoked ones.</summary>
[Cmdlet(VerbsCommon.Get, "EphClientKey", HelpUri = HelpLinks.Base + "Get-EphClientKey.md")]
[OutputType(typeof(EphClientKey))]
public sealed class GetEphClientKeyCommand : EphAsyncCmdlet
{
    /// <summary>Fingerprints (SHA256:…); * and ? wildcards. Every key when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("KeyFingerprint")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(KeyFingerprintCompleter))]
    public string[]? Fingerprint { get; set; }

    /// <summary>Only keys waiting for approval (new keys and key mismatches).</summary>
    [Parameter]
    public SwitchParameter Pending { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        IReadOnlyList<KeyRecord> listed;
        if (Remote is not null)
        {
            listed = await (await RemoteOperatorAsync(ct).ConfigureAwait(false)).ListKeysAsync(Pending, ct).ConfigureAwait(false);
        }
        else
        {
            using var registry = OpenRegistry();
            listed = registry.Keys.ListKeys(Pending ? KeyStatus.Pending : null);
        }

        var keys = listed
            .OrderBy(k => k.Status).ThenBy(k => k.FirstSeen).ThenBy(k => k.Fingerprint, StringComparer.Ordinal)
            .ToList();
        var patterns = Fingerprint ?? [];
        foreach (var key in keys.Where(k => patterns.Length == 0 || patterns.Any(p => ClientNameMatcher.IsMatch(p, k.Fingerprint))))
        {
            WriteObject(new EphClientKey(key));
        }

        foreach (var literal in patterns.Where(p => !ClientNameMatcher.IsWildcard(p) && !keys.Any(k => ClientNameMatcher.IsMatch(p, k.Fingerprint))))
        {
            WriteError(NewError(Strings.KeyNotFoundId, ErrorCategory.ObjectNotFound, literal,
                string.Format(CultureInfo.CurrentCulture, Strings.KeyNotFound, literal)));
        }
    }
}
