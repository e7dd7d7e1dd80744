using EtPhoneHome.Core.Text;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;

namespace EtPhoneHome;

/// <summary>State of a webhook delivery (mirrors Core's WebhookDeliveryStatus value for value).</summary>
public enum EphWebhookDeliveryStatus
{
    Pending = WebhookDeliveryStatus.Pending,
    Delivered = WebhookDeliveryStatus.Delivered,
    Failed = WebhookDeliveryStatus.Failed,
    NoDestination = WebhookDeliveryStatus.NoDestination,
}

/// <summary>One attempt to deliver an event.</summary>
public sealed class EphWebhookAttempt
{
    internal EphWebhookAttempt(WebhookAttempt attempt)
    {
        Attempt = attempt.Attempt;
        Url = attempt.Url;
        StatusCode = attempt.StatusCode;
        Error = UntrustedText.ForTerminal(attempt.Error);
        At = attempt.At;
        Duration = TimeSpan.FromMilliseconds(attempt.DurationMs);
    }

    public int Attempt { get; }
    /// <summary>Destination without user info or query string.</summary>
    public string Url { get; }
    public int? StatusCode { get; }
    public string? Error { get; }
    public DateTimeOffset At { get; }
    public TimeSpan Duration { get; }

    public override string ToString() => $"#{Attempt} {StatusCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? Error}";
}

/// <summary>An outbox event and its delivery, as Get-EphWebhookDelivery writes it. Carries no secret.</summary>
public sealed class EphWebhookDelivery
{
    internal EphWebhookDelivery(WebhookDelivery d, string? clientName, IEnumerable<WebhookAttempt> attempts)
    {
        Id = d.Id;
        DeliveryId = d.DeliveryId;
        Event = d.Event;
        ClientId = d.Uuid;
        ClientName = clientName;
        Status = (EphWebhookDeliveryStatus)(int)d.Status;
        Attempts = d.Attempts;
        CreatedAt = d.CreatedAt;
        LastAttemptAt = d.LastAttemptAt;
        NextAttemptAt = d.Status == WebhookDeliveryStatus.Pending ? d.NextAttemptAt : null;
        DeliveredAt = d.DeliveredAt;
        LastStatusCode = d.LastStatusCode;
        LastError = UntrustedText.ForTerminal(d.LastError);
        Url = d.Url;
        Payload = d.Payload;
        AttemptLog = EphList.Of(attempts.Select(a => new EphWebhookAttempt(a)));
    }

    /// <summary>Row id in the outbox (ascending = the order events happened).</summary>
    public long Id { get; }
    /// <summary>The X-EtPhoneHome-Delivery value; the same on every attempt. Binds to Send-EphWebhookDelivery.</summary>
    public string DeliveryId { get; }
    public string Event { get; }
    public string? ClientId { get; }
    public string? ClientName { get; }
    public EphWebhookDeliveryStatus Status { get; }
    public int Attempts { get; }
    public DateTimeOffset CreatedAt { get; }
    public DateTimeOffset? LastAttemptAt { get; }
    public DateTimeOffset? NextAttemptAt { get; }
    public DateTimeOffset? DeliveredAt { get; }
    public int? LastStatusCode { get; }
    public string? LastError { get; }
    /// <summary>Destination of the last attempt, without user info or query string.</summary>
    public string? Url { get; }
    /// <summary>The JSON body receivers get.</summary>
    public string Payload { get; }
    public EphList<EphWebhookAttempt> AttemptLog { get; }

    public override string ToString() => $"{Id} {Event}: {Status}";
}

/// <summary>The answer to Test-EphWebhook.</summary>
public sealed class EphWebhookTestResult
{
    internal EphWebhookTestResult(WebhookTestResult r)
    {
        Url = r.Url;
        DeliveryId = r.DeliveryId;
        ClientId = r.Uuid;
        Success = r.Success;
        StatusCode = r.StatusCode;
        Duration = TimeSpan.FromMilliseconds(r.DurationMs);
        Error = UntrustedText.ForTerminal(r.Error);
    }

    /// <summary>Destination without user info or query string.</summary>
    public string Url { get; }
    public string DeliveryId { get; }
    public string? ClientId { get; }
    public bool Success { get; }
    public int? StatusCode { get; }
    public TimeSpan Duration { get; }
    public string? Error { get; }

    public override string ToString() => Success ? $"{Url}: {StatusCode}" : $"{Url}: {Error}";
}

/// <summary>Whether a client's over-limit requests are only warned about or refused.</summary>
public enum EphRateLimitMode
{
    Warn = RateLimitMode.Warn,
    Enforce = RateLimitMode.Enforce,
}

/// <summary>A client's rate-limit counters (the reference's get_rate_limit_stats fields), as Get-EphRateLimitStats writes them.</summary>
public sealed class EphRateLimitStats
{
    internal EphRateLimitStats(RateLimitStats s, string name)
    {
        ClientId = s.Uuid;
        PSComputerName = name;
        RequestsPerMinute = s.RequestsPerMinute;
        CurrentConcurrent = s.CurrentConcurrent;
        RpmLimit = s.RpmLimit;
        ConcurrentLimit = s.ConcurrentLimit;
        RpmWarnings = s.RpmWarnings;
        ConcurrentWarnings = s.ConcurrentWarnings;
        Mode = (EphRateLimitMode)(int)s.Mode;
    }

    public string ClientId { get; }
    /// <summary>The client's display name.</summary>
    public string PSComputerName { get; }
    /// <summary>Requests in the last 60 seconds, from every process.</summary>
    public int RequestsPerMinute { get; }
    /// <summary>Requests in flight now, from every process.</summary>
    public int CurrentConcurrent { get; }
    public int RpmLimit { get; }
    public int ConcurrentLimit { get; }
    public long RpmWarnings { get; }
    public long ConcurrentWarnings { get; }
    public EphRateLimitMode Mode { get; }

    public override string ToString() => $"{PSComputerName}: {RequestsPerMinute}/{RpmLimit} rpm, {CurrentConcurrent}/{ConcurrentLimit} in flight";
}
