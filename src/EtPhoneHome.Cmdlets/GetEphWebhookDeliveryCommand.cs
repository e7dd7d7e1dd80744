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

    protected override Task EndProcessingAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry.Clients, _clients.Count > 0 ? _clients : null, null, onlineOnly: false);
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        if (_clients.Count > 0 && lookup.Clients.Count == 0)
        {
            return Task.CompletedTask;
        }

        var names = lookup.Clients.ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.Ordinal);
        var rows = registry.Webhooks.ListWebhookDeliveries(new WebhookDeliveryQuery
        {
            Uuids = _clients.Count > 0 ? lookup.Clients.Select(c => c.Uuid).ToList() : null,
            Events = Event,
            Status = Status is { } s ? (WebhookDeliveryStatus)(int)s : null,
            Limit = First,
        });
        var attempts = registry.Webhooks.ListWebhookAttempts(rows.Select(r => r.Id).ToList()).ToLookup(a => a.EventId);
        foreach (var row in rows)
        {
            WriteObject(new EphWebhookDelivery(row, row.Uuid is null ? null : names.GetValueOrDefault(row.Uuid), attempts[row.Id]));
        }

        return Task.CompletedTask;
    }
}
