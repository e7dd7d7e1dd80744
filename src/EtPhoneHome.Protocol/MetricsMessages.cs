using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtPhoneHome.Protocol;

/// <summary>Method names of the health and metrics area.</summary>
public static class MetricsMethods
{
    /// <summary>Resource use of the client machine: full form, or the summary a fleet view needs.</summary>
    public const string GetMetrics = "get_metrics";
}

/// <summary>Parameters of <c>get_metrics</c>. Absent params mean the full form.</summary>
public sealed record GetMetricsParams
{
    /// <summary>True for the summary form: cpu_percent, memory_percent, disk_max_percent, load_1, uptime_s.</summary>
    public bool Summary { get; init; }
}

/// <summary>
/// Result of <c>get_metrics</c>. The summary form sets only <see cref="CpuPercent"/>, <see cref="MemoryPercent"/>,
/// <see cref="DiskMaxPercent"/>, <see cref="Load1"/> and <see cref="UptimeS"/>; the full form sets everything the
/// platform can measure. A value the platform cannot measure is null and left out of the JSON (load averages on
/// Windows, for example); percentages are 0–100 with one decimal.
/// </summary>
public sealed record MetricsResult
{
    /// <summary>Busy share of all CPUs over a short sample (about 200 ms).</summary>
    public double? CpuPercent { get; init; }

    /// <summary>1-minute load average (null on Windows).</summary>
    [JsonPropertyName("load_1")]
    public double? Load1 { get; init; }

    /// <summary>5-minute load average (null on Windows).</summary>
    [JsonPropertyName("load_5")]
    public double? Load5 { get; init; }

    /// <summary>15-minute load average (null on Windows).</summary>
    [JsonPropertyName("load_15")]
    public double? Load15 { get; init; }

    public long? MemoryTotalBytes { get; init; }

    /// <summary>Memory that can be given to new work without swapping (Linux MemAvailable).</summary>
    public long? MemoryAvailableBytes { get; init; }

    /// <summary>(total − available) / total.</summary>
    public double? MemoryPercent { get; init; }

    public long? SwapTotalBytes { get; init; }
    public long? SwapFreeBytes { get; init; }
    public double? SwapPercent { get; init; }

    /// <summary>Local, real filesystems (pseudo, memory-backed and network filesystems are left out).</summary>
    public DiskMetrics[]? Disks { get; init; }

    /// <summary>The fullest of <see cref="Disks"/>.</summary>
    public double? DiskMaxPercent { get; init; }

    /// <summary>Seconds since the machine booted.</summary>
    public long? UptimeS { get; init; }

    public int? ProcessCount { get; init; }

    /// <summary>Byte counters since boot, summed over every interface except loopback.</summary>
    public NetworkTotals? Network { get; init; }

    public string? Hostname { get; init; }
    public string? Platform { get; init; }
    public DateTimeOffset? CollectedAt { get; init; }

    /// <summary>The summary form of a full result.</summary>
    public MetricsResult ToSummary() => new()
    {
        CpuPercent = CpuPercent,
        MemoryPercent = MemoryPercent,
        DiskMaxPercent = DiskMaxPercent,
        Load1 = Load1,
        UptimeS = UptimeS,
    };
}

/// <summary>One mounted filesystem.</summary>
public sealed record DiskMetrics
{
    public required string Mount { get; init; }
    public string? FsType { get; init; }
    public required long TotalBytes { get; init; }

    /// <summary>Bytes an unprivileged user can still write.</summary>
    public required long FreeBytes { get; init; }

    /// <summary>Used share as df reports it: used / (used + free to users).</summary>
    public required double Percent { get; init; }
}

/// <summary>Network byte counters, all interfaces but loopback.</summary>
public sealed record NetworkTotals
{
    public required long RxBytes { get; init; }
    public required long TxBytes { get; init; }
}

/// <summary>Source-generated JSON metadata of the metrics messages (same options as <see cref="ProtocolJson"/>).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(GetMetricsParams))]
[JsonSerializable(typeof(MetricsResult))]
[JsonSerializable(typeof(DiskMetrics))]
[JsonSerializable(typeof(NetworkTotals))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class MetricsJson : JsonSerializerContext;
