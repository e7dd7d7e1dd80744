using System.Net;
using System.Net.Sockets;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;

namespace EtPhoneHome.Core.Webhooks;

/// <summary>What one POST came to. Response bodies are never read, so they cannot end up in logs.</summary>
public sealed record WebhookSendResult(int? StatusCode, string? Error, long DurationMs)
{
    public bool Success => StatusCode is >= 200 and < 300;
}

/// <summary>
/// Sends one signed delivery: POST of the JSON body with the event, delivery, timestamp and signature
/// headers; redirects are not followed (a 3xx is a failed attempt); every request has a timeout.
/// </summary>
public sealed class WebhookSender : IDisposable
{
    private readonly HttpClient _http;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;

    public WebhookSender(TimeSpan timeout, TimeProvider? time = null, HttpMessageHandler? handler = null, bool allowLinkLocal = false)
    {
        _timeout = timeout;
        _time = time ?? TimeProvider.System;
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            UseCookies = false,
            // The address is checked where the connection is made, after DNS: a name that resolves (or is rebound) to a
            // cloud metadata service never gets the signed events.
            ConnectCallback = (context, ct) => ConnectAsync(context.DnsEndPoint, allowLinkLocal, ct),
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.UserAgent.Add(new ProductInfoHeaderValue("EtPhoneHome-Webhook", "1"));
    }

    public async Task<WebhookSendResult> SendAsync(string url, string secret, string eventType, string deliveryId, string body, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        if (!WebhookConfiguration.IsValidUrl(url, out var invalid))
        {
            return new WebhookSendResult(null, invalid, 0);
        }

        var clock = Stopwatch.StartNew();
        var timestamp = _time.GetUtcNow().ToUnixTimeSeconds();
        using var request = new HttpRequestMessage(HttpMethod.Post, url.Trim())
        {
            Content = new StringContent(body, Encoding.UTF8, "application/json"),
        };
        request.Headers.Add(WebhookSignature.EventHeader, eventType);
        request.Headers.Add(WebhookSignature.DeliveryHeader, deliveryId);
        request.Headers.Add(WebhookSignature.TimestampHeader, timestamp.ToString(System.Globalization.CultureInfo.InvariantCulture));
        request.Headers.Add(WebhookSignature.SignatureHeader, WebhookSignature.Sign(secret, timestamp, body));
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(_timeout);
        try
        {
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, limit.Token).ConfigureAwait(false);
            var code = (int)response.StatusCode;
            return new WebhookSendResult(code, code is >= 200 and < 300 ? null : $"HTTP {code} {response.ReasonPhrase}".TrimEnd(), clock.ElapsedMilliseconds);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return new WebhookSendResult(null, $"no answer within {_timeout.TotalSeconds:0.#} s", clock.ElapsedMilliseconds);
        }
        catch (HttpRequestException ex)
        {
            // Messages name the host and port at most; never the URL's user info or query.
            return new WebhookSendResult(null, $"request failed: {ex.Message}", clock.ElapsedMilliseconds);
        }
    }

    public void Dispose() => _http.Dispose();

    /// <summary>
    /// Link-local addresses (169.254.0.0/16, fe80::/10) — where cloud metadata services answer (169.254.169.254,
    /// fd00:ec2::254) — and the other metadata addresses: no webhook goes there unless the operator opted in.
    /// </summary>
    public static bool IsLinkLocalOrMetadata(IPAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            var b = address.GetAddressBytes();
            return (b[0] == 169 && b[1] == 254) || address.Equals(AlibabaMetadata);
        }

        return address.IsIPv6LinkLocal || address.Equals(AwsMetadataV6);
    }

    private static readonly IPAddress AlibabaMetadata = IPAddress.Parse("100.100.100.200");
    private static readonly IPAddress AwsMetadataV6 = IPAddress.Parse("fd00:ec2::254");

    private static async ValueTask<Stream> ConnectAsync(DnsEndPoint endPoint, bool allowLinkLocal, CancellationToken ct)
    {
        var addresses = IPAddress.TryParse(endPoint.Host, out var literal)
            ? [literal]
            : await Dns.GetHostAddressesAsync(endPoint.Host, ct).ConfigureAwait(false);
        var usable = allowLinkLocal ? addresses : addresses.Where(a => !IsLinkLocalOrMetadata(a)).ToArray();
        if (usable.Length == 0)
        {
            throw new HttpRequestException(
                $"webhook destination {endPoint.Host} is a link-local or cloud metadata address ({string.Join(", ", addresses.Select(a => a.ToString()))}); "
                + $"set {WebhookOptions.AllowLinkLocalVariable}=1 to allow it");
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(usable, endPoint.Port, ct).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
