using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>One client's metrics, as Get-EphClientMetric writes them. A client that did not answer has a Status and an Error and no values.</summary>
public sealed class EphClientMetric
{
    internal EphClientMetric(ClientMetricsResult result)
    {
        ClientId = result.Uuid;
        PSComputerName = UntrustedText.ForTerminal(result.DisplayName);
        Status = (EphMetricStatus)(int)result.Status;
        Error = UntrustedText.ForTerminal(result.Error);
        Duration = TimeSpan.FromMilliseconds(result.DurationMs);
        var m = result.Metrics;
        CpuPercent = m?.CpuPercent;
        MemoryPercent = m?.MemoryPercent;
        DiskMaxPercent = m?.DiskMaxPercent;
        Load1 = m?.Load1;
        Load5 = m?.Load5;
        Load15 = m?.Load15;
        Uptime = m?.UptimeS is { } seconds ? TimeSpan.FromSeconds(seconds) : null;
        MemoryTotalBytes = m?.MemoryTotalBytes;
        MemoryAvailableBytes = m?.MemoryAvailableBytes;
        SwapTotalBytes = m?.SwapTotalBytes;
        SwapFreeBytes = m?.SwapFreeBytes;
        SwapPercent = m?.SwapPercent;
        Disks = EphList.Of(m?.Disks?.Select(d => new EphDiskMetric(d)) ?? []);
        NetworkRxBytes = m?.Network?.RxBytes;
        NetworkTxBytes = m?.Network?.TxBytes;
        ProcessCount = m?.ProcessCount;
        Hostname = UntrustedText.ForTerminal(m?.Hostname); // reported by the agent at each call, never validated at admission
        Platform = UntrustedText.ForTerminal(m?.Platform);
        CollectedAt = m?.CollectedAt;
    }

    public string ClientId { get; }
    /// <summary>The client's display name, like Invoke-Command's PSComputerName.</summary>
    public string PSComputerName { get; }
    public EphMetricStatus Status { get; }
    public string? Error { get; }
    /// <summary>Time from the request to the answer, as the operator saw it.</summary>
    public TimeSpan Duration { get; }
    public double? CpuPercent { get; }
    public double? MemoryPercent { get; }
    public double? DiskMaxPercent { get; }
    public double? Load1 { get; }
    public double? Load5 { get; }
    public double? Load15 { get; }
    public TimeSpan? Uptime { get; }
    public long? MemoryTotalBytes { get; }
    public long? MemoryAvailableBytes { get; }
    public long? SwapTotalBytes { get; }
    public long? SwapFreeBytes { get; }
    public double? SwapPercent { get; }
    public EphList<EphDiskMetric> Disks { get; }
    public long? NetworkRxBytes { get; }
    public long? NetworkTxBytes { get; }
    public int? ProcessCount { get; }
    public string? Hostname { get; }
    public string? Platform { get; }
    public DateTimeOffset? CollectedAt { get; }

    public override string ToString() => $"{PSComputerName}: {Status}";
}

/// <summary>One filesystem of a client.</summary>
public sealed class EphDiskMetric
{
    internal EphDiskMetric(DiskMetrics disk)
    {
        Mount = disk.Mount;
        FsType = disk.FsType;
        TotalBytes = disk.TotalBytes;
        FreeBytes = disk.FreeBytes;
        Percent = disk.Percent;
    }

    public string Mount { get; }
    public string? FsType { get; }
    public long TotalBytes { get; }
    public long FreeBytes { get; }
    public double Percent { get; }

    public override string ToString() => $"{Mount} {Percent:0.#}%";
}

/// <summary>Outcome of asking one client for metrics (mirrors Core's MetricsStatus value for value).</summary>
public enum EphMetricStatus
{
    Succeeded = MetricsStatus.Succeeded,
    Offline = MetricsStatus.Offline,
    Denied = MetricsStatus.Denied,
    TimedOut = MetricsStatus.TimedOut,
    Unreachable = MetricsStatus.Unreachable,
    Cancelled = MetricsStatus.Cancelled,
}

/// <summary>The fleet at a glance, as Get-EphFleetStatus writes it.</summary>
public sealed class EphFleetStatus
{
    internal EphFleetStatus(FleetStatus status)
    {
        Total = status.Total;
        Online = status.Online;
        Offline = status.Offline;
        PendingKeys = status.PendingKeys;
        KeyMismatches = status.KeyMismatches;
        Unhealthy = Entries(status.Unhealthy);
        OverCpu = Entries(status.OverCpu);
        OverMemory = Entries(status.OverMemory);
        OverDisk = Entries(status.OverDisk);
        Unreachable = Entries(status.Unreachable);
        CpuThreshold = status.Thresholds.CpuPercent;
        MemoryThreshold = status.Thresholds.MemoryPercent;
        DiskThreshold = status.Thresholds.DiskPercent;
        CollectedAt = status.CollectedAt;
    }

    public int Total { get; }
    public int Online { get; }
    public int Offline { get; }
    public int PendingKeys { get; }
    public int KeyMismatches { get; }
    /// <summary>Clients the hub's health monitor marked unhealthy; Detail holds the last failure.</summary>
    public EphList<EphFleetStatusEntry> Unhealthy { get; }
    /// <summary>Clients above <see cref="CpuThreshold"/>; Value holds the CPU percentage.</summary>
    public EphList<EphFleetStatusEntry> OverCpu { get; }
    public EphList<EphFleetStatusEntry> OverMemory { get; }
    public EphList<EphFleetStatusEntry> OverDisk { get; }
    /// <summary>Online clients whose metrics did not arrive; Detail says why.</summary>
    public EphList<EphFleetStatusEntry> Unreachable { get; }
    public double CpuThreshold { get; }
    public double MemoryThreshold { get; }
    public double DiskThreshold { get; }
    public DateTimeOffset CollectedAt { get; }

    private static EphList<EphFleetStatusEntry> Entries(IEnumerable<FleetStatusEntry> entries) => EphList.Of(entries.Select(e => new EphFleetStatusEntry(e)));

    public override string ToString() => $"{Online}/{Total} online";
}

/// <summary>A client the fleet view lists.</summary>
public sealed class EphFleetStatusEntry
{
    internal EphFleetStatusEntry(FleetStatusEntry entry)
    {
        ClientId = entry.Uuid;
        PSComputerName = UntrustedText.ForTerminal(entry.DisplayName);
        Value = entry.Value;
        Detail = UntrustedText.ForTerminal(entry.Detail);
    }

    public string ClientId { get; }
    /// <summary>Same as <see cref="ClientId"/>; binds to -Id of Get-EphClient from the pipeline.</summary>
    public string Id => ClientId;
    public string PSComputerName { get; }
    public double? Value { get; }
    public string? Detail { get; }

    public override string ToString() => Value is { } v ? $"{PSComputerName} ({v:0.#})" : PSComputerName;
}
