using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome;

/// <summary>
/// A registered client, as Get-EphClient writes it. Immutable; carries no secret. Text that may have come from the agent
/// (name, purpose, tags, hostname, platform, user, capabilities, version) has its control and invisible formatting
/// characters escaped, so the default views cannot be made to send escape sequences to the terminal. Values stored since
/// admission validation are unchanged by this (the registry never holds such characters); only older rows differ.
/// </summary>
public sealed class EphClient
{
    internal EphClient(ClientRecord client)
    {
        Uuid = client.Uuid;
        Name = UntrustedText.ForTerminal(client.DisplayName);
        Online = client.Online;
        Tags = EphList.Of(client.Tags.Select(t => UntrustedText.ForTerminal(t)!));
        Purpose = UntrustedText.ForTerminal(client.Purpose);
        Hostname = UntrustedText.ForTerminal(client.Hostname);
        Platform = UntrustedText.ForTerminal(client.Platform);
        Username = UntrustedText.ForTerminal(client.Username);
        Capabilities = EphList.Of(client.Capabilities.Select(c => UntrustedText.ForTerminal(c)!));
        LastSeen = client.LastSeen;
        FirstSeen = client.FirstSeen;
        TunnelPort = client.Online ? client.TunnelPort : null;
        KeyFingerprint = client.KeyFingerprint;
        KeyMismatch = client.KeyMismatch;
        AgentVersion = UntrustedText.ForTerminal(client.AgentVersion);
        AllowedPaths = client.AllowedPaths is null ? null : EphList.Of(client.AllowedPaths);
        // User info and query strings may carry a token: shown redacted, as in logs.
        WebhookUrl = client.WebhookUrl is { } webhook ? WebhookConfiguration.Redact(webhook) : null;
        RateLimitRpm = client.RateLimitRpm;
        RateLimitConcurrent = client.RateLimitConcurrent;
        ConnectionCount = client.ConnectionCount;
        RemovedAt = client.RemovedAt;
    }

    public string Uuid { get; }
    /// <summary>Same as <see cref="Uuid"/>; binds to -Id and -ClientId from the pipeline.</summary>
    public string Id => Uuid;
    public string Name { get; }
    /// <summary>Same as <see cref="Name"/>.</summary>
    public string DisplayName => Name;
    public bool Online { get; }
    public EphList<string> Tags { get; }
    public string? Purpose { get; }
    public string? Hostname { get; }
    public string? Platform { get; }
    public string? Username { get; }
    public EphList<string> Capabilities { get; }
    public DateTimeOffset LastSeen { get; }
    public DateTimeOffset FirstSeen { get; }
    public int? TunnelPort { get; }
    public string? KeyFingerprint { get; }
    public bool KeyMismatch { get; }
    public string? AgentVersion { get; }
    /// <summary>Server-side allowed paths; null means every path (the agent's own list still applies).</summary>
    public EphList<string>? AllowedPaths { get; }
    /// <summary>The client's own webhook URL; null means the global one.</summary>
    public string? WebhookUrl { get; }
    /// <summary>Requests per rolling minute; null means the default.</summary>
    public int? RateLimitRpm { get; }
    /// <summary>Requests in flight at once; null means the default.</summary>
    public int? RateLimitConcurrent { get; }
    /// <summary>How many times the client has connected.</summary>
    public int ConnectionCount { get; }
    /// <summary>When the client was decommissioned (Remove-EphClient); null while it is active.</summary>
    public DateTimeOffset? RemovedAt { get; }

    public override string ToString() => Name;
}

/// <summary>The result of Invoke-EphCommand on one client. Every target gets one.</summary>
public sealed class EphCommandResult
{
    internal EphCommandResult(FleetCommandResult result)
    {
        ClientId = result.Uuid;
        PSComputerName = UntrustedText.ForTerminal(result.DisplayName);
        Status = (EphCommandStatus)(int)result.Status;
        ExitCode = result.ExitCode;
        Stdout = result.Stdout;
        Output = EphList.Of(Lines(result.Stdout));
        Stderr = result.Stderr;
        Duration = TimeSpan.FromMilliseconds(result.DurationMs);
        Truncated = result.Truncated;
        Error = UntrustedText.ForTerminal(result.Error);
    }

    public string ClientId { get; }
    /// <summary>The client's display name, like Invoke-Command's PSComputerName.</summary>
    public string PSComputerName { get; }
    public EphCommandStatus Status { get; }
    public int? ExitCode { get; }
    public string Stdout { get; }
    /// <summary>
    /// Standard output line by line (no line ends, no empty last line), as Invoke-Command and Posh-SSH's
    /// Invoke-SSHCommand give it: <c>... | Select-Object -ExpandProperty Output</c> streams the lines.
    /// </summary>
    public EphList<string> Output { get; }
    public string Stderr { get; }
    public TimeSpan Duration { get; }
    public bool Truncated { get; }
    public string? Error { get; }

    public override string ToString() => $"{PSComputerName}: {Status}";

    /// <summary>The lines of <paramref name="text"/>: \n or \r\n ends a line; a final line end adds no empty line.</summary>
    internal static IEnumerable<string> Lines(string? text)
    {
        if (string.IsNullOrEmpty(text))
        {
            return [];
        }

        var lines = text.Split('\n');
        var count = text.EndsWith('\n') ? lines.Length - 1 : lines.Length;
        return lines.Take(count).Select(l => l.EndsWith('\r') ? l[..^1] : l);
    }
}

/// <summary>
/// Status of one target (mirrors Core's CommandStatus value for value; defined here because PowerShell only
/// shows types of the module's own assembly when dependencies load in a private context).
/// </summary>
public enum EphCommandStatus
{
    Succeeded = CommandStatus.Succeeded,
    Failed = CommandStatus.Failed,
    TimedOut = CommandStatus.TimedOut,
    Offline = CommandStatus.Offline,
    Denied = CommandStatus.Denied,
    RateLimited = CommandStatus.RateLimited,
    Error = CommandStatus.Error,
    Skipped = CommandStatus.Skipped,
}
