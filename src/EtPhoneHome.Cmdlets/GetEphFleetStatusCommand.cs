using EtPhoneHome.Core.Services;
using EtPhoneHome.Core.Operations;
using System.Management.Automation;
using EtPhoneHome.Core.Health;

namespace EtPhoneHome;

/// <summary>
/// The fleet at a glance: totals, pending keys, key mismatches, unhealthy clients, and the online clients over
/// the CPU, memory and disk thresholds (from a summary-metrics fan-out).
/// </summary>
[Cmdlet(VerbsCommon.Get, "EphFleetStatus", HelpUri = HelpLinks.Base + "Get-EphFleetStatus.md")]
[OutputType(typeof(EphFleetStatus))]
public sealed class GetEphFleetStatusCommand : EphAsyncCmdlet
{
    /// <summary>CPU percentage above which a client is listed.</summary>
    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public double CpuThreshold { get; set; } = FleetThresholds.DefaultCpuPercent;

    /// <summary>Memory percentage above which a client is listed.</summary>
    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public double MemoryThreshold { get; set; } = FleetThresholds.DefaultMemoryPercent;

    /// <summary>Percentage of the fullest disk above which a client is listed.</summary>
    [Parameter]
    [ValidateRange(0.0, 100.0)]
    public double DiskThreshold { get; set; } = FleetThresholds.DefaultDiskPercent;

    /// <summary>Most clients asked at once.</summary>
    [Parameter]
    [ValidateRange(FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit)]
    public int ThrottleLimit { get; set; } = FleetMetricsOptions.DefaultThrottleLimit;

    /// <summary>Seconds to wait for each client; the ones that do not answer are listed as unreachable.</summary>
    [Parameter]
    [ValidateRange(1, 600)]
    public int TimeoutSec { get; set; } = 15;

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        var thresholds = new FleetThresholds { CpuPercent = CpuThreshold, MemoryPercent = MemoryThreshold, DiskPercent = DiskThreshold };
        if (Remote is not null)
        {
            var remote = await (await RemoteOperatorAsync(ct).ConfigureAwait(false)).FleetStatusAsync(new EtPhoneHome.Core.Remote.FleetStatusArgs
            {
                Thresholds = thresholds,
                ThrottleLimit = ThrottleLimit,
                TimeoutSeconds = TimeoutSec,
            }, ct).ConfigureAwait(false);
            WriteObject(new EphFleetStatus(remote));
            return;
        }

        using var registry = OpenRegistry();
        var options = new FleetMetricsOptions { ThrottleLimit = ThrottleLimit, Timeout = TimeSpan.FromSeconds(TimeoutSec) };
        var status = await NewServices(registry).FleetStatusAsync(thresholds, options, ct).ConfigureAwait(false);
        WriteObject(new EphFleetStatus(status));
    }
}
