using System.Text.Json.Nodes;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The event outbox as a webhook queue: events with their full webhook body, their delivery state, the delivery log
/// and the single dispatcher lease.
/// </summary>
public interface IWebhookOutbox
{
    /// <summary>
    /// Writes an event to the outbox on its own (for events that come with no other registry change, such as
    /// client.unhealthy). The row carries the full webhook body: event, timestamp, delivery_id, client, data.
    /// </summary>
    WebhookDelivery RecordEvent(string type, string? uuid, JsonObject? data = null);

    /// <summary>Outbox events with their delivery state, newest first.</summary>
    IReadOnlyList<WebhookDelivery> ListWebhookDeliveries(WebhookDeliveryQuery query);

    /// <summary>One event by its row id or its delivery id; null when there is none.</summary>
    WebhookDelivery? GetWebhookDelivery(string idOrDeliveryId);

    /// <summary>The delivery log of the given events, oldest attempt first.</summary>
    IReadOnlyList<WebhookAttempt> ListWebhookAttempts(IReadOnlyCollection<long> eventIds);

    /// <summary>Queues a failed, undeliverable or delivered event again (attempts start over, same delivery id).</summary>
    WebhookDelivery ResendWebhookDelivery(string idOrDeliveryId, string actor);

    /// <summary>Pending events, oldest first, with each client's own webhook URL (for the dispatcher).</summary>
    IReadOnlyList<WebhookDelivery> ListPendingWebhookEvents(int limit);

    /// <summary>Logs one attempt and moves its event on: delivered, pending until the retry time, or failed.</summary>
    void RecordWebhookAttempt(WebhookAttemptResult result);

    /// <summary>Marks a pending event as having no destination (kept and re-sendable).</summary>
    void MarkWebhookNoDestination(long eventId);

    /// <summary>
    /// Takes or renews the single dispatcher lease, so two hubs on one registry never both send. A lease whose
    /// time ran out, or whose holder on this host is no longer running, can be taken.
    /// </summary>
    bool TryAcquireWebhookLease(string owner, TimeSpan duration);

    /// <summary>Gives the lease up (a stopping hub), so another hub can take over at once.</summary>
    void ReleaseWebhookLease(string owner);
}
