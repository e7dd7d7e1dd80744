using System.Globalization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>A client as list_clients and find_client show it.</summary>
public sealed record ClientSummary(
    string Uuid,
    string DisplayName,
    string? Purpose,
    IReadOnlyList<string> Tags,
    IReadOnlyList<string> Capabilities,
    string? Hostname,
    string? Platform,
    bool Online,
    string LastSeen,
    bool KeyMismatch)
{
    public static ClientSummary From(ClientRecord c) => new(
        c.Uuid, c.DisplayName, c.Purpose, c.Tags, c.Capabilities, c.Hostname, c.Platform, c.Online, Views.Time(c.LastSeen), c.KeyMismatch);
}

/// <summary>Everything describe_client tells about a client (never its session secret).</summary>
public sealed record ClientDetails(
    string Uuid,
    string DisplayName,
    string? Purpose,
    IReadOnlyList<string> Tags,
    IReadOnlyList<string> Capabilities,
    IReadOnlyList<string>? AllowedPaths,
    string? WebhookUrl,
    int? RateLimitRpm,
    int? RateLimitConcurrent,
    string? Hostname,
    string? Platform,
    string? Username,
    string? AgentVersion,
    string? KeyFingerprint,
    bool KeyMismatch,
    bool Online,
    string FirstSeen,
    string LastSeen,
    int ConnectionCount,
    bool Selected)
{
    public static ClientDetails From(ClientRecord c, bool selected) => new(
        c.Uuid, c.DisplayName, c.Purpose, c.Tags, c.Capabilities, c.AllowedPaths, c.WebhookUrl is { } webhook ? WebhookConfiguration.Redact(webhook) : null, c.RateLimitRpm, c.RateLimitConcurrent,
        c.Hostname, c.Platform, c.Username, c.AgentVersion, c.KeyFingerprint, c.KeyMismatch, c.Online,
        Views.Time(c.FirstSeen), Views.Time(c.LastSeen), c.ConnectionCount, selected);
}

/// <summary>Client named in a result: enough to act on it next.</summary>
public sealed record ClientRef(string Uuid, string DisplayName)
{
    public static ClientRef From(ClientRecord c) => new(c.Uuid, c.DisplayName);
}

internal static class Views
{
    /// <summary>ISO-8601 UTC, second precision, like the verbs' JSON lines.</summary>
    public static string Time(DateTimeOffset value) =>
        value.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture);
}
