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

    public WebhookSender(TimeSpan timeout, TimeProvider? time = null, HttpMessageHandler? handler = null)
    {
        _timeout = timeout;
        _time = time ?? TimeProvider.System;
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = timeout,
            PooledConnectionLifetime = TimeSpan.FromMinutes(2),
            UseCookies = false,
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
}
