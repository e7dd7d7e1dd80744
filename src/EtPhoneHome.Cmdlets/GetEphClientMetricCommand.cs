using EtPhoneHome.Core.Services;
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
    public const string AllSet = "All";

    private readonly List<string> _clientIds = [];
    private readonly List<EphClient> _clients = [];

    /// <summary>Client uuids or display names (wildcards); -All asks every registered client.</summary>
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

    /// <summary>Every registered client: the whole fleet is never a default, it is asked for.</summary>
    [Parameter(ParameterSetName = AllSet, Mandatory = true)]
    public SwitchParameter All { get; set; }

    /// <summary>Only CPU, memory, fullest disk, 1-minute load and uptime.</summary>
    [Parameter]
    public SwitchParameter Summary { get; set; }

    /// <summary>Most clients asked at once.</summary>
    [Parameter]
    [ValidateRange(FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit)]
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

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        var names = _clientIds.Concat(_clients.Select(c => c.Uuid)).ToList();
        if (Remote is not null)
        {
            var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            var remoteTargets = await ResolveRemoteTargetsAsync(op, names, ParameterSetName == AllSet, ct).ConfigureAwait(false);
            if (remoteTargets.Count == 0)
            {
                return;
            }

            WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseMetricsTargets, remoteTargets.Count, ThrottleLimit, TimeoutSec));
            await WriteAsync(op.CollectMetricsAsync(new EtPhoneHome.Core.Remote.CollectMetricsArgs
            {
                Targets = new TargetSelection { Clients = [.. remoteTargets.Select(t => t.Uuid)] },
                Summary = Summary.IsPresent,
                ThrottleLimit = ThrottleLimit,
                TimeoutSeconds = TimeoutSec,
            }, null, ct)).ConfigureAwait(false);
            return;
        }

        using var registry = OpenRegistry();
        var targets = ResolveTargets(registry, names, ParameterSetName == AllSet);
        if (targets.Count == 0)
        {
            return;
        }

        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseMetricsTargets, targets.Count, ThrottleLimit, TimeoutSec));
        var options = new FleetMetricsOptions { ThrottleLimit = ThrottleLimit, Timeout = TimeSpan.FromSeconds(TimeoutSec) };
        await WriteAsync(NewServices(registry).CollectMetricsAsync(targets, Summary.IsPresent, options, ct)).ConfigureAwait(false);
    }

    private async Task WriteAsync(IAsyncEnumerable<ClientMetricsResult> results)
    {
        await foreach (var result in results.ConfigureAwait(false))
        {
            WriteObject(new EphClientMetric(result));
            if (result.Status is not (MetricsStatus.Succeeded or MetricsStatus.Cancelled))
            {
                var status = result.Status switch
                {
                    MetricsStatus.Offline => CommandStatus.Offline,
                    MetricsStatus.Denied => CommandStatus.Denied,
                    MetricsStatus.TimedOut => CommandStatus.TimedOut,
                    _ => CommandStatus.Error,
                };
                WriteError(UnreachableError(status, result.Uuid, result.DisplayName, result.Error));
            }
        }
    }
}

