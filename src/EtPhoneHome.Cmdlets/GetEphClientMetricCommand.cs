using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Gets CPU, memory, disk, load, uptime and network figures of clients, asking them all at once.</summary>
[Cmdlet(VerbsCommon.Get, "EphClientMetric", HelpUri = HelpLinks.Base + "Get-EphClientMetric.md", DefaultParameterSetName = ClientIdSet)]
[OutputType(typeof(EphClientMetric))]
public sealed class GetEphClientMetricCommand : EphAsyncCmdlet
{
    public const string ClientIdSet = "ClientId";
    public const string InputObjectSet = "InputObject";

    private readonly List<string> _clientIds = [];
    private readonly List<EphClient> _clients = [];

    /// <summary>Client uuids or display names (wildcards). Every registered client when omitted.</summary>
    [Parameter(ParameterSetName = ClientIdSet, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ParameterSetName = InputObjectSet, Mandatory = true, ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>Only CPU, memory, fullest disk, 1-minute load and uptime.</summary>
    [Parameter]
    public SwitchParameter Summary { get; set; }

    /// <summary>Most clients asked at once.</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = FleetMetricsOptions.DefaultThrottleLimit;

    /// <summary>Seconds to wait for each client.</summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public int TimeoutSec { get; set; } = 15;

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        // Collect only: one fan-out over everything in EndProcessing.
        if (InputObject is not null)
        {
            _clients.AddRange(InputObject);
        }

        if (ParameterSetName == ClientIdSet && ClientId is not null)
        {
            _clientIds.AddRange(ClientId);
        }

        return Task.CompletedTask;
    }

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        var ids = _clientIds.Concat(_clients.Select(c => c.Uuid)).ToList();
        if (ids.Count == 0 && ParameterSetName == InputObjectSet)
        {
            return;
        }

        var lookup = ClientQueries.Find(registry, names: ids.Count == 0 ? null : ids, ids: null, onlineOnly: false);
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        var targets = FleetTargets.FromClients(registry, lookup.Clients);
        if (targets.Count == 0)
        {
            return;
        }

        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseMetricsTargets, targets.Count, ThrottleLimit, TimeoutSec));
        var options = new FleetMetricsOptions { ThrottleLimit = ThrottleLimit, Timeout = TimeSpan.FromSeconds(TimeoutSec) };
        await foreach (var result in new FleetMetrics(MetricsTransport.Create(registry)).CollectAsync(targets, Summary.IsPresent, options, ct).ConfigureAwait(false))
        {
            WriteObject(new EphClientMetric(result));
        }
    }
}

/// <summary>Where the metrics cmdlets get their metrics source; a seam for tests.</summary>
internal static class MetricsTransport
{
    public static Func<IFleetRegistry, IMetricsSource> Create { get; set; } =
        registry => new MetricsClient { Guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.PowerShell)) };
}
