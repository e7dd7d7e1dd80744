using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Gets clients' rate-limit counters: requests in the last 60 s and in flight (counted across every
/// process), the limits, the warnings and the mode. The name is the reference's get_rate_limit_stats.
/// </summary>
[Cmdlet(VerbsCommon.Get, "EphRateLimitStats", HelpUri = HelpLinks.Base + "Get-EphRateLimitStats.md")]
[OutputType(typeof(EphRateLimitStats))]
public sealed class GetEphRateLimitStatsCommand : EphAsyncCmdlet
{
    private readonly List<string> _clients = [];

    /// <summary>Client uuids or display names (wildcards); every client when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? ClientId { get; set; }

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
        if (_clients.Count == 0 && MyInvocation.ExpectingInput)
        {
            return; // upstream delivered no client: nothing, not every client
        }

        if (Remote is not null)
        {
            await RemoteAsync(ct).ConfigureAwait(false);
            return;
        }

        Local();
    }

    /// <summary>The same counters through the server: the names resolved there by the same rule, then their stats.</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        var lookup = await op.SearchAsync(new ClientQuery { Names = _clients.Count > 0 ? _clients : null }, ct).ConfigureAwait(false);
        WriteNotFound(lookup.NotFound);
        if (lookup.Clients.Count == 0)
        {
            return;
        }

        var names = lookup.Clients.ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.Ordinal);
        foreach (var stats in await op.RateLimitStatsAsync([.. lookup.Clients.Select(c => c.Uuid)], ct).ConfigureAwait(false))
        {
            WriteObject(new EphRateLimitStats(stats, names.GetValueOrDefault(stats.Uuid) ?? stats.Uuid));
        }
    }

    private void WriteNotFound(IReadOnlyList<string> notFound)
    {
        foreach (var missing in notFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }
    }

    private void Local()
    {
        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry.Clients, _clients.Count > 0 ? _clients : null, null, onlineOnly: false);
        WriteNotFound(lookup.NotFound);
        if (lookup.Clients.Count == 0)
        {
            return;
        }

        var names = lookup.Clients.ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.Ordinal);
        foreach (var stats in registry.RateLimits.GetRateLimitStats(lookup.Clients.Select(c => c.Uuid).ToList(), new RateLimitPolicy()))
        {
            WriteObject(new EphRateLimitStats(stats, names.GetValueOrDefault(stats.Uuid) ?? stats.Uuid));
        }
    }
}
