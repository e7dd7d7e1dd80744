using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace EtPhoneHome.Core.Text;

/// <summary>
/// Makes text that came from an agent (claimed hostnames, names, capabilities…) safe to show: every character a
/// terminal, a log reader or a person's eye would treat as something other than a visible character is replaced by a
/// visible escape. C0 and C1 controls and DEL become <c>\xNN</c> (ESC is <c>\x1b</c>, so CSI, OSC 52 and BEL lose their
/// meaning; CR and LF cannot start a forged line); Unicode format characters (bidi overrides and isolates such as
/// U+202E and U+2066–U+2069, zero-width characters, tag characters), line and paragraph separators and lone surrogates
/// become <c>\uXXXX</c> or <c>\UXXXXXXXX</c>. Everything else is kept, so ordinary names read as they were written.
/// </summary>
public static class UntrustedText
{
    /// <summary>Marks a value that was cut to its limit.</summary>
    public const char Ellipsis = '…';

    /// <summary>
    /// The value with every unsafe character replaced by a visible escape (see the class remarks); null stays null.
    /// Use it wherever agent-supplied text meets a terminal, a log line or a default view.
    /// </summary>
    [return: NotNullIfNotNull(nameof(value))]
    public static string? ForTerminal(string? value) => value is null ? null : Neutralise(value, int.MaxValue, static _ => true);

    /// <summary>
    /// <see cref="ForTerminal(string?)"/>, then cut to at most <paramref name="maxLength"/> characters (the last one then being
    /// <see cref="Ellipsis"/>); an escape is never cut in half.
    /// </summary>
    [return: NotNullIfNotNull(nameof(value))]
    public static string? ForTerminal(string? value, int maxLength) => value is null ? null : Neutralise(value, maxLength, static _ => true);

    /// <summary>
    /// Like <see cref="ForTerminal(string?, int)"/>, but every character <paramref name="allowed"/> refuses is escaped too
    /// (hostnames keep letters, digits, '.', '-' and '_' only).
    /// </summary>
    public static string Neutralise(string value, int maxLength, Func<char, bool> allowed)
    {
        ArgumentNullException.ThrowIfNull(value);
        ArgumentNullException.ThrowIfNull(allowed);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 1);
        if (value.Length <= maxLength && !NeedsEscaping(value, allowed))
        {
            return value;
        }

        var sb = new StringBuilder(Math.Min(value.Length, maxLength) + 8);
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            string piece;
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                var scalar = char.ConvertToUtf32(c, value[i + 1]);
                piece = IsUnsafe(scalar) ? $"\\U{scalar:X8}" : value.Substring(i, 2);
                i++;
            }
            else
            {
                piece = char.IsSurrogate(c) || IsUnsafe(c) || !allowed(c) ? Escape(c) : c.ToString();
            }

            // Leave room for the ellipsis unless this piece ends the value.
            var room = maxLength - sb.Length - (i == value.Length - 1 ? 0 : 1);
            if (piece.Length > room)
            {
                sb.Append(Ellipsis);
                return sb.ToString();
            }

            sb.Append(piece);
        }

        return sb.ToString();
    }

    /// <summary>
    /// <see cref="ForTerminal(string?)"/> for a block of lines (a command's output, a file's text): line feeds and tabs
    /// are layout and stay, as does a carriage return right before a line feed (Windows line ends); every other control
    /// and format character — ESC and so every CSI/OSC sequence, a lone CR that would overwrite the line shown — is
    /// escaped. For the exact bytes, a surface offers JSON.
    /// </summary>
    public static string ForTerminalBlock(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (!HasUnsafeCharacters(value))
        {
            return value;
        }

        var sb = new StringBuilder(value.Length + 16);
        var start = 0;
        for (var i = 0; i <= value.Length; i++)
        {
            var layout = i < value.Length && (value[i] is '\n' or '\t' || (value[i] == '\r' && i + 1 < value.Length && value[i + 1] == '\n'));
            if (i == value.Length || layout)
            {
                if (i > start)
                {
                    sb.Append(ForTerminal(value[start..i]));
                }

                if (layout)
                {
                    sb.Append(value[i]);
                }

                start = i + 1;
            }
        }

        return sb.ToString();
    }

    /// <summary>True when <paramref name="value"/> holds a character <see cref="ForTerminal(string?)"/> would escape.</summary>
    public static bool HasUnsafeCharacters(string? value) => value is not null && NeedsEscaping(value, static _ => true);

    private static bool NeedsEscaping(string value, Func<char, bool> allowed)
    {
        for (var i = 0; i < value.Length; i++)
        {
            var c = value[i];
            if (char.IsHighSurrogate(c) && i + 1 < value.Length && char.IsLowSurrogate(value[i + 1]))
            {
                if (IsUnsafe(char.ConvertToUtf32(c, value[i + 1])))
                {
                    return true;
                }

                i++;
                continue;
            }

            if (char.IsSurrogate(c) || IsUnsafe(c) || !allowed(c))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsUnsafe(int scalar)
    {
        if (scalar < 0x20 || scalar is >= 0x7F and <= 0x9F)
        {
            return true; // C0, DEL, C1 (U+009B is a one-character CSI on some terminals)
        }

        if (scalar < 0xA0)
        {
            return false;
        }

        // Cf: bidi embeddings, overrides and isolates, marks, zero-width characters, BOM, tag characters. Zl/Zp: U+2028/9.
        return CharUnicodeInfo.GetUnicodeCategory(scalar) is UnicodeCategory.Format or UnicodeCategory.LineSeparator
            or UnicodeCategory.ParagraphSeparator or UnicodeCategory.Surrogate;
    }

    private static string Escape(char c) => c <= 0xFF ? $"\\x{(int)c:x2}" : $"\\u{(int)c:X4}";
}
