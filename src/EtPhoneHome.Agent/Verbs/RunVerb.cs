using System.Runtime.InteropServices;

namespace EtPhoneHome.Agent;

/// <summary><c>eph-agent run</c>: phone home until SIGTERM or Ctrl+C.</summary>
public static class RunVerb
{
    public const string Usage = """
        usage: eph-agent run [--config-dir DIR]
          Connects to the server over ssh with a reverse tunnel, serves commands on loopback behind the
          tunnel handshake, and reconnects with backoff. Stops cleanly on SIGTERM or Ctrl+C.
        """;

    public static async Task<int> RunAsync(IReadOnlyList<string> args)
    {
        var cl = CommandLine.Parse(args, ["config-dir"], []);
        if (cl.Help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }

        var dir = Path.GetFullPath(cl.ConfigDir());
        var config = AgentConfig.Load(dir);

        using var stop = new CancellationTokenSource();
        void RequestStop(PosixSignalContext context)
        {
            context.Cancel = true;
            AgentLog.Info($"{context.Signal} received; stopping");
            stop.Cancel();
        }

        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, RequestStop);
        using var quit = PosixSignalRegistration.Create(PosixSignal.SIGQUIT, RequestStop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, RequestStop);
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            stop.Cancel();
        };

        return await new SshSupervisor(config, dir).RunAsync(stop.Token).ConfigureAwait(false);
    }
}
