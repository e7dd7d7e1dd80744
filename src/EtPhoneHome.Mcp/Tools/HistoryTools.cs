using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>The audit history: who did what to which client, through which surface, with what result.</summary>
[McpServerToolType]
public sealed class HistoryTools(McpFleet fleet)
{
    /// <summary>Most entries get_history may skip (paging far back is better done with until).</summary>
    public const int MaxSkip = 100_000;

    /// <summary>Longest operation or status filter.</summary>
    public const int MaxFilterLength = 64;

    [McpServerTool(Name = "get_history", Title = "Operation history", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false, UseStructuredContent = true)]
    [Description("Operations, newest first: commands, metrics, exchange transfers, edits and key decisions from every surface (mcp, pwsh, cli), with actor, status and duration. Filter by client, operation, status and time; page with limit and skip. History of removed clients stays available.")]
    public async Task<HistoryPage> GetHistory(
        [Description("Only operations on this client (uuid or display name, removed clients included); all clients when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        [Description("Only this operation (exact, case-insensitive), the tool names: run_command, read_file, get_client_metrics, update_client, accept_key, exchange_upload…; an unknown one is INVALID_ARGUMENT.")][MaxLength(MaxFilterLength)] string? operation = null,
        [Description("Only this status (exact, case-insensitive), succeeded, failed, timed_out, offline, denied, rate_limited, error, skipped, cancelled, not_found, unchanged; another is INVALID_ARGUMENT.")][MaxLength(MaxFilterLength)] string? status = null,
        [Description("Only entries at or after this time: ISO-8601 (UTC unless an offset is given) or an age such as 90m, 12h, 7d.")][MaxLength(ToolArguments.MaxQueryLength)] string? since = null,
        [Description("Only entries before this time (same forms as since).")][MaxLength(ToolArguments.MaxQueryLength)] string? until = null,
        [Description("Most entries returned (1-500, default 50).")][Range(1, ToolArguments.MaxHistoryLimit)] int? limit = null,
        [Description("Entries to skip first, newest first (0-100000, default 0), to page back.")][Range(0, MaxSkip)] int? skip = null,
        CancellationToken cancellationToken = default)
    {
        var max = ToolArguments.Range("limit", limit, 1, ToolArguments.MaxHistoryLimit, ToolArguments.DefaultHistoryLimit);
        var offset = ToolArguments.Range("skip", skip, 0, MaxSkip, 0);
        var op = Filter("operation", operation);
        var state = Filter("status", status);
        var now = DateTimeOffset.UtcNow;
        var from = Time("since", since, now);
        var to = Time("until", until, now);
        if (from is { } f && to is { } t && t <= f)
        {
            throw ToolFailure.Invalid("until", $"until ({Views.Time(t)}) must be later than since ({Views.Time(f)})");
        }

        IReadOnlyList<string>? uuids = null;
        if (fleet.Remote is { } server)
        {
            var remote = await server.GetAsync(cancellationToken).ConfigureAwait(false);
            if (ToolArguments.OptionalId("client_id", client_id) is { } wanted)
            {
                uuids = [(await RemoteOnly.FindAsync(server, wanted, cancellationToken).ConfigureAwait(false)).Uuid];
            }

            var answer = await remote.QueryHistoryAsync(new HistoryQuery
            {
                Uuids = uuids,
                Operations = op is null ? null : [op],
                Statuses = state is null ? null : [state],
                Since = from,
                Until = to,
                Take = max,
                Skip = offset,
            }, withTotal: false, cancellationToken).ConfigureAwait(false);
            return Page(answer.Entries, answer.DisplayNames, max, offset);
        }

        if (ToolArguments.OptionalId("client_id", client_id) is { } id)
        {
            var found = ClientHistory.ResolveClients(fleet.Registry.Clients, [id]);
            if (found.NotFound.Count > 0 || found.Uuids.Count == 0)
            {
                throw new ToolFailure(ToolErrorCodes.ClientNotFound, $"no client, current or removed, has the uuid or name '{id}'",
                    "Use one of 'available_clients' (uuid or display name), or call list_clients / find_client.",
                    new Dictionary<string, object?> { ["client_id"] = id, ["available_clients"] = ClientResolver.Suggestions(fleet.Registry.Clients) });
            }

            uuids = found.Uuids;
        }

        var page = fleet.Registry.History.QueryHistory(new HistoryQuery
        {
            Uuids = uuids,
            Operations = op is null ? null : [op],
            Statuses = state is null ? null : [state],
            Since = from,
            Until = to,
            Take = max,
            Skip = offset,
        });
        return Page(page, ClientHistory.DisplayNames(fleet.Registry.Clients, page.Select(e => e.Uuid)), max, offset);
    }

    private static HistoryPage Page(IReadOnlyList<AuditEntry> page, IReadOnlyDictionary<string, string> names, int max, int offset)
    {
        var entries = page.Select(e => new HistoryEntry(
            e.At is { } at ? Views.Time(at) : null,
            e.Operation,
            e.Uuid,
            e.Uuid is { } u ? Views.Text(names.GetValueOrDefault(u)) : null,
            e.Actor,
            e.Surface,
            e.Status,
            e.Detail,
            e.DurationMs)).ToList();
        return new HistoryPage(
            entries,
            entries.Count,
            offset,
            entries.Count == max ? true : null,
            entries.Count == max ? $"more entries may exist; call again with skip {offset + max}" : null);
    }

    private static string? Filter(string parameter, string? value)
        => string.IsNullOrWhiteSpace(value) ? null : ToolArguments.MaxLength(parameter, value.Trim(), MaxFilterLength);

    private static DateTimeOffset? Time(string parameter, string? value, DateTimeOffset now)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }

        ToolArguments.MaxLength(parameter, value, ToolArguments.MaxQueryLength);
        try
        {
            return ClientHistory.ParseTime(value, now);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException or OverflowException)
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} '{value}' is not a time: use ISO-8601 (2025-03-04T05:06:07Z) or an age such as 90m, 12h or 7d");
        }
    }
}

/// <summary>get_history: one page of entries, newest first; <c>more</c> when a further page may exist.</summary>
public sealed record HistoryPage(IReadOnlyList<HistoryEntry> Entries, int Count, int Skip, bool? More, string? Message);

/// <summary>One operation in the history.</summary>
public sealed record HistoryEntry(
    string? At, string Operation, string? Uuid, string? DisplayName, string Actor, string Surface, string Status, string? Detail, long? DurationMs);
