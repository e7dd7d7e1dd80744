namespace EtPhoneHome.Agent;

/// <summary><c>eph-agent show-key</c>: prints the agent's public key line.</summary>
public static class ShowKeyVerb
{
    public const string Usage = """
        usage: eph-agent show-key [--config-dir DIR]
          Prints the agent's public key (the line the server's operator approves).
        """;

    public static int Run(IReadOnlyList<string> args)
    {
        var cl = CommandLine.Parse(args, ["config-dir"], []);
        if (cl.Help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }

        var config = AgentConfig.Load(cl.ConfigDir());
        var pub = config.IdentityFile + ".pub";
        if (!File.Exists(pub))
        {
            Console.Error.WriteLine($"eph-agent: public key {pub} is missing");
            return 1;
        }

        Console.Out.WriteLine(File.ReadAllText(pub).Trim());
        return 0;
    }
}
