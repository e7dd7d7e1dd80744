using System.Globalization;
using System.Text.Json.Nodes;

namespace EtPhoneHome.Core.Registry;

/// <summary>Names of the events the registry writes to the outbox, and the body every delivery carries.</summary>
public static class WebhookEvents
{
    public const string ClientConnected = "client.connected";
    public const string ClientDisconnected = "client.disconnected";
    public const string ClientKeyMismatch = "client.key_mismatch";
    public const string ClientUnhealthy = "client.unhealthy";
    public const string ClientPending = "client.pending";
    public const string CommandExecuted = "command_executed";
    public const string FileAccessed = "file_accessed";

    /// <summary>Sent only by Test-EphWebhook / <c>eph-server webhooks test</c>; never written to the outbox.</summary>
    public const string Test = "webhook.test";

    /// <summary>Every event name the outbox may hold.</summary>
    public static IReadOnlyList<string> All { get; } =
        [ClientConnected, ClientDisconnected, ClientKeyMismatch, ClientUnhealthy, ClientPending, CommandExecuted, FileAccessed];

    /// <summary>Longest command text carried in a command_executed event.</summary>
    public const int MaxCommandLength = 500;

    /// <summary>
    /// The JSON body of a delivery: <c>{event, timestamp, delivery_id, client: {uuid, display_name, hostname}, data}</c>,
    /// compact, with the timestamp in ISO-8601 UTC to the second.
    /// </summary>
    public static string Envelope(string type, DateTimeOffset timestamp, string deliveryId, string? uuid, string? displayName, string? hostname, JsonObject data)
    {
        ArgumentNullException.ThrowIfNull(data);
        var body = new JsonObject
        {
            ["event"] = type,
            ["timestamp"] = timestamp.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture),
            ["delivery_id"] = deliveryId,
            ["client"] = new JsonObject
            {
                ["uuid"] = uuid,
                ["display_name"] = displayName,
                ["hostname"] = hostname,
            },
            ["data"] = data,
        };
        return body.ToJsonString();
    }
}
