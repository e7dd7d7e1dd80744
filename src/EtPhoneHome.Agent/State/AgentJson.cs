using System.Text.Json.Serialization;

namespace EtPhoneHome.Agent;

/// <summary>Source-generated JSON for the agent's own files: snake_case, nulls omitted, indented for operators.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    WriteIndented = true,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip,
    AllowTrailingCommas = true)]
[JsonSerializable(typeof(AgentConfig))]
[JsonSerializable(typeof(AgentServer))]
[JsonSerializable(typeof(AgentState))]
[JsonSerializable(typeof(AgentStatus))]
internal sealed partial class AgentJson : JsonSerializerContext;
