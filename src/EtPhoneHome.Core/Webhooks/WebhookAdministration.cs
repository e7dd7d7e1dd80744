using System.Text.Json.Nodes;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Webhooks;

/// <summary>The answer to a test delivery.</summary>
public sealed record WebhookTestResult
{
    /// <summary>Destination, redacted (no user info, no query string).</summary>
    public required string Url { get; init; }
    public required string DeliveryId { get; init; }
    public string? Uuid { get; init; }
    public int? StatusCode { get; init; }
    public required bool Success { get; init; }
    public required long DurationMs { get; init; }
    public string? Error { get; init; }
}

/// <summary>Operator actions on webhooks, shared by the cmdlets and the eph-server verbs.</summary>
public static class WebhookAdministration
{
    /// <summary>
    /// The URL a test goes to: <paramref name="url"/> when given, else the client's own URL, else the global one.
    /// Throws <see cref="InvalidOperationException"/> naming what to configure when none applies.
    /// </summary>
    public static string ResolveTestUrl(ISettingsStore registry, WebhookConfiguration config, string? url, ClientRecord? client)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(config);
        var target = string.IsNullOrWhiteSpace(url) ? config.UrlFor(client?.WebhookUrl) : url.Trim();
        if (target is null)
        {
            throw new InvalidOperationException(
                $"no webhook URL: give one, set the client's webhook URL, or set {WebhookConfiguration.UrlEnvironmentVariable} (or the '{WebhookConfiguration.UrlSetting}' setting)");
        }

        if (!WebhookConfiguration.IsValidUrl(target, out var error))
        {
            throw new ArgumentException(error, nameof(url));
        }

        return target;
    }

    /// <summary>Sends a signed <c>webhook.test</c> event now (not through the outbox) and reports the answer.</summary>
    public static async Task<WebhookTestResult> TestAsync(
        ISettingsStore registry,
        string? url,
        ClientRecord? client,
        string actor,
        TimeSpan? timeout = null,
        Func<string, string?>? environment = null,
        HttpMessageHandler? handler = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var config = WebhookConfiguration.Resolve(registry, environment);
        var target = ResolveTestUrl(registry, config, url, client);
        var secret = config.Secret ?? throw new InvalidOperationException(
            $"no webhook secret: set {WebhookConfiguration.SecretEnvironmentVariable} (or the '{WebhookConfiguration.SecretSetting}' setting); deliveries are never sent unsigned");
        var deliveryId = Guid.NewGuid().ToString();
        var body = WebhookEvents.Envelope(WebhookEvents.Test, DateTimeOffset.UtcNow, deliveryId, client?.Uuid, client?.DisplayName, client?.Hostname,
            new JsonObject { ["message"] = "test delivery from EtPhoneHome", ["sent_by"] = actor });
        using var sender = new WebhookSender(timeout ?? new WebhookOptions().RequestTimeout, handler: handler, allowLinkLocal: WebhookOptions.AllowLinkLocalFrom());
        var result = await sender.SendAsync(target, secret, WebhookEvents.Test, deliveryId, body, ct).ConfigureAwait(false);
        return new WebhookTestResult
        {
            Url = WebhookConfiguration.Redact(target),
            DeliveryId = deliveryId,
            Uuid = client?.Uuid,
            StatusCode = result.StatusCode,
            Success = result.Success,
            DurationMs = result.DurationMs,
            Error = result.Error,
        };
    }
}
