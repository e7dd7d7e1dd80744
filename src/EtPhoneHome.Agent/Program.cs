namespace EtPhoneHome.Agent;

/// <summary>eph-agent entry point: dispatches the verb; usage errors exit 2, operational failures 1.</summary>
internal static class Program
{
    private const string Usage = """
        usage: eph-agent <command> [options]

        commands:
          init        create the config, the agent key and the pinned server host key
          run         phone home and serve commands (until SIGTERM / Ctrl+C)
          status      show the connection state of the running agent
          show-key    print the agent's public key
          show-uuid   print the uuid the server assigned

        'eph-agent <command> --help' describes a command. Every command takes --config-dir DIR
        (default: $ETPHONEHOME_AGENT_DIR, else ~/.etphonehome-agent).
        """;

    public static async Task<int> Main(string[] args)
    {
        // Before anything starts the runtime's signal handling, which records the disposition it finds.
        InheritedSignals.ResetIgnoredSigchld();
        if (args.Length == 0)
        {
            Console.Error.WriteLine(Usage);
            return 2;
        }

        var verb = args[0];
        var rest = args[1..];
        try
        {
            return verb switch
            {
                "init" => await InitVerb.RunAsync(rest, CancellationToken.None).ConfigureAwait(false),
                "run" => await RunVerb.RunAsync(rest).ConfigureAwait(false),
                "status" => StatusVerb.Run(rest),
                "show-key" => ShowKeyVerb.Run(rest),
                "show-uuid" => ShowUuidVerb.Run(rest),
                "--help" or "-h" or "help" => Help(),
                "--version" or "version" => Version(),
                _ => throw new UsageException($"unknown command '{verb}'"),
            };
        }
        catch (UsageException ex)
        {
            Console.Error.WriteLine($"eph-agent: {ex.Message}");
            Console.Error.WriteLine();
            Console.Error.WriteLine(UsageOf(verb));
            return 2;
        }
        catch (AgentConfigException ex)
        {
            Console.Error.WriteLine($"eph-agent: {ex.Message}");
            return 1;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine($"eph-agent: {ex.Message}");
            return 1;
        }
    }

    private static string UsageOf(string verb) => verb switch
    {
        "init" => InitVerb.Usage,
        "run" => RunVerb.Usage,
        "status" => StatusVerb.Usage,
        "show-key" => ShowKeyVerb.Usage,
        "show-uuid" => ShowUuidVerb.Usage,
        _ => Usage,
    };

    private static int Help()
    {
        Console.Out.WriteLine(Usage);
        return 0;
    }

    private static int Version()
    {
        Console.Out.WriteLine("eph-agent " + EtPhoneHome.Protocol.ProtocolInfo.ProductVersion);
        return 0;
    }
}
