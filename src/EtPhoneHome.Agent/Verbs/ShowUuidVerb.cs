namespace EtPhoneHome.Agent;

/// <summary><c>eph-agent show-uuid</c>: prints the uuid the hub assigned.</summary>
public static class ShowUuidVerb
{
    public const string Usage = """
        usage: eph-agent show-uuid [--config-dir DIR]
          Prints the uuid the server assigned to this agent (exit 1 if not registered yet).
        """;

    public static int Run(IReadOnlyList<string> args)
    {
        var cl = CommandLine.Parse(args, ["config-dir"], []);
        if (cl.Help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }

        var dir = cl.ConfigDir();
        _ = AgentConfig.Load(dir);
        if (AgentState.Load(dir).Uuid is { Length: > 0 } uuid)
        {
            Console.Out.WriteLine(uuid);
            return 0;
        }

        Console.Error.WriteLine("not registered yet: the server assigns a uuid when it first welcomes this agent (after its key is approved)");
        return 1;
    }
}
