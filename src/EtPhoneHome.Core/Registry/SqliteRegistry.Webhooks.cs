using System.Globalization;
using System.Text.Json.Nodes;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// The outbox as a webhook queue: event envelopes, delivery state, the delivery log and the dispatcher lease.
public sealed partial class SqliteRegistry
{
    private static readonly string EventPending = WebhookDeliveryStatuses.Wire(WebhookDeliveryStatus.Pending);
    private static readonly string EventDelivered = WebhookDeliveryStatuses.Wire(WebhookDeliveryStatus.Delivered);
    private static readonly string EventFailed = WebhookDeliveryStatuses.Wire(WebhookDeliveryStatus.Failed);

    public WebhookDelivery RecordEvent(string type, string? uuid, JsonObject? data = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(type);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var id = InsertEvent(c, tx, type, uuid, (JsonObject?)data?.DeepClone());
        var row = GetDelivery(c, tx, id)!;
        tx.Commit();
        return row;
    }

    /// <summary>
    /// Inserts an outbox row whose payload is the complete webhook body, built now, in the caller's
    /// transaction: the client block is a snapshot of the client as it was when the event happened.
    /// </summary>
    private long InsertEvent(DbConnection c, DbTransaction tx, string type, string? uuid, JsonObject? data)
    {
        data ??= [];
        string? displayName = null;
        string? hostname = null;
        if (uuid is not null)
        {
            using var cmd = Command(c, tx, "SELECT display_name, hostname, platform FROM clients WHERE uuid = @u", ("@u", uuid));
            using var r = cmd.ExecuteReader();
            if (r.Read())
            {
                displayName = r.IsDBNull(0) ? null : r.GetString(0);
                hostname = r.IsDBNull(1) ? null : r.GetString(1);
                if (type == WebhookEvents.ClientConnected && !data.ContainsKey("platform") && !r.IsDBNull(2))
                {
                    data["platform"] = r.GetString(2);
                }
            }
        }

        // A pending key has no client yet: what the agent claimed is the best description.
        hostname ??= data["claimed_hostname"]?.GetValue<string>();
        var now = _time.GetUtcNow();
        var deliveryId = Guid.NewGuid().ToString();
        var envelope = WebhookEvents.Envelope(type, now, deliveryId, uuid, displayName, hostname, data);
        var ms = now.ToUnixTimeMilliseconds();
        using var insert = Command(c, tx, """
            INSERT INTO events(type, uuid, payload, created_at, next_attempt_at, delivery_id)
            VALUES (@t, @u, @p, @now, @now, @d) RETURNING id
            """,
            ("@t", type), ("@u", uuid), ("@p", envelope), ("@now", ms), ("@d", deliveryId));
        return (long)insert.ExecuteScalar()!;
    }

    public IReadOnlyList<WebhookDelivery> ListWebhookDeliveries(WebhookDeliveryQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Limit is < 1 or > 100_000)
        {
            throw new RegistryValidationException("limit", $"limit must be between 1 and 100000, got {query.Limit}");
        }

        using var c = Connect();
        using var cmd = c.CreateCommand();
        var where = new List<string>();
        var n = 0;
        string P(object value)
        {
            var name = "@p" + n++.ToString(CultureInfo.InvariantCulture);
            cmd.Parameters.AddWithValue(name, value);
            return name;
        }

        if (query.Uuids is { Count: > 0 } uuids)
        {
            where.Add("e.uuid IN (" + string.Join(",", uuids.Select(u => P(u))) + ")");
        }

        if (query.Events is { Count: > 0 } events)
        {
            where.Add("(" + string.Join(" OR ", events.Select(e => $"e.type {_engine.Like} {P(WildcardToLike(e))} ESCAPE '\\'")) + ")");
        }

        if (query.Status is { } status)
        {
            where.Add($"e.status = {P(StatusText(status))}");
        }

        cmd.CommandText = DeliverySelect + (where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where))
            + $" ORDER BY e.id DESC LIMIT {P(query.Limit)}";
        return ReadAll(cmd, ReadDelivery);
    }

    public WebhookDelivery? GetWebhookDelivery(string idOrDeliveryId)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(idOrDeliveryId);
        using var c = Connect();
        return FindDelivery(c, null, idOrDeliveryId);
    }

    public IReadOnlyList<WebhookAttempt> ListWebhookAttempts(IReadOnlyCollection<long> eventIds)
    {
        ArgumentNullException.ThrowIfNull(eventIds);
        if (eventIds.Count == 0)
        {
            return [];
        }

        using var c = Connect();
        using var cmd = c.CreateCommand();
        var names = eventIds.Distinct().Select((id, i) =>
        {
            var name = "@e" + i.ToString(CultureInfo.InvariantCulture);
            cmd.Parameters.AddWithValue(name, id);
            return name;
        });
        cmd.CommandText = $"SELECT * FROM webhook_attempts WHERE event_id IN ({string.Join(",", names)}) ORDER BY event_id, id";
        return ReadAll(cmd, r => new WebhookAttempt
        {
            EventId = Long(r, "event_id")!.Value,
            Attempt = (int)Long(r, "attempt")!.Value,
            Url = Str(r, "url")!,
            StatusCode = (int?)Long(r, "status_code"),
            Error = Str(r, "error"),
            At = Time(r, "at")!.Value,
            DurationMs = Long(r, "duration_ms")!.Value,
        });
    }

    public WebhookDelivery ResendWebhookDelivery(string idOrDeliveryId, string actor)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(idOrDeliveryId);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var row = FindDelivery(c, tx, idOrDeliveryId)
            ?? throw new RegistryNotFoundException($"no webhook delivery with id {idOrDeliveryId}");
        if (row.Status == WebhookDeliveryStatus.Pending)
        {
            throw new InvalidOperationException($"webhook delivery {row.Id} ({row.Event}) is already queued (attempt {row.Attempts + 1} is due {row.NextAttemptAt:u})");
        }

        Exec(c, tx, "UPDATE events SET status = 'pending', attempts = 0, next_attempt_at = @now, delivered_at = NULL WHERE id = @id",
            ("@now", Now), ("@id", row.Id));
        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.ResendWebhook,
            Uuid = row.Uuid,
            Actor = actor,
            Surface = "registry",
            Status = OperationNames.Wire(OperationStatus.Succeeded),
            Detail = $"{row.Event} {row.DeliveryId} (was {StatusText(row.Status)})",
        });
        var result = GetDelivery(c, tx, row.Id)!;
        tx.Commit();
        return result;
    }

    public IReadOnlyList<WebhookDelivery> ListPendingWebhookEvents(int limit)
    {
        using var c = Connect();
        using var cmd = Command(c, null, DeliverySelect + " WHERE e.status = 'pending' ORDER BY e.id LIMIT @l", ("@l", limit));
        return ReadAll(cmd, ReadDelivery);
    }

    public void RecordWebhookAttempt(WebhookAttemptResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var now = Now;
        var attempts = Scalar<long>(c, tx, "SELECT attempts FROM events WHERE id = @id", ("@id", result.EventId)) + 1;
        Exec(c, tx, """
            INSERT INTO webhook_attempts(event_id, url, attempt, status_code, error, at, duration_ms)
            VALUES (@e, @url, @n, @code, @err, @now, @ms)
            """,
            ("@e", result.EventId), ("@url", result.Url), ("@n", attempts), ("@code", result.StatusCode), ("@err", result.Error),
            ("@now", now), ("@ms", result.DurationMs));
        var status = result.Delivered ? EventDelivered : result.RetryAt is null ? EventFailed : EventPending;
        Exec(c, tx, """
            UPDATE events SET attempts = @n, status = @s, url = @url, last_attempt_at = @now, last_status_code = @code,
                last_error = @err, delivered_at = CASE WHEN @s = 'delivered' THEN @now ELSE delivered_at END,
                next_attempt_at = @next
            WHERE id = @e
            """,
            ("@n", attempts), ("@s", status), ("@url", result.Url), ("@now", now), ("@code", result.StatusCode), ("@err", result.Error),
            ("@next", result.Delivered ? null : result.RetryAt?.ToUnixTimeMilliseconds()), ("@e", result.EventId));
        tx.Commit();
    }

    public void MarkWebhookNoDestination(long eventId)
    {
        using var c = Connect();
        Exec(c, null, "UPDATE events SET status = 'no_destination', next_attempt_at = NULL, last_error = @err WHERE id = @id AND status = 'pending'",
            ("@err", "no webhook URL is configured for this client or globally"), ("@id", eventId));
    }

    public bool TryAcquireWebhookLease(string owner, TimeSpan duration)
    {
        ArgumentException.ThrowIfNullOrEmpty(owner);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var now = Now;
        using (var read = Command(c, tx, "SELECT owner, host, pid, until FROM webhook_dispatch_lease WHERE id = 1"))
        using (var r = read.ExecuteReader())
        {
            if (r.Read())
            {
                var holder = r.GetString(0);
                var expired = r.GetInt64(3) <= now;
                var deadHere = r.GetString(1) == ProcessLiveness.Host && !ProcessLiveness.IsAlive((int)r.GetInt64(2));
                if (holder != owner && !expired && !deadHere)
                {
                    return false;
                }
            }
        }

        Exec(c, tx, """
            INSERT INTO webhook_dispatch_lease(id, owner, host, pid, until) VALUES (1, @o, @h, @p, @until)
            ON CONFLICT(id) DO UPDATE SET owner = excluded.owner, host = excluded.host, pid = excluded.pid, until = excluded.until
            """,
            ("@o", owner), ("@h", ProcessLiveness.Host), ("@p", ProcessLiveness.CurrentPid), ("@until", now + (long)duration.TotalMilliseconds));
        tx.Commit();
        return true;
    }

    public void ReleaseWebhookLease(string owner)
    {
        using var c = Connect();
        Exec(c, null, "DELETE FROM webhook_dispatch_lease WHERE id = 1 AND owner = @o", ("@o", owner));
    }

    private const string DeliverySelect = """
        SELECT e.*, c.webhook_url AS client_webhook_url
        FROM events e
        LEFT JOIN clients c ON c.uuid = e.uuid
        """;

    private static WebhookDelivery? GetDelivery(DbConnection c, DbTransaction? tx, long id)
    {
        using var cmd = Command(c, tx, DeliverySelect + " WHERE e.id = @id", ("@id", id));
        return ReadAll(cmd, ReadDelivery).FirstOrDefault();
    }

    private static WebhookDelivery? FindDelivery(DbConnection c, DbTransaction? tx, string idOrDeliveryId)
    {
        var text = idOrDeliveryId.Trim();
        if (long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return GetDelivery(c, tx, id);
        }

        using var cmd = Command(c, tx, DeliverySelect + " WHERE e.delivery_id = @d", ("@d", text.ToLowerInvariant()));
        return ReadAll(cmd, ReadDelivery).FirstOrDefault();
    }

    private static WebhookDelivery ReadDelivery(DbDataReader r)
    {
        var id = Long(r, "id")!.Value;
        return new WebhookDelivery
        {
            Id = id,
            // Rows written before schema 2 have no delivery id; their row id stands in, stable all the same.
            DeliveryId = Str(r, "delivery_id") ?? "event-" + id.ToString(CultureInfo.InvariantCulture),
            Event = Str(r, "type")!,
            Uuid = Str(r, "uuid"),
            Payload = Str(r, "payload")!,
            CreatedAt = Time(r, "created_at")!.Value,
            Status = WebhookDeliveryStatuses.Parse(Str(r, "status")) ?? WebhookDeliveryStatus.Pending,
            Attempts = (int)(Long(r, "attempts") ?? 0),
            NextAttemptAt = Time(r, "next_attempt_at"),
            LastAttemptAt = Time(r, "last_attempt_at"),
            DeliveredAt = Time(r, "delivered_at"),
            LastStatusCode = (int?)Long(r, "last_status_code"),
            LastError = Str(r, "last_error"),
            Url = Str(r, "url"),
            ClientWebhookUrl = Str(r, "client_webhook_url"),
        };
    }

    // The column holds the wire spelling (schema CHECK: pending, delivered, failed, no_destination).
    private static string StatusText(WebhookDeliveryStatus status) => WebhookDeliveryStatuses.Wire(status);

    /// <summary>Outbox rows after <paramref name="afterId"/>, oldest first.</summary>
    public IReadOnlyList<RegistryEvent> ListEvents(long afterId = 0, int limit = 1000)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM events WHERE id > @a ORDER BY id LIMIT @l", ("@a", afterId), ("@l", limit));
        return ReadAll(cmd, r => new RegistryEvent(
            Long(r, "id")!.Value, Str(r, "type")!, Str(r, "uuid"), Str(r, "payload")!, Time(r, "created_at")!.Value, Str(r, "status")!));
    }

    // The outbox row with its full webhook envelope: SqliteRegistry.Webhooks.cs.
    private void Emit(DbConnection c, DbTransaction tx, string type, string? uuid, JsonObject payload)
        => InsertEvent(c, tx, type, uuid, payload);
}
