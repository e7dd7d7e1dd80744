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
/// The key is the name without default-ignorable characters (zero-width spaces and joiners, directional marks, word
/// joiner and the invisible operators, byte-order mark, soft hyphen, variation selectors, tag characters), with the
/// hyphen variants U+2010 and U+2011 read as '-', in Unicode compatibility form (fullwidth letters, ligatures,
/// superscripts, mathematical letters become plain ones; precomposed and combining accents are one), lower-cased with
/// the invariant culture and trimmed. The compatibility form is NFKD — two names have the same NFKD exactly when they
/// have the same NFKC — computed from a table carried in this assembly (ClientNameKey.Table.cs, written by
/// build/unicode/name-key-table.py): the product runs without ICU, where <see cref="string.Normalize()"/> does
/// nothing, and every process (hub, CLI, PowerShell, MCP) must compute the same key. The key is for comparing only;
/// the name is shown as it was written.
/// </remarks>
public static partial class ClientNameKey
{
    private static readonly Lazy<Dictionary<int, int[]>> Decompositions = new(() => ParseTable(DecompositionData,
        value => value.Split(' ').Select(cp => int.Parse(cp, NumberStyles.HexNumber, CultureInfo.InvariantCulture)).ToArray()));

    private static readonly Lazy<Dictionary<int, int>> CombiningClasses = new(() => ParseTable(CombiningClassData,
        value => int.Parse(value, CultureInfo.InvariantCulture)));

    /// <summary>The key of <paramref name="name"/> (see the class remarks). Idempotent; an ASCII name costs no allocation when already lower-case.</summary>
    public static string Of(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (IsPlainLowerAscii(name))
        {
            return name;
        }

        // Lower-casing can give a letter that decomposes (and compatibility forms can give capitals): decompose again.
        var lowered = Decompose(name).ToLowerInvariant();
        return Decompose(lowered).Trim();
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

    /// <summary>Ignorables dropped, hyphen variants read as '-', every code point fully decomposed, marks in canonical order.</summary>
    private static string Decompose(string value)
    {
        var points = new List<int>(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            var cp = char.IsHighSurrogate(value[i]) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1])
                ? char.ConvertToUtf32(value[i], value[++i])
                : value[i];
            Append(points, cp);
        }

        // Canonical ordering: a run of combining marks is sorted by class, stably (insertion sort: runs are short).
        var classes = CombiningClasses.Value;
        for (var i = 1; i < points.Count; i++)
        {
            var cc = classes.GetValueOrDefault(points[i]);
            for (var j = i; cc != 0 && j > 0 && classes.GetValueOrDefault(points[j - 1]) > cc; j--)
            {
                (points[j - 1], points[j]) = (points[j], points[j - 1]);
            }
        }

        var result = new StringBuilder(points.Count);
        foreach (var cp in points)
        {
            if (cp < 0x10000)
            {
                result.Append((char)cp);
            }
            else
            {
                result.Append(char.ConvertFromUtf32(cp));
            }
        }

        return result.ToString();
    }

    private static void Append(List<int> points, int cp)
    {
        const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7, VCount = 21, TCount = 28, SCount = 11172;
        if (IsIgnorable(cp) || cp is >= 0xD800 and <= 0xDFFF)
        {
            return;
        }

        if (cp is 0x2010 or 0x2011)
        {
            points.Add('-');
        }
        else if (cp - SBase is >= 0 and < SCount)
        {
            // Hangul syllables decompose by arithmetic (Unicode 3.12), not by table.
            var s = cp - SBase;
            points.Add(LBase + (s / (VCount * TCount)));
            points.Add(VBase + (s % (VCount * TCount) / TCount));
            if (s % TCount != 0)
            {
                points.Add(TBase + (s % TCount));
            }
        }
        else if (Decompositions.Value.TryGetValue(cp, out var parts))
        {
            foreach (var part in parts)
            {
                Append(points, part);
            }
        }
        else
        {
            points.Add(cp);
        }
    }

    private static Dictionary<int, T> ParseTable<T>(string data, Func<string, T> value)
    {
        var table = new Dictionary<int, T>();
        foreach (var entry in data.Split([';', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var at = entry.IndexOf('=', StringComparison.Ordinal);
            table[int.Parse(entry.AsSpan(0, at), NumberStyles.HexNumber, CultureInfo.InvariantCulture)] = value(entry[(at + 1)..]);
        }

        return table;
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
