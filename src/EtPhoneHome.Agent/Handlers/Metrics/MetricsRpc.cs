using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent.Metrics;

/// <summary>The <c>get_metrics</c> handler: validates params, collects, answers.</summary>
public static class MetricsRpc
{
    public static async Task<JsonElement> HandleAsync(JsonElement? parameters, MetricsCollector collector, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(collector);
        var summary = ParseSummary(parameters);
        var result = await collector.CollectAsync(summary, ct).ConfigureAwait(false);
        return Wire.ToElement(result, MetricsJson.Default.MetricsResult);
    }

    /// <summary>Absent or null params mean the full form; otherwise an object whose optional summary is a boolean.</summary>
    internal static bool ParseSummary(JsonElement? parameters)
    {
        if (parameters is not { } element || element.ValueKind is JsonValueKind.Null or JsonValueKind.Undefined)
        {
            return false;
        }

        if (element.ValueKind != JsonValueKind.Object)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object such as {\"summary\": true}");
        }

        if (!element.TryGetProperty("summary", out var summary) || summary.ValueKind == JsonValueKind.Null)
        {
            return false;
        }

        return summary.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new RpcFault(RpcErrorCodes.InvalidParams, "summary must be a boolean (true or false)"),
        };
    }
}
