using System.Text;
using System.Xml;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// The few S3 XML documents the exchange reads and writes itself: the upload id of a started multipart upload, the
/// list of parts that completes one, and the answer to that (which can be an error inside a 200). Answers are read up
/// to <see cref="MaxAnswer"/> bytes with DTDs refused; anything else is an <see cref="ExchangeException"/>.
/// </summary>
internal static class S3Xml
{
    /// <summary>The largest answer read (S3's are a few hundred bytes).</summary>
    public const int MaxAnswer = 64 * 1024;

    private const string Namespace = "http://s3.amazonaws.com/doc/2006-03-01/";

    /// <summary>The <c>UploadId</c> of an InitiateMultipartUploadResult, or null when there is none.</summary>
    public static async Task<string?> ReadUploadIdAsync(HttpResponseMessage response, CancellationToken ct)
    {
        var root = await ReadAsync(response, "start of a multipart upload", ct).ConfigureAwait(false);
        return root.LocalName == "InitiateMultipartUploadResult" && Child(root, "UploadId") is { Length: > 0 and <= 1024 } id ? id : null;
    }

    /// <summary>The CompleteMultipartUpload body for parts 1..n with these ETags.</summary>
    public static byte[] CompleteMultipartUpload(IReadOnlyList<string> etags)
    {
        var text = new StringBuilder();
        using (var writer = XmlWriter.Create(text, new XmlWriterSettings { OmitXmlDeclaration = true }))
        {
            writer.WriteStartElement("CompleteMultipartUpload", Namespace);
            for (var i = 0; i < etags.Count; i++)
            {
                writer.WriteStartElement("Part", Namespace);
                writer.WriteElementString("PartNumber", Namespace, (i + 1).ToString(System.Globalization.CultureInfo.InvariantCulture));
                writer.WriteElementString("ETag", Namespace, etags[i]);
                writer.WriteEndElement();
            }

            writer.WriteEndElement();
        }

        return Encoding.UTF8.GetBytes(text.ToString());
    }

    /// <summary>Throws unless the answer to a completion is a CompleteMultipartUploadResult (an Error inside a 200 names its code).</summary>
    public static async Task EnsureCompletedAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        var root = await ReadAsync(response, what, ct).ConfigureAwait(false);
        if (root.LocalName == "CompleteMultipartUploadResult")
        {
            return;
        }

        var code = root.LocalName == "Error" ? Child(root, "Code") : null;
        code = code is { Length: > 0 and <= 64 } && code.All(char.IsAsciiLetterOrDigit) ? code : null;
        throw new ExchangeException($"{what} failed: {code ?? "unexpected answer"} (HTTP {(int)response.StatusCode})", code);
    }

    private static async Task<XmlElement> ReadAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        var buffer = new byte[MaxAnswer];
        var length = 0;
        await using (var stream = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false))
        {
            int read;
            while ((read = await stream.ReadAsync(buffer.AsMemory(length), ct).ConfigureAwait(false)) > 0)
            {
                length += read;
                if (length == buffer.Length)
                {
                    throw new ExchangeException($"{what} failed: the endpoint's answer is larger than {MaxAnswer / 1024} KiB", null);
                }
            }
        }

        try
        {
            var document = new XmlDocument { XmlResolver = null };
            using var reader = XmlReader.Create(new MemoryStream(buffer, 0, length), new XmlReaderSettings { DtdProcessing = DtdProcessing.Prohibit, XmlResolver = null });
            document.Load(reader);
            return document.DocumentElement ?? throw new XmlException("no root element");
        }
        catch (XmlException ex)
        {
            throw new ExchangeException($"{what} failed: the endpoint's answer is not XML ({ex.Message})", null, ex);
        }
    }

    private static string? Child(XmlElement parent, string name)
    {
        foreach (XmlNode node in parent.ChildNodes)
        {
            if (node is XmlElement element && element.LocalName == name)
            {
                return element.InnerText;
            }
        }

        return null;
    }
}
