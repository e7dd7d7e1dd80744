using System.Text.Json;

namespace EtPhoneHome.Agent;

/// <summary>What the agent learned from the hub (<c>state.json</c>): the uuid it was assigned and the one server port its key may forward.</summary>
public sealed record AgentState
{
    public const string FileName = "state.json";

    public string? Uuid { get; init; }
    public DateTimeOffset? RegisteredAt { get; init; }
    /// <summary>The port the hub assigned to this key; the reverse forward asks for exactly this port.</summary>
    public int? TunnelPort { get; init; }

    /// <summary>Reads the state; a missing or unreadable file is an empty state.</summary>
    public static AgentState Load(string configDir)
    {
        var path = Path.Combine(configDir, FileName);
        try
        {
            return File.Exists(path)
                ? JsonSerializer.Deserialize(File.ReadAllBytes(path), AgentJson.Default.AgentState) ?? new AgentState()
                : new AgentState();
        }
        catch (JsonException)
        {
            return new AgentState();
        }
    }

    public void Save(string configDir) =>
        SecureFile.WriteAllBytes(Path.Combine(configDir, FileName), JsonSerializer.SerializeToUtf8Bytes(this, AgentJson.Default.AgentState));
}
