using EtPhoneHome.Core.Services;
using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Health verbs: metrics (per client) and status (the fleet view).</summary>
internal static class HealthVerbs
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(MetricsCommand());
        root.Subcommands.Add(StatusCommand());
    }

    private static Option<string?> DataOption() => new("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "JSON (snake_case fields) instead of a table." };

    private static Option<int> ThrottleOption() => new("--throttle") { Description = $"Most clients asked at once ({FleetOptions.MinThrottleLimit}–{FleetOptions.MaxThrottleLimit}).", DefaultValueFactory = _ => FleetMetricsOptions.DefaultThrottleLimit };

    private static Option<int> TimeoutOption() => new("--timeout") { Description = "Seconds to wait for each client (1–600).", DefaultValueFactory = _ => 15 };

    private static Command MetricsCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var all = new Option<bool>("--all") { Description = "Every registered client." };
        var client = new Option<string[]>("--client") { Description = "A client uuid or display name (wildcards * and ?); repeat for more.", AllowMultipleArgumentsPerToken = false };
        var tag = new Option<string[]>("--tag") { Description = "Clients carrying this tag (repeat: all must match).", AllowMultipleArgumentsPerToken = false };
        var summary = new Option<bool>("--summary") { Description = "Only cpu_percent, memory_percent, disk_max_percent, load_1 and uptime_s." };
        var throttle = ThrottleOption();
        var timeout = TimeoutOption();
        throttle.Validators.Add(r => OperatorVerbs.Range(r, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit));
        timeout.Validators.Add(r => OperatorVerbs.Range(r, 1, 600));
        var cmd = new Command("metrics", "CPU, memory, disk, load, uptime and network figures of clients; one result per client, printed as each answers.")
        {
            data, all, client, tag, summary, throttle, timeout, json,
        };
        cmd.Validators.Add(r =>
        {
            var modes = (r.GetValue(all) ? 1 : 0) + ((r.GetValue(client)?.Length ?? 0) > 0 ? 1 : 0) + ((r.GetValue(tag)?.Length ?? 0) > 0 ? 1 : 0);
            if (modes != 1)
            {
                r.AddError("choose the clients with exactly one of --all, --client or --tag");
            }
        });
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            var selection = new TargetSelection { All = pr.GetValue(all), Clients = pr.GetValue(client) ?? [], Tags = pr.GetValue(tag) ?? [] };
            var options = new FleetMetricsOptions { ThrottleLimit = pr.GetValue(throttle), Timeout = TimeSpan.FromSeconds(pr.GetValue(timeout)) };
            var output = pr.InvocationConfiguration.Output;
            var error = pr.InvocationConfiguration.Error;
            try
            {
                using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
                return await MetricsAsync(services, selection, pr.GetValue(summary), options, pr.GetValue(json), output, error, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or RegistryNotFoundException or IOException)
            {
                await error.WriteLineAsync($"eph-server metrics: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return cmd;
    }

    private static Command StatusCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var cpu = new Option<double>("--cpu-threshold") { Description = "List clients above this CPU percentage (0–100).", DefaultValueFactory = _ => FleetThresholds.DefaultCpuPercent };
        var memory = new Option<double>("--memory-threshold") { Description = "List clients above this memory percentage (0–100).", DefaultValueFactory = _ => FleetThresholds.DefaultMemoryPercent };
        var disk = new Option<double>("--disk-threshold") { Description = "List clients whose fullest disk is above this percentage (0–100).", DefaultValueFactory = _ => FleetThresholds.DefaultDiskPercent };
        var throttle = ThrottleOption();
        var timeout = TimeoutOption();
        throttle.Validators.Add(r => OperatorVerbs.Range(r, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit));
        timeout.Validators.Add(r => OperatorVerbs.Range(r, 1, 600));
        foreach (var percent in new[] { cpu, memory, disk })
        {
            percent.Validators.Add(r =>
            {
                var value = r.GetValueOrDefault<double>();
                if (double.IsNaN(value) || value is < 0 or > 100)
                {
                    r.AddError($"{r.Option.Name} must be a percentage between 0 and 100, got {value.ToString(CultureInfo.InvariantCulture)}");
                }
            });
        }

        var cmd = new Command("status", "The fleet at a glance: totals, pending keys, key mismatches, unhealthy clients, clients over the CPU/memory/disk thresholds, unreachable clients.")
        {
            data, cpu, memory, disk, throttle, timeout, json,
        };
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            var thresholds = new FleetThresholds { CpuPercent = pr.GetValue(cpu), MemoryPercent = pr.GetValue(memory), DiskPercent = pr.GetValue(disk) };
            var options = new FleetMetricsOptions { ThrottleLimit = pr.GetValue(throttle), Timeout = TimeSpan.FromSeconds(pr.GetValue(timeout)) };
            var output = pr.InvocationConfiguration.Output;
            try
            {
                using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
                var status = await services.FleetStatusAsync(thresholds, options, ct).ConfigureAwait(false);
                await output.WriteAsync(pr.GetValue(json) ? StatusJson(status) + Environment.NewLine : StatusText(status)).ConfigureAwait(false);
                return 0;
            }
            catch (Exception ex) when (ex is InvalidOperationException or RegistryNotFoundException or IOException)
            {
                await pr.InvocationConfiguration.Error.WriteLineAsync($"eph-server status: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return cmd;
    }

    // ----- verb bodies (tested directly) -----

    /// <summary>Runs metrics; 0 when every client answered, 1 when any did not, 2 for an unknown client or an empty selection.</summary>
    internal static async Task<int> MetricsAsync(OperatorServices services, TargetSelection selection, bool summary, FleetMetricsOptions options, bool json,
        TextWriter output, TextWriter error, CancellationToken ct)
    {
        IReadOnlyList<FleetTarget> targets;
        try
        {
            targets = services.Targets(selection);
        }
        catch (UnknownClientsException ex)
        {
            await error.WriteLineAsync($"eph-server metrics: {ex.Message}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        if (targets.Count == 0)
        {
            await error.WriteLineAsync("eph-server metrics: the selection matches no client").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        return await MetricsOutputAsync(services.CollectMetricsAsync(targets, summary, options, ct), json, output, error).ConfigureAwait(false);
    }

    /// <summary>Prints metrics as <c>metrics</c> does (JSON lines as each answers, or a table at the end); 0 when all answered.</summary>
    internal static async Task<int> MetricsOutputAsync(IAsyncEnumerable<ClientMetricsResult> results, bool json, TextWriter output, TextWriter error)
    {
        var rows = new List<ClientMetricsResult>();
        await foreach (var result in results.ConfigureAwait(false))
        {
            rows.Add(result);
            if (json)
            {
                await output.WriteLineAsync(MetricsJsonLine(result)).ConfigureAwait(false);
                await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            }
        }

        if (!json)
        {
            await output.WriteAsync(OperatorRows.Table(
                ["NAME", "STATUS", "CPU%", "MEM%", "DISK%", "LOAD1", "UPTIME", "ERROR"],
                rows.OrderBy(r => r.DisplayName, StringComparer.OrdinalIgnoreCase).Select(r => new[]
                {
                    r.DisplayName, OperationNames.WireName(r.Status), Number(r.Metrics?.CpuPercent), Number(r.Metrics?.MemoryPercent),
                    Number(r.Metrics?.DiskMaxPercent), Number(r.Metrics?.Load1), Uptime(r.Metrics?.UptimeS), r.Error,
                }), maxCell: 60)).ConfigureAwait(false);
        }

        var failed = rows.Count(r => r.Status != MetricsStatus.Succeeded);
        await (json ? error : output).WriteLineAsync($"{rows.Count} client(s): {rows.Count - failed} answered, {failed} did not").ConfigureAwait(false);
        return failed == 0 ? 0 : 1;
    }

    /// <summary>
    /// One JSON line: uuid, display_name, status, error and duration_ms (always present), then the metrics fields
    /// exactly as the agent's get_metrics answer names them (fields the platform cannot measure are absent).
    /// </summary>
    internal static string MetricsJsonLine(ClientMetricsResult result)
    {
        var line = new JsonObject
        {
            ["uuid"] = result.Uuid,
            ["display_name"] = result.DisplayName,
            ["status"] = OperationNames.WireName(result.Status),
            ["error"] = result.Error,
            ["duration_ms"] = result.DurationMs,
        };
        if (result.Metrics is { } metrics && JsonSerializer.SerializeToNode(metrics, MetricsJson.Default.MetricsResult) is JsonObject fields)
        {
            foreach (var (name, value) in fields.ToList())
            {
                fields.Remove(name);
                line[name] = value;
            }
        }

        return line.ToJsonString(HealthJson.Default.Options);
    }

    internal static string StatusJson(FleetStatus status) => JsonSerializer.Serialize(StatusRow.From(status), HealthJson.Default.StatusRow);

    internal static string StatusText(FleetStatus status)
    {
        var sb = new System.Text.StringBuilder();
        var t = status.Thresholds;
        sb.AppendLine(CultureInfo.InvariantCulture, $"clients        {status.Total} ({status.Online} online, {status.Offline} offline)");
        sb.AppendLine(CultureInfo.InvariantCulture, $"pending keys   {status.PendingKeys}");
        sb.AppendLine(CultureInfo.InvariantCulture, $"key mismatches {status.KeyMismatches}");
        Section(sb, "unhealthy", status.Unhealthy, e => $"{e.Detail}");
        Section(sb, $"cpu > {Number(t.CpuPercent)}%", status.OverCpu, e => $"{Number(e.Value)}%");
        Section(sb, $"memory > {Number(t.MemoryPercent)}%", status.OverMemory, e => $"{Number(e.Value)}%");
        Section(sb, $"disk > {Number(t.DiskPercent)}%", status.OverDisk, e => $"{Number(e.Value)}%");
        Section(sb, "unreachable", status.Unreachable, e => $"{e.Detail}");
        return sb.ToString();
    }

    private static void Section(System.Text.StringBuilder sb, string title, IReadOnlyList<FleetStatusEntry> entries, Func<FleetStatusEntry, string> detail)
    {
        sb.AppendLine(CultureInfo.InvariantCulture, $"{title}: {entries.Count}");
        foreach (var e in entries)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"  {ClientText.Describe(e.DisplayName, e.Uuid)}  {detail(e)}");
        }
    }

    private static string Number(double? value) => value is { } v ? v.ToString("0.##", CultureInfo.InvariantCulture) : "-";

    private static string Uptime(long? seconds) => seconds is { } s
        ? TimeSpan.FromSeconds(s).ToString(s >= 86400 ? @"d\d\ hh\:mm" : @"hh\:mm\:ss", CultureInfo.InvariantCulture)
        : "-";
}

/// <summary>A client listed by <c>status --json</c>.</summary>
internal sealed record StatusEntryRow(string Uuid, string DisplayName, double? Value, string? Detail);

/// <summary>The thresholds <c>status --json</c> applied.</summary>
internal sealed record ThresholdRow(double CpuPercent, double MemoryPercent, double DiskPercent);

/// <summary>The one object of <c>status --json</c>.</summary>
internal sealed record StatusRow(
    int Total,
    int Online,
    int Offline,
    int PendingKeys,
    int KeyMismatches,
    IReadOnlyList<StatusEntryRow> Unhealthy,
    IReadOnlyList<StatusEntryRow> OverCpu,
    IReadOnlyList<StatusEntryRow> OverMemory,
    IReadOnlyList<StatusEntryRow> OverDisk,
    IReadOnlyList<StatusEntryRow> Unreachable,
    ThresholdRow Thresholds,
    string CollectedAt)
{
    public static StatusRow From(FleetStatus s)
    {
        static IReadOnlyList<StatusEntryRow> Rows(IEnumerable<FleetStatusEntry> entries) =>
            entries.Select(e => new StatusEntryRow(e.Uuid, e.DisplayName, e.Value, e.Detail)).ToList();

        return new StatusRow(s.Total, s.Online, s.Offline, s.PendingKeys, s.KeyMismatches,
            Rows(s.Unhealthy), Rows(s.OverCpu), Rows(s.OverMemory), Rows(s.OverDisk), Rows(s.Unreachable),
            new ThresholdRow(s.Thresholds.CpuPercent, s.Thresholds.MemoryPercent, s.Thresholds.DiskPercent),
            OperatorRows.Time(s.CollectedAt));
    }
}

/// <summary>Snake-case JSON of the health verbs; nulls are written so every object has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(StatusRow))]
[JsonSerializable(typeof(JsonObject))]
internal sealed partial class HealthJson : JsonSerializerContext;
