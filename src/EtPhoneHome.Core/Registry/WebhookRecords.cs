namespace EtPhoneHome.Core.Registry;

/// <summary>Where an outbox event stands with its webhook delivery.</summary>
public enum WebhookDeliveryStatus
{
    /// <summary>Waiting for its first attempt or for a retry.</summary>
    Pending,
    /// <summary>A destination answered 2xx.</summary>
    Delivered,
    /// <summary>Every attempt failed; kept, and re-sendable.</summary>
    Failed,
    /// <summary>No webhook URL applied when it was due; kept, and re-sendable once one is configured.</summary>
    NoDestination,
}

/// <summary>One outbox event and the state of its delivery.</summary>
public sealed record WebhookDelivery
{
    /// <summary>Row id of the event in the outbox (ascending = the order events happened).</summary>
    public required long Id { get; init; }
    /// <summary>Stable id sent as X-EtPhoneHome-Delivery; the same on every attempt, so receivers can drop duplicates.</summary>
    public required string DeliveryId { get; init; }
    public required string Event { get; init; }
    public string? Uuid { get; init; }
    /// <summary>The JSON body sent to receivers.</summary>
    public required string Payload { get; init; }
    public required DateTimeOffset CreatedAt { get; init; }
    public required WebhookDeliveryStatus Status { get; init; }
    public int Attempts { get; init; }
    public DateTimeOffset? NextAttemptAt { get; init; }
    public DateTimeOffset? LastAttemptAt { get; init; }
    public DateTimeOffset? DeliveredAt { get; init; }
    public int? LastStatusCode { get; init; }
    public string? LastError { get; init; }
    /// <summary>Destination of the last attempt, redacted (no user info, no query string).</summary>
    public string? Url { get; init; }
    /// <summary>The client's own webhook URL at the time the row was read (null = the global one applies).</summary>
    public string? ClientWebhookUrl { get; init; }
}

/// <summary>One attempt to deliver an event (the delivery log).</summary>
public sealed record WebhookAttempt
{
    public required long EventId { get; init; }
    public required int Attempt { get; init; }
    /// <summary>Redacted destination.</summary>
    public required string Url { get; init; }
    public int? StatusCode { get; init; }
    public string? Error { get; init; }
    public required DateTimeOffset At { get; init; }
    public required long DurationMs { get; init; }
}

/// <summary>Filters of <see cref="IWebhookOutbox.ListWebhookDeliveries"/>; all given filters intersect. Newest first.</summary>
public sealed record WebhookDeliveryQuery
{
    public IReadOnlyList<string>? Uuids { get; init; }
    /// <summary>Event names; * and ? wildcards.</summary>
    public IReadOnlyList<string>? Events { get; init; }
    public WebhookDeliveryStatus? Status { get; init; }
    public int Limit { get; init; } = 100;
}

/// <summary>What one delivery attempt came to; the registry logs it and moves the event on.</summary>
public sealed record WebhookAttemptResult
{
    public required long EventId { get; init; }
    /// <summary>Redacted destination.</summary>
    public required string Url { get; init; }
    public int? StatusCode { get; init; }
    public string? Error { get; init; }
    public required long DurationMs { get; init; }
    /// <summary>True when the receiver answered 2xx.</summary>
    public required bool Delivered { get; init; }
    /// <summary>When to try again; null after the last attempt (the event becomes Failed).</summary>
    public DateTimeOffset? RetryAt { get; init; }
}

/// <summary>
/// The one spelling of <see cref="WebhookDeliveryStatus"/> outside .NET (the registry's column, <c>--status</c> and
/// <c>--json</c> of the webhook verbs, the history's details): snake_case, as every status of the product.
/// </summary>
public static class WebhookDeliveryStatuses
{
    /// <summary>Every status's wire name, in the enum's order.</summary>
    public static IReadOnlyList<string> All { get; } = [.. Enum.GetValues<WebhookDeliveryStatus>().Select(Wire)];

    public static string Wire(WebhookDeliveryStatus status) => OperationNames.WireName(status);

    /// <summary>The status a wire name stands for; null when it names none.</summary>
    public static WebhookDeliveryStatus? Parse(string? text)
    {
        foreach (var status in Enum.GetValues<WebhookDeliveryStatus>())
        {
            if (string.Equals(Wire(status), text, StringComparison.Ordinal))
            {
                return status;
            }
        }

        return null;
    }
}
