using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Health;

/// <summary>Where the fleet view draws the line: a client above a threshold is listed (strictly greater).</summary>
public sealed record FleetThresholds
{
    public const double DefaultCpuPercent = 80;
    public const double DefaultMemoryPercent = 85;
    public const double DefaultDiskPercent = 85;

    public double CpuPercent { get; init; } = DefaultCpuPercent;
    public double MemoryPercent { get; init; } = DefaultMemoryPercent;
    public double DiskPercent { get; init; } = DefaultDiskPercent;

    /// <summary>Throws naming the threshold when one is outside 0–100.</summary>
    public void Validate()
    {
        Check(CpuPercent, "cpu_threshold");
        Check(MemoryPercent, "memory_threshold");
        Check(DiskPercent, "disk_threshold");
    }

    private static void Check(double value, string name)
    {
        if (double.IsNaN(value) || value is < 0 or > 100)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be a percentage between 0 and 100 (got {value})");
        }
    }
}

/// <summary>One client listed by the fleet view, with the value or reason it is listed for.</summary>
public sealed record FleetStatusEntry(string Uuid, string DisplayName, double? Value = null, string? Detail = null);

/// <summary>
/// The fleet at a glance: counts from the registry, clients the health monitor marked unhealthy, and — from a
/// summary-metrics fan-out over the online clients — the clients over the CPU, memory and disk thresholds. An
/// online client that does not answer is listed in <see cref="Unreachable"/>, never left out.
/// </summary>
public sealed record FleetStatus
{
    public required int Total { get; init; }
    public required int Online { get; init; }
    public required int Offline { get; init; }
    /// <summary>Keys waiting for a first approval (key mismatches are counted separately).</summary>
    public required int PendingKeys { get; init; }
    /// <summary>Clients quarantined because another key claims them.</summary>
    public required int KeyMismatches { get; init; }
    public required IReadOnlyList<FleetStatusEntry> Unhealthy { get; init; }
    public required IReadOnlyList<FleetStatusEntry> OverCpu { get; init; }
    public required IReadOnlyList<FleetStatusEntry> OverMemory { get; init; }
    public required IReadOnlyList<FleetStatusEntry> OverDisk { get; init; }
    /// <summary>Online clients whose metrics did not arrive (timeout, broken tunnel), with the reason.</summary>
    public required IReadOnlyList<FleetStatusEntry> Unreachable { get; init; }
    public required FleetThresholds Thresholds { get; init; }
    public required DateTimeOffset CollectedAt { get; init; }

    /// <summary>
    /// Builds the view from registry facts and the metrics answers of the online clients (pure, so it is tested
    /// without a fleet).
    /// </summary>
    public static FleetStatus Aggregate(
        IReadOnlyList<ClientRecord> clients,
        IReadOnlyList<KeyRecord> pendingKeys,
        IReadOnlyList<ClientHealth> health,
        IReadOnlyList<ClientMetricsResult> metrics,
        FleetThresholds thresholds,
        DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(clients);
        ArgumentNullException.ThrowIfNull(pendingKeys);
        ArgumentNullException.ThrowIfNull(health);
        ArgumentNullException.ThrowIfNull(metrics);
        ArgumentNullException.ThrowIfNull(thresholds);
        thresholds.Validate();

        var byUuid = clients.ToDictionary(c => c.Uuid, StringComparer.OrdinalIgnoreCase);
        var online = clients.Count(c => c.Online);
        var unhealthy = health
            .Where(h => h.IsUnhealthy && byUuid.ContainsKey(h.Uuid))
            .Select(h => new FleetStatusEntry(h.Uuid, byUuid[h.Uuid].DisplayName, h.ConsecutiveFailures, h.LastError))
            .OrderBy(e => e.DisplayName, StringComparer.OrdinalIgnoreCase)
            .ToList();

        List<FleetStatusEntry> Over(Func<Protocol.MetricsResult, double?> value, double threshold) => metrics
            .Where(m => m.Status == MetricsStatus.Succeeded && m.Metrics is not null && value(m.Metrics) > threshold)
            .Select(m => new FleetStatusEntry(m.Uuid, m.DisplayName, value(m.Metrics!)))
            .OrderByDescending(e => e.Value)
            .ThenBy(e => e.DisplayName, StringComparer.OrdinalIgnoreCase)
            .ToList();

        return new FleetStatus
        {
            Total = clients.Count,
            Online = online,
            Offline = clients.Count - online,
            PendingKeys = pendingKeys.Count(k => k.Status == KeyStatus.Pending && !k.IsMismatch),
            KeyMismatches = clients.Count(c => c.KeyMismatch),
            Unhealthy = unhealthy,
            OverCpu = Over(m => m.CpuPercent, thresholds.CpuPercent),
            OverMemory = Over(m => m.MemoryPercent, thresholds.MemoryPercent),
            OverDisk = Over(m => m.DiskMaxPercent, thresholds.DiskPercent),
            Unreachable = metrics
                .Where(m => m.Status is not MetricsStatus.Succeeded and not MetricsStatus.Offline and not MetricsStatus.Denied)
                .Select(m => new FleetStatusEntry(m.Uuid, m.DisplayName, null, $"{m.Status}: {m.Error}"))
                .OrderBy(e => e.DisplayName, StringComparer.OrdinalIgnoreCase)
                .ToList(),
            Thresholds = thresholds,
            CollectedAt = now,
        };
    }

    /// <summary>Reads the registry, asks every online client for summary metrics, and aggregates.</summary>
    public static Task<FleetStatus> ComputeAsync(
        RegistryStores registry,
        FleetMetrics metrics,
        FleetThresholds? thresholds = null,
        FleetMetricsOptions? options = null,
        TimeProvider? time = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        return ComputeAsync(registry, (targets, c) => metrics.CollectAsync(targets, summary: true, options, c), thresholds, time, ct);
    }

    /// <summary>
    /// <see cref="ComputeAsync(RegistryStores, FleetMetrics, FleetThresholds?, FleetMetricsOptions?, TimeProvider?, CancellationToken)"/>
    /// with the summary metrics of the online targets collected by <paramref name="collect"/> (which may relay the
    /// targets other hubs hold); it must give one result per target.
    /// </summary>
    public static async Task<FleetStatus> ComputeAsync(
        RegistryStores registry,
        Func<IReadOnlyList<FleetTarget>, CancellationToken, IAsyncEnumerable<ClientMetricsResult>> collect,
        FleetThresholds? thresholds = null,
        TimeProvider? time = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(collect);
        thresholds ??= new FleetThresholds();
        thresholds.Validate();
        var clients = registry.Clients.QueryClients(new ClientQuery());
        var pending = registry.Keys.ListKeys(KeyStatus.Pending);
        var health = registry.Health.ListHealth();
        var targets = FleetTargets.FromClients(registry, clients.Where(c => c.Online)).Where(t => t.IsOnline).ToList();
        var answers = new List<ClientMetricsResult>(targets.Count);
        await foreach (var answer in collect(targets, ct).ConfigureAwait(false))
        {
            answers.Add(answer);
        }

        return Aggregate(clients, pending, health, answers, thresholds, (time ?? TimeProvider.System).GetUtcNow());
    }
}
