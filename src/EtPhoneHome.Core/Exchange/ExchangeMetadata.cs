using System.Text;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// Values of the exchange's object metadata (<c>x-amz-meta-*</c> headers). HTTP headers carry ASCII only, so a value
/// with any other character (a file name such as <c>résumé 報告.txt</c>) is sent as one RFC 2047 encoded word,
/// <c>=?UTF-8?B?&lt;base64 of the UTF-8 bytes&gt;?=</c>, the form S3 itself returns for such metadata. Printable ASCII
/// goes as it is, so objects written before this encoding read back unchanged; an ASCII value that itself starts
/// with <c>=?</c> is encoded too, so a new object's value always reads back as written.
/// </summary>
public static class ExchangeMetadata
{
    private const string Prefix = "=?";
    private const string Suffix = "?=";

    /// <summary>The header-safe form of <paramref name="value"/> (printable ASCII as is, else an RFC 2047 encoded word).</summary>
    public static string Encode(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        return value.All(c => c is >= ' ' and <= '~') && !value.StartsWith(Prefix, StringComparison.Ordinal)
            ? value
            : $"=?UTF-8?B?{Convert.ToBase64String(Encoding.UTF8.GetBytes(value))}?=";
    }

    /// <summary>
    /// Decodes a value read from metadata: one or more RFC 2047 encoded words (charset UTF-8 or US-ASCII, B or Q
    /// encoding; whitespace between words is ignored, as RFC 2047 says), or plain text (returned as it is). False
    /// when the value has the shape of an encoded word but does not decode to valid UTF-8 (bad base64, unknown
    /// charset or encoding, invalid bytes); <paramref name="decoded"/> is then null. The result is not checked
    /// further: a file name still goes through <see cref="TransferNames.CheckFileName"/>.
    /// </summary>
    public static bool TryDecode(string? value, out string? decoded)
    {
        decoded = value;
        if (value is null || !value.TrimStart().StartsWith(Prefix, StringComparison.Ordinal))
        {
            return true;
        }

        decoded = null;
        var bytes = new List<byte>();
        var rest = value.AsSpan().Trim();
        while (!rest.IsEmpty)
        {
            // =?charset?encoding?text?=  (the text contains no '?' and no whitespace)
            if (!rest.StartsWith(Prefix, StringComparison.Ordinal))
            {
                return false;
            }

            var body = rest[Prefix.Length..];
            var q1 = body.IndexOf('?');
            if (q1 <= 0 || body.Length < q1 + 3 || body[q1 + 2] != '?')
            {
                return false;
            }

            var charset = body[..q1];
            var encoding = char.ToUpperInvariant(body[q1 + 1]);
            var text = body[(q1 + 3)..];
            var end = text.IndexOf(Suffix, StringComparison.Ordinal);
            if (end < 0 || text[..end].ContainsAny(" \t\r\n") ||
                !(charset.Equals("UTF-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("US-ASCII", StringComparison.OrdinalIgnoreCase)))
            {
                return false;
            }

            if (!(encoding switch { 'B' => DecodeB(text[..end], bytes), 'Q' => DecodeQ(text[..end], bytes), _ => false }))
            {
                return false;
            }

            rest = text[(end + Suffix.Length)..].TrimStart();
        }

        try
        {
            decoded = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true).GetString(bytes.ToArray());
            return true;
        }
        catch (DecoderFallbackException)
        {
            return false;
        }
    }

    /// <summary>
    /// The file name recorded in metadata, decoded and checked by the rules every transfer name follows
    /// (<see cref="TransferNames.CheckFileName"/>: no directories, no control characters, 1–200 characters);
    /// null when the value is absent, malformed or breaks those rules (callers fall back to the transfer id's name).
    /// </summary>
    public static string? FileName(string? value)
    {
        if (value is null || !TryDecode(value, out var name) || name is null)
        {
            return null;
        }

        try
        {
            // The name must be exactly a checked file name: a directory part would otherwise be dropped silently.
            return TransferNames.CheckFileName(name) == name ? name : null;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    private static bool DecodeB(ReadOnlySpan<char> text, List<byte> into)
    {
        var buffer = new byte[(text.Length / 4 * 3) + 3];
        if (text.Length % 4 != 0 || !Convert.TryFromBase64Chars(text, buffer, out var written))
        {
            return false;
        }

        into.AddRange(buffer.AsSpan(0, written));
        return true;
    }

    private static bool DecodeQ(ReadOnlySpan<char> text, List<byte> into)
    {
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c == '_')
            {
                into.Add((byte)' ');
            }
            else if (c == '=')
            {
                if (i + 2 >= text.Length || !byte.TryParse(text.Slice(i + 1, 2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var b))
                {
                    return false;
                }

                into.Add(b);
                i += 2;
            }
            else if (c is > ' ' and <= '~')
            {
                into.Add((byte)c);
            }
            else
            {
                return false;
            }
        }

        return true;
    }
}
