using System.Globalization;
using System.Text.RegularExpressions;

namespace EtPhoneHome.Core.Exchange;

/// <summary>The exchange's limits, enforced in code on every surface (not only in a schema).</summary>
public static class ExchangeLimits
{
    public const int MinExpiresHours = 1;

    /// <summary>Longest life of a presigned URL. URLs are bearer tokens; a short life limits a leak.</summary>
    public const int MaxExpiresHours = 12;

    public const int DefaultExpiresHours = 12;

    /// <summary>The bucket lifecycle rule deletes transfers this many days after upload (48 hours).</summary>
    public const int LifecycleDays = 2;

    /// <summary>Key prefix of every transfer.</summary>
    public const string Prefix = "transfers/";

    /// <summary>
    /// Where the SHA-256 manifests of multipart uploads live: <c>transfers/.manifest/&lt;source&gt;/&lt;transfer_id&gt;</c>.
    /// Under <see cref="Prefix"/> so the lifecycle rule expires them with their objects; no source starts with '.',
    /// so no transfer can ever have such a key, and listings leave them out.
    /// </summary>
    public const string ManifestPrefix = Prefix + ".manifest/";

    /// <summary>Object metadata naming the manifest's nonce: the object's SHA-256 is in its manifest, which must carry the same nonce.</summary>
    public const string ManifestMetadata = "sha256_manifest";

    /// <summary>Id of the lifecycle rule <see cref="ExchangeClient.InitializeAsync"/> installs.</summary>
    public const string LifecycleRuleId = "etphonehome-transfers-48h";

    /// <summary>Source of transfers the server uploads.</summary>
    public const string ServerSource = "server";

    /// <summary>Throws when <paramref name="hours"/> is outside 1..12, naming the limit; call before any request.</summary>
    public static void CheckExpiresHours(int hours)
    {
        if (hours is < MinExpiresHours or > MaxExpiresHours)
        {
            throw new ArgumentOutOfRangeException(nameof(hours), hours,
                string.Format(CultureInfo.InvariantCulture, "expires_hours must be between {0} and {1} (presigned URLs live at most {1} hours); got {2}", MinExpiresHours, MaxExpiresHours, hours));
        }
    }
}

/// <summary>How transfers are named: id <c>&lt;source&gt;_&lt;yyyyMMdd_HHmmss&gt;_&lt;filename&gt;</c>, key <c>transfers/&lt;source&gt;/&lt;id&gt;</c>.</summary>
public static partial class TransferNames
{
    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9.-]{0,127}$")]
    private static partial Regex SourcePattern();

    /// <summary>Checks a source (a client uuid or "server"): letters, digits, '.' and '-', so a key cannot leave its prefix.</summary>
    public static string CheckSource(string source, string field = "source_client")
    {
        if (string.IsNullOrEmpty(source) || !SourcePattern().IsMatch(source))
        {
            throw new ArgumentException($"{field} '{source}' is not valid: a client uuid or '{ExchangeLimits.ServerSource}' (letters, digits, '.', '-'; at most 128)");
        }

        return source;
    }

    /// <summary>The file name part a transfer keeps: no directories, no control characters.</summary>
    public static string CheckFileName(string fileName)
    {
        var name = Path.GetFileName(fileName ?? "");
        // ':' names a stream on Windows; format characters (bidi overrides…) make a name read as another.
        if (name.Length is 0 or > 200 || name is "." or ".." || name.Any(c => char.IsControl(c) || c is '/' or '\\' or ':'
            || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format))
        {
            throw new ArgumentException($"filename '{Text.UntrustedText.ForTerminal(fileName, 200)}' is not valid: a file name of 1 to 200 characters without directories, ':' or format characters");
        }

        return name;
    }

    public static string NewTransferId(string source, DateTimeOffset at, string fileName) =>
        $"{CheckSource(source)}_{at.UtcDateTime.ToString("yyyyMMdd_HHmmss", CultureInfo.InvariantCulture)}_{CheckFileName(fileName)}";

    public static string Key(string source, string transferId) => $"{ExchangeLimits.Prefix}{CheckSource(source)}/{CheckTransferId(transferId)}";

    /// <summary>The key of the SHA-256 manifest of the object at <paramref name="key"/> (a key under <c>transfers/</c>).</summary>
    public static string ManifestKey(string key) =>
        key.StartsWith(ExchangeLimits.Prefix, StringComparison.Ordinal) && !IsManifestKey(key)
            ? ExchangeLimits.ManifestPrefix + key[ExchangeLimits.Prefix.Length..]
            : throw new ArgumentException($"'{key}' is not a transfer key");

    /// <summary>True for a manifest's key (internal: never listed as a transfer).</summary>
    public static bool IsManifestKey(string key) => key.StartsWith(ExchangeLimits.ManifestPrefix, StringComparison.Ordinal);

    /// <summary>The source a transfer id starts with (uuids and "server" contain no '_').</summary>
    public static string SourceOf(string transferId)
    {
        CheckTransferId(transferId);
        var cut = transferId.IndexOf('_', StringComparison.Ordinal);
        return CheckSource(cut > 0 ? transferId[..cut] : "", "transfer_id");
    }

    /// <summary>The key of a transfer id (its source is its first part).</summary>
    public static string KeyOf(string transferId) => Key(SourceOf(transferId), transferId);

    /// <summary>Source and transfer id of a key under <c>transfers/</c>, or null.</summary>
    public static (string Source, string TransferId)? Parse(string key)
    {
        if (!key.StartsWith(ExchangeLimits.Prefix, StringComparison.Ordinal) || IsManifestKey(key))
        {
            return null;
        }

        var rest = key[ExchangeLimits.Prefix.Length..];
        var slash = rest.IndexOf('/', StringComparison.Ordinal);
        return slash <= 0 || slash == rest.Length - 1 ? null : (rest[..slash], rest[(slash + 1)..]);
    }

    /// <summary>The file name in a transfer id (after source and timestamp).</summary>
    public static string? FileNameOf(string transferId)
    {
        var parts = transferId.Split('_', 4);
        return parts.Length == 4 ? parts[3] : null;
    }

    private static string CheckTransferId(string transferId)
    {
        if (string.IsNullOrEmpty(transferId) || transferId.Length > 400 || transferId.Contains('/', StringComparison.Ordinal)
            || transferId.Contains('\\', StringComparison.Ordinal) || transferId is "." or ".." || transferId.Any(char.IsControl))
        {
            throw new ArgumentException($"transfer_id '{transferId}' is not valid: expected <source>_<yyyyMMdd_HHmmss>_<filename>");
        }

        return transferId;
    }
}
