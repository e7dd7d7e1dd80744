using System.Text.Json;

namespace EtPhoneHome.Agent;

/// <summary>Connection states written to <c>status.json</c>.</summary>
public static class AgentStates
{
    public const string Connecting = "connecting";
    public const string Pending = "pending";
    public const string KeyMismatch = "key_mismatch";
    public const string Online = "online";
    public const string Backoff = "backoff";
    public const string Stopped = "stopped";
}

/// <summary>The running agent's view of its connection (<c>status.json</c>), read by <c>eph-agent status</c>.</summary>
public sealed record AgentStatus
{
    public const string FileName = "status.json";

    public required string State { get; init; }
    public string? Server { get; init; }
    public int? TunnelPort { get; init; }
    public string? Uuid { get; init; }
    public DateTimeOffset Since { get; init; }
    public string? LastError { get; init; }
    public int Pid { get; init; }
    public int? RpcPort { get; init; }
    /// <summary>When the state is backoff: when the next attempt starts.</summary>
    public DateTimeOffset? NextAttempt { get; init; }

    public static AgentStatus? Load(string configDir)
    {
        var path = Path.Combine(configDir, FileName);
        try
        {
            return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJson.Default.AgentStatus) : null;
        }
        catch (Exception ex) when (ex is JsonException or IOException)
        {
            return null;
        }
    }

    public void Save(string configDir) =>
        SecureFile.WriteAllBytes(Path.Combine(configDir, FileName), JsonSerializer.SerializeToUtf8Bytes(this, AgentJson.Default.AgentStatus));
}
