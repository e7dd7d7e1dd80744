using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Gets webhook deliveries (the event outbox), newest first, with their state and attempt log.</summary>
[Cmdlet(VerbsCommon.Get, "EphWebhookDelivery", HelpUri = HelpLinks.Base + "Get-EphWebhookDelivery.md")]
[OutputType(typeof(EphWebhookDelivery))]
public sealed class GetEphWebhookDeliveryCommand : EphAsyncCmdlet
{
    private readonly List<string> _clients = [];

    /// <summary>Only events of these clients (uuids or display names; wildcards).</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Only these events (client.connected, command_executed, …; wildcards).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Event { get; set; }

    /// <summary>Only deliveries in this state.</summary>
    [Parameter]
    public EphWebhookDeliveryStatus? Status { get; set; }

    /// <summary>Most deliveries returned, newest first (-Limit is an alias, as in the CLI and MCP).</summary>
    [Parameter]
    [Alias("Limit")]
    [ValidateRange(1, 10000)]
    public int First { get; set; } = 100;

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        if (ClientId is not null)
        {
            _clients.AddRange(ClientId);
        }

        return Task.CompletedTask;
    }

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            // The same query through the server: the names resolved there by the same rule, then the deliveries.
            var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            var found = _clients.Count > 0 ? await op.SearchAsync(new ClientQuery { Names = _clients }, ct).ConfigureAwait(false) : new ClientLookup([], []);
            if (Select(found) is { } remoteQuery)
            {
                var page = await op.WebhookDeliveriesAsync(remoteQuery, ct).ConfigureAwait(false);
                if (_clients.Count == 0 && page.Deliveries.Select(d => d.Uuid).OfType<string>().Distinct(StringComparer.Ordinal).ToList() is { Count: > 0 } uuids)
                {
                    // Only the clients the deliveries name, not the whole fleet.
                    found = await op.SearchAsync(new ClientQuery { Ids = uuids }, ct).ConfigureAwait(false);
                }

                Write(found, page.Deliveries, page.Attempts);
            }

            return;
        }

        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry.Clients, _clients.Count > 0 ? _clients : null, null, onlineOnly: false);
        if (Select(lookup) is { } query)
        {
            var rows = registry.Webhooks.ListWebhookDeliveries(query);
            Write(lookup, rows, registry.Webhooks.ListWebhookAttempts(rows.Select(r => r.Id).ToList()));
        }
    }

    /// <summary>The query of the clients found (ClientNotFound for each literal that matched none); null when nothing is left to ask.</summary>
    private WebhookDeliveryQuery? Select(ClientLookup lookup)
    {
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        if (_clients.Count > 0 && lookup.Clients.Count == 0)
        {
            return null;
        }

        return new WebhookDeliveryQuery
        {
            Uuids = _clients.Count > 0 ? lookup.Clients.Select(c => c.Uuid).ToList() : null,
            Events = Event,
            Status = Status is { } s ? (WebhookDeliveryStatus)(int)s : null,
            Limit = First,
        };
    }

    private void Write(ClientLookup lookup, IReadOnlyList<WebhookDelivery> rows, IReadOnlyList<WebhookAttempt> attemptList)
    {
        var names = lookup.Clients.ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.Ordinal);
        var attempts = attemptList.ToLookup(a => a.EventId);
        foreach (var row in rows)
        {
            WriteObject(new EphWebhookDelivery(row, row.Uuid is null ? null : names.GetValueOrDefault(row.Uuid), attempts[row.Id]));
        }
    }
}
