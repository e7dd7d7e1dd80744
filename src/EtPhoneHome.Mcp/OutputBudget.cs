using System.Globalization;
using System.Text;

namespace EtPhoneHome.Mcp;

/// <summary>One stream of output as a tool returns it: maybe cut, never binary garbage.</summary>
public sealed record BudgetedText(string Text, bool Truncated, long TotalBytes, bool Binary);

/// <summary>
/// Keeps one tool answer from flooding a model's context: text beyond the budget is cut at a character
/// boundary with a marker that names the full size, and binary content is replaced by a note.
/// </summary>
public static class OutputBudget
{
    /// <summary>Applies a budget of <paramref name="maxBytes"/> UTF-8 bytes to <paramref name="text"/>.</summary>
    public static BudgetedText Apply(string? text, int maxBytes)
    {
        text ??= "";
        var total = Encoding.UTF8.GetByteCount(text);
        if (LooksBinary(text))
        {
            return new BudgetedText($"[binary output: {total.ToString(CultureInfo.InvariantCulture)} bytes not shown]", total > 0, total, true);
        }

        if (total <= maxBytes)
        {
            return new BudgetedText(text, false, total, false);
        }

        // Cut at a character (not byte) boundary that fits the budget.
        var kept = 0;
        var bytes = 0;
        while (kept < text.Length)
        {
            var step = char.IsHighSurrogate(text[kept]) && kept + 1 < text.Length ? 2 : 1;
            var size = Encoding.UTF8.GetByteCount(text.AsSpan(kept, step));
            if (bytes + size > maxBytes)
            {
                break;
            }

            bytes += size;
            kept += step;
        }

        var marker = Marker(bytes, total);
        return new BudgetedText(string.Concat(text.AsSpan(0, kept), marker), true, total, false);
    }

    /// <summary>The marker appended to cut text.</summary>
    public static string Marker(long shownBytes, long totalBytes) =>
        string.Create(CultureInfo.InvariantCulture, $"\n[truncated: showed the first {shownBytes} of {totalBytes} bytes]");

    /// <summary>
    /// Text decoded from binary bytes carries NULs or many U+FFFD replacement characters; either means
    /// showing it would only cost context.
    /// </summary>
    public static bool LooksBinary(string text)
    {
        if (text.Length == 0)
        {
            return false;
        }

        var sample = text.AsSpan(0, Math.Min(text.Length, 8192));
        var bad = 0;
        foreach (var c in sample)
        {
            if (c == '\0')
            {
                return true;
            }

            if (c == '\uFFFD' || (char.IsControl(c) && c is not '\n' and not '\r' and not '\t' and not '\f' and not '\b' and not '\u001b'))
            {
                bad++;
            }
        }

        return bad * 10 > sample.Length;
    }
}
