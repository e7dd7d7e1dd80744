using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// Presigned S3 URLs (AWS Signature Version 4, query-string authentication, path-style, unsigned payload), computed
/// here instead of through the SDK: in a process that only downloads (a verb, a cmdlet, an agent delivery URL)
/// constructing the SDK's client and its first presign cost 0.2–0.3 s of CPU and wall — a fifth of a 256 MiB
/// download. The only signed header is <c>host</c>; the signature covers the verb, the bucket and key, the expiry and
/// any sub-resource (<c>partNumber</c>, <c>uploadId</c>). Unit tests hold it equal to the SDK's URL for the same inputs.
/// </summary>
internal sealed class S3Presigner
{
    /// <summary>The longest validity SigV4 allows (7 days).</summary>
    public static readonly TimeSpan MaxValidity = TimeSpan.FromDays(7);

    private const string Algorithm = "AWS4-HMAC-SHA256";
    private const string Service = "s3";

    private readonly Uri _endpoint;
    private readonly string _bucket;
    private readonly string _accessKey;
    private readonly byte[] _secret;
    private readonly string _region;

    public S3Presigner(Uri endpoint, string bucket, string accessKey, string secretKey, string region)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        ArgumentException.ThrowIfNullOrEmpty(bucket);
        ArgumentException.ThrowIfNullOrEmpty(accessKey);
        ArgumentException.ThrowIfNullOrEmpty(secretKey);
        ArgumentException.ThrowIfNullOrEmpty(region);
        if (!endpoint.IsAbsoluteUri || (endpoint.Scheme != Uri.UriSchemeHttp && endpoint.Scheme != Uri.UriSchemeHttps))
        {
            throw new ArgumentException("the endpoint must be an absolute http or https URL", nameof(endpoint));
        }

        _endpoint = endpoint;
        _bucket = bucket;
        _accessKey = accessKey;
        _secret = Encoding.UTF8.GetBytes("AWS4" + secretKey);
        _region = region;
    }

    /// <summary>
    /// A URL for <paramref name="verb"/> (GET, HEAD, PUT, DELETE) on <paramref name="key"/>, signed at
    /// <paramref name="now"/> and valid until <paramref name="expiresAt"/> (whole seconds, 1 s to 7 days);
    /// <paramref name="subresources"/> are extra query parameters the signature covers. <paramref name="headers"/> (lower-case
    /// names such as <c>x-amz-meta-…</c>, printable ASCII values) are signed too: whoever uses the URL must send exactly
    /// them, so an object's metadata is fixed by the signer, not by the holder of the URL.
    /// </summary>
    public Uri Presign(string verb, string key, DateTimeOffset now, DateTimeOffset expiresAt, IReadOnlyList<KeyValuePair<string, string>>? subresources = null,
        IReadOnlyList<KeyValuePair<string, string>>? headers = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(verb);
        ArgumentException.ThrowIfNullOrEmpty(key);
        var validity = (long)Math.Floor((expiresAt - now).TotalSeconds);
        if (validity < 1 || validity > (long)MaxValidity.TotalSeconds)
        {
            throw new ArgumentOutOfRangeException(nameof(expiresAt), expiresAt, "a presigned URL is valid for 1 second to 7 days");
        }

        var signed = CheckHeaders(headers ?? []);
        var (date, stamp, scope, path, host) = Frame(key, now);
        signed["host"] = host;
        var signedNames = string.Join(';', signed.Keys);

        var query = new List<(string Name, string Value)>
        {
            ("X-Amz-Algorithm", Algorithm),
            ("X-Amz-Credential", $"{_accessKey}/{scope}"),
            ("X-Amz-Date", stamp),
            ("X-Amz-Expires", validity.ToString(CultureInfo.InvariantCulture)),
            ("X-Amz-SignedHeaders", signedNames),
        };
        foreach (var (name, value) in subresources ?? [])
        {
            query.Add((name, value));
        }

        var canonicalQuery = string.Join('&', query
            .Select(p => (Name: Encode(p.Name, keepSlash: false), Value: Encode(p.Value, keepSlash: false)))
            .OrderBy(p => p.Name, StringComparer.Ordinal)
            .ThenBy(p => p.Value, StringComparer.Ordinal)
            .Select(p => $"{p.Name}={p.Value}"));
        var canonicalHeaders = string.Concat(signed.Select(h => $"{h.Key}:{h.Value}\n"));
        var canonicalRequest = $"{verb}\n{path}\n{canonicalQuery}\n{canonicalHeaders}\n{signedNames}\nUNSIGNED-PAYLOAD";
        var stringToSign = $"{Algorithm}\n{stamp}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";

        var signature = Sign(date, stringToSign);
        return new Uri($"{_endpoint.Scheme}://{host}{path}?{canonicalQuery}&X-Amz-Signature={signature}");
    }

    /// <summary>
    /// A request signed in its <c>Authorization</c> header (SigV4): the body by its SHA-256, and <c>host</c>,
    /// <c>x-amz-content-sha256</c>, <c>x-amz-date</c>, the content type and every header in <paramref name="headers"/>
    /// (lower-case ASCII names such as <c>x-amz-meta-…</c>, printable ASCII values) as signed headers, so the endpoint
    /// refuses a request whose metadata was changed on the way. <paramref name="query"/> holds sub-resources
    /// (<c>uploads</c>, <c>uploadId</c>); an empty value is sent as the bare name.
    /// </summary>
    public HttpRequestMessage CreateRequest(HttpMethod method, string key, DateTimeOffset now, IReadOnlyList<KeyValuePair<string, string>> query,
        IReadOnlyList<KeyValuePair<string, string>> headers, ReadOnlyMemory<byte> body, string? contentType = null)
    {
        ArgumentNullException.ThrowIfNull(method);
        ArgumentException.ThrowIfNullOrEmpty(key);
        var signed = CheckHeaders(headers);
        var (date, stamp, scope, path, host) = Frame(key, now);
        var payload = Hex(SHA256.HashData(body.Span));
        signed["host"] = host;
        signed["x-amz-content-sha256"] = payload;
        signed["x-amz-date"] = stamp;
        if (contentType is not null)
        {
            signed["content-type"] = contentType;
        }

        var encoded = query.Select(p => (Name: Encode(p.Key, keepSlash: false), Value: Encode(p.Value, keepSlash: false)))
            .OrderBy(p => p.Name, StringComparer.Ordinal).ThenBy(p => p.Value, StringComparer.Ordinal).ToList();
        var canonicalQuery = string.Join('&', encoded.Select(p => $"{p.Name}={p.Value}"));
        var signedNames = string.Join(';', signed.Keys);
        var canonicalHeaders = string.Concat(signed.Select(h => $"{h.Key}:{h.Value}\n"));
        var canonicalRequest = $"{method.Method}\n{path}\n{canonicalQuery}\n{canonicalHeaders}\n{signedNames}\n{payload}";
        var stringToSign = $"{Algorithm}\n{stamp}\n{scope}\n{Hex(SHA256.HashData(Encoding.UTF8.GetBytes(canonicalRequest)))}";
        var signature = Sign(date, stringToSign);

        var sent = string.Join('&', encoded.Select(p => p.Value.Length == 0 ? p.Name : $"{p.Name}={p.Value}"));
        var request = new HttpRequestMessage(method, new Uri($"{_endpoint.Scheme}://{host}{path}{(sent.Length == 0 ? "" : "?" + sent)}"))
        {
            Content = new ReadOnlyMemoryContent(body),
        };
        foreach (var (name, value) in signed)
        {
            if (name is not ("host" or "content-type"))
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
        }

        if (contentType is not null)
        {
            request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        }

        request.Headers.TryAddWithoutValidation("Authorization", $"{Algorithm} Credential={_accessKey}/{scope}, SignedHeaders={signedNames}, Signature={signature}");
        return request;
    }

    /// <summary>
    /// The caller's headers as SigV4 signs them (sorted, inner spaces folded): lower-case ASCII names other than the ones
    /// the signer sets itself, each once, with printable ASCII values; anything else is an <see cref="ArgumentException"/>.
    /// </summary>
    private static SortedDictionary<string, string> CheckHeaders(IReadOnlyList<KeyValuePair<string, string>> headers)
    {
        var signed = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in headers)
        {
            if (name.Length == 0 || !name.All(c => c is (>= 'a' and <= 'z') or (>= '0' and <= '9') or '-' or '_') || signed.ContainsKey(name)
                || name is "host" or "authorization" or "content-type" or "x-amz-date" or "x-amz-content-sha256")
            {
                throw new ArgumentException($"'{name}' is not a lower-case header name of the caller's, or is given twice", nameof(headers));
            }

            if (!value.All(c => c is >= ' ' and <= '~'))
            {
                throw new ArgumentException($"the value of header '{name}' is not printable ASCII", nameof(headers));
            }

            signed[name] = string.Join(' ', value.Split(' ', StringSplitOptions.RemoveEmptyEntries));
        }

        return signed;
    }

    /// <summary>What every signature of <paramref name="key"/> at <paramref name="now"/> is made of: the day, the time stamp, the credential scope, the encoded path and the host header.</summary>
    private (string Date, string Stamp, string Scope, string Path, string Host) Frame(string key, DateTimeOffset now)
    {
        var utc = now.UtcDateTime;
        var date = utc.ToString("yyyyMMdd", CultureInfo.InvariantCulture);
        var stamp = utc.ToString("yyyyMMdd'T'HHmmss'Z'", CultureInfo.InvariantCulture);
        var path = "/" + Encode(_bucket, keepSlash: false) + "/" + Encode(key, keepSlash: true);
        var host = _endpoint.IsDefaultPort ? HostForHeader(_endpoint) : $"{HostForHeader(_endpoint)}:{_endpoint.Port.ToString(CultureInfo.InvariantCulture)}";
        return (date, stamp, $"{date}/{_region}/{Service}/aws4_request", path, host);
    }

    /// <summary>The hex signature of <paramref name="stringToSign"/> with the key derived for <paramref name="date"/>, the region and s3.</summary>
    private string Sign(string date, string stringToSign) =>
        Hex(Hmac(Hmac(Hmac(Hmac(Hmac(_secret, date), _region), Service), "aws4_request"), stringToSign));

    /// <summary>
    /// SigV4's URI encoding: every byte of the UTF-8 form except A–Z, a–z, 0–9, '-', '.', '_', '~' (and '/' in a key)
    /// as %XX with upper-case hex.
    /// </summary>
    internal static string Encode(string value, bool keepSlash)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        var text = new StringBuilder(bytes.Length * 3);
        foreach (var b in bytes)
        {
            if (b is (>= (byte)'A' and <= (byte)'Z') or (>= (byte)'a' and <= (byte)'z') or (>= (byte)'0' and <= (byte)'9')
                or (byte)'-' or (byte)'.' or (byte)'_' or (byte)'~' || (keepSlash && b == (byte)'/'))
            {
                text.Append((char)b);
            }
            else
            {
                text.Append('%').Append(b.ToString("X2", CultureInfo.InvariantCulture));
            }
        }

        return text.ToString();
    }

    private static string HostForHeader(Uri endpoint) => endpoint.HostNameType == UriHostNameType.IPv6 ? $"[{endpoint.IdnHost.Trim('[', ']')}]" : endpoint.IdnHost;

    private static string Hex(byte[] bytes) => Convert.ToHexString(bytes).ToLowerInvariant();

    private static byte[] Hmac(byte[] key, string data) => HMACSHA256.HashData(key, Encoding.UTF8.GetBytes(data));
}
