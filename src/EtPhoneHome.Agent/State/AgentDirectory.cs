namespace EtPhoneHome.Agent;

/// <summary>Where the agent keeps its files when <c>--config-dir</c> is not given.</summary>
internal static class AgentDirectory
{
    public const string EnvironmentVariable = "ETPHONEHOME_AGENT_DIR";

    public static string Default()
    {
        var fromEnv = Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            return fromEnv;
        }

        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".etphonehome-agent");
    }
}
