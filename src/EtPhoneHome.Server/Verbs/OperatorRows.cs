using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// One line of <c>keys --json</c>. Claimed fields are escaped like every other surface: the relaxed JSON encoder lets C1
/// controls and bidi characters through, and JSON lines are read on terminals too.
/// </summary>
internal sealed record KeyRow(
    string Fingerprint,
    string Status,
    string? ClaimedHostname,
    string? ClaimedPlatform,
    string? Uuid,
    string FirstSeen,
    bool KeyMismatch)
{
    public static KeyRow From(KeyRecord key) => new(
        key.Fingerprint,
        key.Status.ToString().ToLowerInvariant(),
        UntrustedText.ForTerminal(key.ClaimedHostname),
        UntrustedText.ForTerminal(key.ClaimedPlatform),
        UntrustedText.ForTerminal(key.Uuid ?? key.ClaimedUuid),
        OperatorRows.Time(key.FirstSeen),
        key.IsMismatch);
}

/// <summary>One line of <c>clients --json</c>; text that may have come from the agent is escaped (see <see cref="KeyRow"/>).</summary>
internal sealed record ClientRow(
    string Uuid,
    string DisplayName,
    string? Hostname,
    string? Platform,
    bool Online,
    int? TunnelPort,
    IReadOnlyList<string> Tags,
    IReadOnlyList<string> Capabilities,
    string? KeyFingerprint,
    string LastSeen,
    string? Purpose,
    bool KeyMismatch,
    string? Username,
    string FirstSeen,
    int ConnectionCount,
    IReadOnlyList<string>? AllowedPaths,
    string? WebhookUrl,
    int? RateLimitRpm,
    int? RateLimitConcurrent,
    string? AgentVersion)
{
    public static ClientRow From(ClientRecord client) => new(
        client.Uuid,
        UntrustedText.ForTerminal(client.DisplayName),
        UntrustedText.ForTerminal(client.Hostname),
        UntrustedText.ForTerminal(client.Platform),
        client.Online,
        client.Online ? client.TunnelPort : null,
        OperatorRows.Texts(client.Tags),
        OperatorRows.Texts(client.Capabilities),
        client.KeyFingerprint,
        OperatorRows.Time(client.LastSeen),
        UntrustedText.ForTerminal(client.Purpose),
        client.KeyMismatch,
        UntrustedText.ForTerminal(client.Username),
        OperatorRows.Time(client.FirstSeen),
        client.ConnectionCount,
        client.AllowedPaths,
        client.WebhookUrl is { } webhook ? WebhookConfiguration.Redact(webhook) : null,
        client.RateLimitRpm,
        client.RateLimitConcurrent,
        UntrustedText.ForTerminal(client.AgentVersion));
}

/// <summary>One line of <c>exec --json</c>, written as soon as its target finishes.</summary>
internal sealed record ExecRow(
    string Uuid,
    string DisplayName,
    string Status,
    int? ExitCode,
    string Stdout,
    string Stderr,
    long DurationMs,
    bool Truncated,
    string? Error,
    string? Failure)
{
    public static ExecRow From(FleetCommandResult result) => new(
        result.Uuid,
        result.DisplayName,
        OperationNames.Wire(result.Status),
        result.ExitCode,
        result.Stdout,
        result.Stderr,
        result.DurationMs,
        result.Truncated,
        result.Error,
        result.Failure == FailureKind.None ? null : FailureKinds.Wire(result.Failure));
}

/// <summary>Formatting shared by the operator verbs: JSON lines and plain-text tables.</summary>
internal static class OperatorRows
{
    /// <summary>ISO-8601 in UTC, second precision: "2025-01-02T03:04:05Z".</summary>
    public static string Time(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);

    /// <summary>Agent-supplied list entries with their control and invisible formatting characters escaped.</summary>
    public static IReadOnlyList<string> Texts(IReadOnlyList<string> values) => [.. values.Select(v => UntrustedText.ForTerminal(v))];

    /// <summary>One compact JSON object (no line breaks inside, so one object per line).</summary>
    public static string JsonLine(KeyRow row) => JsonSerializer.Serialize(row, Json.KeyRow);

    public static string JsonLine(ClientRow row) => JsonSerializer.Serialize(row, Json.ClientRow);

    public static string JsonLine(ExecRow row) => JsonSerializer.Serialize(row, Json.ExecRow);

    // Command output is full of quotes, '<' and '+'; escaping only what JSON requires keeps lines readable.
    private static readonly OperatorJson Json = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>A left-aligned text table with a header row; cells are cut at <paramref name="maxCell"/> characters.</summary>
    public static string Table(IReadOnlyList<string> headers, IEnumerable<IReadOnlyList<string?>> rows, int maxCell = 40)
    {
        var cells = rows.Select(r => r.Select(c => Cut(c ?? "", maxCell)).ToArray()).ToList();
        var widths = headers.Select((h, i) => Math.Max(h.Length, cells.Count == 0 ? 0 : cells.Max(r => r[i].Length))).ToArray();
        var lines = new List<string>
        {
            Line(headers, widths),
            Line(widths.Select(w => new string('-', w)).ToArray(), widths),
        };
        lines.AddRange(cells.Select(r => Line(r, widths)));
        return string.Join(Environment.NewLine, lines) + Environment.NewLine;
    }

    private static string Line(IReadOnlyList<string> cells, int[] widths) =>
        string.Join("  ", cells.Select((c, i) => i == cells.Count - 1 ? c : c.PadRight(widths[i]))).TrimEnd();

    // Cells carry agent-claimed text (hostnames, platforms, names): line breaks become spaces, every other control or
    // invisible formatting character a visible escape, so a cell cannot clear the screen, set the clipboard or add a row.
    private static string Cut(string value, int max) => UntrustedText.ForTerminal(value.ReplaceLineEndings(" "), max);
}

/// <summary>Snake-case JSON for the verbs' output; nulls are written so every line has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(KeyRow))]
[JsonSerializable(typeof(ClientRow))]
[JsonSerializable(typeof(ExecRow))]
internal sealed partial class OperatorJson : JsonSerializerContext;
