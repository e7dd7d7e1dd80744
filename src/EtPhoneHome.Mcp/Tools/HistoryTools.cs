using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>The audit history: who did what to which client, through which surface, with what result.</summary>
[McpServerToolType]
public sealed class HistoryTools(McpFleet fleet)
{
    [McpServerTool(Name = "get_history", Title = "Operation history", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false)]
    [Description("Recent operations, newest first: commands, edits and key decisions from every surface (mcp, pwsh, cli), with actor, status and duration.")]
    public CallToolResult GetHistory(
        [Description("Only operations on this client (uuid or display name); all clients when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        [Description("Most entries returned (1-500, default 50).")][Range(1, ToolArguments.MaxHistoryLimit)] int? limit = null)
        => ToolResults.Run(fleet, "get_history", () =>
        {
            var max = ToolArguments.Range("limit", limit, 1, ToolArguments.MaxHistoryLimit, ToolArguments.DefaultHistoryLimit);
            var id = ToolArguments.OptionalId("client_id", client_id);
            var client = id is null ? null : ClientResolver.Find(fleet.Registry, id);
            var names = new Dictionary<string, string>(StringComparer.Ordinal);
            var entries = fleet.Registry.ListAudit(client?.Uuid, max).Select(e => new
            {
                at = e.At is { } at ? Views.Time(at) : null,
                operation = e.Operation,
                uuid = e.Uuid,
                display_name = e.Uuid is null ? null : NameOf(e.Uuid),
                actor = e.Actor,
                surface = e.Surface,
                status = e.Status,
                detail = e.Detail,
                duration_ms = e.DurationMs,
            }).ToList();
            return new { entries, count = entries.Count };

            string? NameOf(string uuid)
            {
                if (!names.TryGetValue(uuid, out var name))
                {
                    name = fleet.Registry.GetClient(uuid)?.DisplayName ?? "";
                    names[uuid] = name;
                }

                return name.Length == 0 ? null : name;
            }
        });
}
