using System.Text.Json.Nodes;

namespace EtPhoneHome.Sandbox;

/// <summary>One agent of a sandbox: its config dir and, while running, its process.</summary>
public sealed class SandboxAgent
{
    private readonly SandboxEnvironment _environment;

    internal SandboxAgent(SandboxEnvironment environment, string name, string configDirectory)
    {
        _environment = environment;
        Name = name;
        ConfigDirectory = configDirectory;
    }

    public string Name { get; }
    public string ConfigDirectory { get; }
    public ManagedProcess? Process { get; private set; }
    public string LogFile => Path.Combine(ConfigDirectory, "agent.log");

    /// <summary>The uuid the hub assigned (from the agent's state file), or null before the first welcome.</summary>
    public string? Uuid
    {
        get
        {
            var state = Path.Combine(ConfigDirectory, "state.json");
            try
            {
                return File.Exists(state) ? JsonNode.Parse(File.ReadAllText(state))?["uuid"]?.GetValue<string>() : null;
            }
            catch (Exception ex) when (ex is IOException or System.Text.Json.JsonException)
            {
                return null; // being rewritten
            }
        }
    }

    /// <summary>
    /// Signals to ignore when the agent is next started (names as <c>env --ignore-signal</c> takes them, e.g. <c>CHLD</c>),
    /// as a parent that ignores them passes them on across exec.
    /// </summary>
    public IReadOnlyList<string> IgnoredSignals { get; set; } = [];

    /// <summary>Starts <c>eph-agent run</c> for this config dir.</summary>
    public void Start()
    {
        if (Process is { HasExited: false })
        {
            return;
        }

        string[] run = ["run", "--config-dir", ConfigDirectory];
        Process = IgnoredSignals.Count == 0
            ? ManagedProcess.Start($"agent {Name}", _environment.AgentExecutable, run, LogFile)
            : ManagedProcess.Start($"agent {Name}", "/usr/bin/env", [.. IgnoredSignals.Select(s => $"--ignore-signal={s}"), _environment.AgentExecutable, .. run], LogFile);
        _environment.Say($"agent {Name} started (pid {Process.Pid})");
    }

    /// <summary>
    /// Stops the agent with SIGTERM (it stops its ssh child itself); its ssh is signalled too, so a stop that has
    /// to fall back to SIGKILL leaves no orphaned ssh behind.
    /// </summary>
    public async Task StopAsync()
    {
        if (Process is not null)
        {
            await Process.StopAsync(includeDescendants: true).ConfigureAwait(false);
            Process = null;
        }
    }

    /// <summary>Edits the agent's config file (for tests that need a different setting).</summary>
    public void EditConfig(Action<JsonObject> edit)
    {
        var file = Path.Combine(ConfigDirectory, "agent.json");
        var node = JsonNode.Parse(File.ReadAllText(file))!.AsObject();
        edit(node);
        File.WriteAllText(file, node.ToJsonString());
    }
}
