using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Core.Webhooks;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// <c>webhooks</c> (list deliveries), <c>webhooks test</c> (send a signed test event now) and
/// <c>webhooks resend</c> (queue failed deliveries again).
/// </summary>
internal static class WebhookVerbs
{
    public static void Register(RootCommand root) => root.Subcommands.Add(WebhooksCommand());

    private static Option<string?> DataOption() => new("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "One JSON object per line (snake_case fields) instead of a table." };

    private static string Actor => $"{Environment.UserName} (eph-server)";

    private static Command WebhooksCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var status = new Option<string?>("--status") { Description = "Only deliveries in this state: pending, delivered, failed or no_destination." };
        status.AcceptOnlyFromAmong([.. WebhookDeliveryStatuses.All]);
        var client = new Option<string[]>("--client") { Description = "Only events of this client (uuid or display name; repeat for more).", AllowMultipleArgumentsPerToken = false };
        var evt = new Option<string[]>("--event") { Description = "Only these events (wildcards * and ?; repeat for more), e.g. client.*.", AllowMultipleArgumentsPerToken = false };
        var limit = new Option<int>("--limit") { Description = "Most rows, newest first (1–10000).", DefaultValueFactory = _ => 50 };
        limit.Validators.Add(r => OperatorVerbs.Range(r, 1, 10_000));
        var cmd = new Command("webhooks", "List webhook deliveries (the event outbox), newest first, with their state and last error.")
        {
            data, status, client, evt, limit, json,
        };
        cmd.SetAction((ParseResult pr) => Run(pr, pr.GetValue(data), registry => List(registry, new ListRequest
        {
            Status = ParseStatus(pr.GetValue(status)),
            Clients = pr.GetValue(client) ?? [],
            Events = pr.GetValue(evt) ?? [],
            Limit = pr.GetValue(limit),
            Json = pr.GetValue(json),
        }, pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error)));
        cmd.Subcommands.Add(TestCommand());
        cmd.Subcommands.Add(ResendCommand());
        return cmd;
    }

    private static Command TestCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var url = new Option<string?>("--url") { Description = "Send to this http(s) URL instead of the configured one." };
        var client = new Option<string?>("--client") { Description = "Describe this client in the test event and use its own webhook URL when it has one." };
        var cmd = new Command("test", "Send a signed webhook.test event now and print the receiver's HTTP status and the time it took.") { data, url, client, json };
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            var output = pr.InvocationConfiguration.Output;
            var error = pr.InvocationConfiguration.Error;
            try
            {
                using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
                var registry = services.Registry;
                return await TestAsync(registry, pr.GetValue(url), pr.GetValue(client), pr.GetValue(json), output, error, null, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or RegistryNotFoundException or IOException)
            {
                await error.WriteLineAsync($"eph-server webhooks test: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return cmd;
    }

    private static Command ResendCommand()
    {
        var data = DataOption();
        var ids = new Argument<string[]>("id") { Description = "Delivery ids (the numeric id or the delivery uuid) to queue again.", Arity = ArgumentArity.OneOrMore };
        var cmd = new Command("resend", "Queue failed (or undeliverable, or delivered) webhook deliveries again; the hub sends them with a fresh set of attempts.") { data, ids };
        cmd.SetAction((ParseResult pr) => Run(pr, pr.GetValue(data), registry =>
            Resend(registry.Webhooks, pr.GetValue(ids) ?? [], pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error)));
        return cmd;
    }

    private static int Run(ParseResult pr, string? data, Func<RegistryStores, int> verb)
    {
        var error = pr.InvocationConfiguration.Error;
        try
        {
            using var services = OperatorVerbs.Services(pr, data);
            var registry = services.Registry;
            return verb(registry);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or ArgumentException or RegistryNotFoundException)
        {
            error.WriteLine($"eph-server webhooks: {ex.Message}");
            return 1;
        }
    }

    internal static WebhookDeliveryStatus? ParseStatus(string? text) => text is null ? null
        : WebhookDeliveryStatuses.Parse(text) ?? throw new ArgumentException($"--status must be {string.Join(", ", WebhookDeliveryStatuses.All)}, got '{text}'");

    internal static string StatusText(WebhookDeliveryStatus status) => WebhookDeliveryStatuses.Wire(status);

    internal sealed record ListRequest
    {
        public WebhookDeliveryStatus? Status { get; init; }
        public IReadOnlyList<string> Clients { get; init; } = [];
        public IReadOnlyList<string> Events { get; init; } = [];
        public int Limit { get; init; } = 50;
        public bool Json { get; init; }
    }

    internal static int List(RegistryStores registry, ListRequest request, TextWriter output, TextWriter error)
    {
        var clients = ClientQueries.Find(registry.Clients, request.Clients.Count > 0 ? request.Clients : null, null, onlineOnly: false);
        if (Query(request, clients, error) is not { } query)
        {
            return OperatorVerbs.UsageError;
        }

        var config = WebhookConfiguration.Resolve(registry.Settings);
        return ListOutput(request, clients, registry.Webhooks.ListWebhookDeliveries(query),
            config.GlobalUrl is null ? null : WebhookConfiguration.Redact(config.GlobalUrl), config.HasSecret, output);
    }

    /// <summary>The deliveries query of a listing; null (after saying so) when a client named matches none.</summary>
    internal static WebhookDeliveryQuery? Query(ListRequest request, ClientLookup clients, TextWriter error)
    {
        if (request.Clients.Count > 0 && clients.NotFound.Count > 0)
        {
            error.WriteLine($"eph-server webhooks: no client named {string.Join(", ", clients.NotFound.Select(n => $"'{UntrustedText.ForTerminal(n, 100)}'"))}");
            return null;
        }

        return new WebhookDeliveryQuery
        {
            Uuids = request.Clients.Count > 0 ? clients.Clients.Select(c => c.Uuid).ToList() : null,
            Events = request.Events.Count > 0 ? request.Events : null,
            Status = request.Status,
            Limit = request.Limit,
        };
    }

    /// <summary>The webhooks verb's output (here and through --server); <paramref name="globalUrl"/> already redacted.</summary>
    internal static int ListOutput(ListRequest request, ClientLookup clients, IReadOnlyList<WebhookDelivery> deliveries, string? globalUrl, bool hasSecret, TextWriter output)
    {
        var names = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var c in clients.Clients)
        {
            names[c.Uuid] = c.DisplayName;
        }

        var rows = deliveries.Select(d => DeliveryRow.From(d, d.Uuid is null ? null : names.GetValueOrDefault(d.Uuid))).ToList();
        if (request.Json)
        {
            rows.ForEach(r => output.WriteLine(JsonSerializer.Serialize(r, VerbJson.Default.DeliveryRow)));
            return 0;
        }

        output.WriteLine($"Global webhook URL: {globalUrl ?? "none"}; secret: {(hasSecret ? "set" : "NOT SET (nothing is sent)")}");
        if (rows.Count == 0)
        {
            output.WriteLine("No webhook deliveries.");
            return 0;
        }

        output.Write(OperatorRows.Table(
            ["ID", "EVENT", "STATUS", "ATTEMPTS", "CLIENT", "CREATED", "LAST ERROR"],
            rows.Select(r => new[]
            {
                r.Id.ToString(CultureInfo.InvariantCulture), r.Event, r.Status, r.Attempts.ToString(CultureInfo.InvariantCulture),
                r.DisplayName ?? r.Uuid, r.CreatedAt, r.LastError,
            }),
            maxCell: 60));
        return 0;
    }

    internal static string ResentText(WebhookDelivery row) => $"Queued delivery {row.Id} ({row.Event}, {row.DeliveryId}) again; the hub sends it within seconds.";

    internal static async Task<int> TestAsync(RegistryStores registry, string? url, string? clientName, bool json, TextWriter output, TextWriter error,
        HttpMessageHandler? handler, CancellationToken ct)
    {
        ClientRecord? client = null;
        if (clientName is not null)
        {
            var lookup = ClientQueries.Find(registry.Clients, [clientName], null, onlineOnly: false);
            if (lookup.Clients.Count != 1)
            {
                await error.WriteLineAsync(lookup.Clients.Count == 0
                    ? $"eph-server webhooks test: no client named '{clientName}'"
                    : $"eph-server webhooks test: '{clientName}' matches {lookup.Clients.Count} clients; name one").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            client = lookup.Clients[0];
        }

        var result = await WebhookAdministration.TestAsync(registry.Settings, url, client, Actor, handler: handler, ct: ct).ConfigureAwait(false);
        if (json)
        {
            await output.WriteLineAsync(JsonSerializer.Serialize(TestRow.From(result), VerbJson.Default.TestRow)).ConfigureAwait(false);
        }
        else
        {
            await output.WriteLineAsync(result.Success
                ? $"{result.Url} answered {result.StatusCode} in {result.DurationMs} ms (delivery {result.DeliveryId})"
                : $"{result.Url} failed in {result.DurationMs} ms: {result.Error} (delivery {result.DeliveryId})").ConfigureAwait(false);
        }

        return result.Success ? 0 : 1;
    }

    internal static int Resend(IWebhookOutbox outbox, IReadOnlyList<string> ids, TextWriter output, TextWriter error)
    {
        var failures = 0;
        foreach (var id in ids)
        {
            try
            {
                output.WriteLine(ResentText(outbox.ResendWebhookDelivery(id, Actor)));
            }
            catch (Exception ex) when (ex is RegistryNotFoundException or InvalidOperationException)
            {
                error.WriteLine($"eph-server webhooks resend: {ex.Message}");
                failures++;
            }
        }

        return failures == 0 ? 0 : 1;
    }
}

/// <summary>One line of <c>webhooks --json</c>.</summary>
internal sealed record DeliveryRow(
    long Id,
    string DeliveryId,
    string Event,
    string? Uuid,
    string? DisplayName,
    string Status,
    int Attempts,
    string CreatedAt,
    string? LastAttemptAt,
    string? NextAttemptAt,
    string? DeliveredAt,
    int? LastStatusCode,
    string? LastError,
    string? Url)
{
    public static DeliveryRow From(WebhookDelivery d, string? displayName) => new(
        d.Id,
        d.DeliveryId,
        d.Event,
        d.Uuid,
        displayName,
        WebhookVerbs.StatusText(d.Status),
        d.Attempts,
        OperatorRows.Time(d.CreatedAt),
        d.LastAttemptAt is { } a ? OperatorRows.Time(a) : null,
        d.Status == WebhookDeliveryStatus.Pending && d.NextAttemptAt is { } n ? OperatorRows.Time(n) : null,
        d.DeliveredAt is { } t ? OperatorRows.Time(t) : null,
        d.LastStatusCode,
        d.LastError,
        d.Url);
}

/// <summary>The line of <c>webhooks test --json</c>.</summary>
internal sealed record TestRow(string Url, string DeliveryId, string? Uuid, bool Success, int? StatusCode, long DurationMs, string? Error)
{
    public static TestRow From(WebhookTestResult r) => new(r.Url, r.DeliveryId, r.Uuid, r.Success, r.StatusCode, r.DurationMs, r.Error);
}

/// <summary>One line of <c>limits --json</c> (the reference's field names).</summary>
internal sealed record LimitRow(
    string Uuid,
    string? DisplayName,
    int RequestsPerMinute,
    int CurrentConcurrent,
    int RpmLimit,
    int ConcurrentLimit,
    long RpmWarnings,
    long ConcurrentWarnings,
    string Mode)
{
    public static LimitRow From(RateLimitStats s, string? displayName) => new(
        s.Uuid, displayName, s.RequestsPerMinute, s.CurrentConcurrent, s.RpmLimit, s.ConcurrentLimit, s.RpmWarnings, s.ConcurrentWarnings,
        s.Mode.ToString().ToLowerInvariant());
}

/// <summary>Snake-case JSON lines of the webhook and limit verbs; nulls are written so every line has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(DeliveryRow))]
[JsonSerializable(typeof(TestRow))]
[JsonSerializable(typeof(LimitRow))]
internal sealed partial class VerbJson : JsonSerializerContext;
