using System.Text.Json;

namespace EtPhoneHome.Agent;

/// <summary>What the agent learned from the hub (<c>state.json</c>): the uuid it was assigned.</summary>
public sealed record AgentState
{
    public const string FileName = "state.json";

    public string? Uuid { get; init; }
    public DateTimeOffset? RegisteredAt { get; init; }

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
