using System.Globalization;
using System.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The one rule that decides when two display names are the same name: the registry keeps the key of every client's
/// name under a unique index (among clients that are not removed), and every lookup by name, on every surface,
/// compares keys. Two names that a person cannot tell apart must not name two machines: "WEB-01", "web-01" with a
/// zero-width space inside and the fullwidth "ｗｅｂ－０１" are all "web-01".
/// </summary>
/// <remarks>
/// The key is the name in Unicode compatibility form (NFKC: fullwidth letters, ligatures, superscripts become plain
/// ones), without default-ignorable characters (zero-width spaces and joiners, directional marks, word joiner and the
/// invisible operators, byte-order mark, soft hyphen, variation selectors, tag characters), with the hyphen variants
/// U+2010 and U+2011 read as '-', lower-cased with the invariant culture and trimmed. It is for comparing only; the
/// name is shown as it was written.
/// </remarks>
public static class ClientNameKey
{
    /// <summary>The key of <paramref name="name"/> (see the class remarks). Idempotent; an ASCII name costs no allocation when already lower-case.</summary>
    public static string Of(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (IsPlainLowerAscii(name))
        {
            return name;
        }

        // Ignorables go first: NFKC would otherwise leave "ｗ\u200bｅ" as two separate letters around a character it keeps.
        var stripped = Strip(name);
        var folded = Strip(stripped.Normalize(NormalizationForm.FormKC).ToLowerInvariant());
        // Lower-casing can leave a sequence that is not in compatibility form (a few letters decompose); normalise once more.
        return Strip(folded.Normalize(NormalizationForm.FormKC)).Trim();
    }

    /// <summary>True when the two names have the same key.</summary>
    public static bool Same(string? a, string? b) =>
        a is not null && b is not null && string.Equals(Of(a), Of(b), StringComparison.Ordinal);

    /// <summary>
    /// A name, from <paramref name="wanted"/>, whose key <paramref name="isTaken"/> refuses: the wanted name itself when
    /// its key is free, else "wanted (2)", "wanted (3)"… (the first free one, cut to <paramref name="maxLength"/>).
    /// Deterministic, so a migration and an admission give the same answer for the same registry.
    /// </summary>
    public static string Unique(string wanted, Func<string, bool> isTaken, int maxLength = ClaimedIdentityRules.MaxDisplayNameLength)
    {
        ArgumentNullException.ThrowIfNull(wanted);
        ArgumentNullException.ThrowIfNull(isTaken);
        if (!isTaken(Of(wanted)))
        {
            return wanted;
        }

        for (var n = 2; ; n++)
        {
            var suffix = string.Create(CultureInfo.InvariantCulture, $" ({n})");
            var stem = wanted.Length + suffix.Length > maxLength ? wanted[..Math.Max(0, maxLength - suffix.Length)].TrimEnd() : wanted;
            var candidate = stem + suffix;
            if (!isTaken(Of(candidate)))
            {
                return candidate;
            }
        }
    }

    private static bool IsPlainLowerAscii(string name)
    {
        if (name.Length == 0 || name[0] == ' ' || name[^1] == ' ')
        {
            return name.Length == 0;
        }

        foreach (var c in name)
        {
            if (c is < ' ' or > '~' || char.IsAsciiLetterUpper(c))
            {
                return false;
            }
        }

        return true;
    }

    private static string Strip(string value)
    {
        StringBuilder? kept = null;
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            int width = char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]) ? 2 : 1;
            var codePoint = width == 2 ? char.ConvertToUtf32(c, value[i + 1]) : c;
            var replacement = IsIgnorable(codePoint) ? "" : codePoint is 0x2010 or 0x2011 ? "-" : null;
            if (replacement is not null)
            {
                kept ??= new StringBuilder(value, 0, i, value.Length);
                kept.Append(replacement);
            }
            else
            {
                kept?.Append(value, i, width);
            }

            i += width - 1;
        }

        return kept?.ToString() ?? value;
    }

    /// <summary>Unicode's Default_Ignorable_Code_Point set, the characters that render as nothing.</summary>
    private static bool IsIgnorable(int c) =>
        c is 0x00AD or 0x034F or 0x061C or 0x115F or 0x1160 or 0x17B4 or 0x17B5 or 0x3164 or 0xFEFF or 0xFFA0
        || c is >= 0x180B and <= 0x180F
        || c is >= 0x200B and <= 0x200F
        || c is >= 0x202A and <= 0x202E
        || c is >= 0x2060 and <= 0x206F
        || c is >= 0xFE00 and <= 0xFE0F
        || c is >= 0xFFF0 and <= 0xFFF8
        || c is >= 0x1BCA0 and <= 0x1BCA3
        || c is >= 0x1D173 and <= 0x1D17A
        || c is >= 0xE0000 and <= 0xE0FFF;
}
