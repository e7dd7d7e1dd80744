using System.Net.Sockets;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Gate;

/// <summary>
/// eph-gate: sshd's AuthorizedKeysCommand ("keys") and forced commands ("session" for agents, "operator" for operator
/// keys). Stateless; every mode is a thin client of the hub's unix socket.
/// </summary>
internal static class Program
{
    private const string Usage = """
        usage:
          eph-gate keys --socket PATH <user> <fingerprint> <keytype> <key>
          eph-gate session --socket PATH --fingerprint FP [--resume-grace SECONDS]
          eph-gate operator --socket PATH --fingerprint FP

        session relays the SSH session's control channel to the hub; when the hub goes away it keeps the session
        and re-attaches it to the next hub, for up to --resume-grace seconds (default 120).
        """;

    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.Error.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }

        string? socket = null;
        string? fingerprint = null;
        var relayOptions = new SessionRelayOptions();
        var positional = new List<string>();
        for (var i = 1; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--socket" when i + 1 < args.Length:
                    socket = args[++i];
                    break;
                case "--fingerprint" when i + 1 < args.Length:
                    fingerprint = args[++i];
                    break;
                case "--resume-grace" when i + 1 < args.Length:
                    if (!double.TryParse(args[++i], System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var grace)
                        || grace is < 0 or > 86_400)
                    {
                        Console.Error.WriteLine("eph-gate: --resume-grace takes seconds, 0 to 86400");
                        return 2;
                    }

                    relayOptions = relayOptions with { Grace = TimeSpan.FromSeconds(grace) };
                    break;
                default:
                    positional.Add(args[i]);
                    break;
            }
        }

        if (socket is null)
        {
            Console.Error.WriteLine("eph-gate: --socket PATH is required");
            return 2;
        }

        switch (args[0])
        {
            case "keys":
                if (positional.Count != 4)
                {
                    Console.Error.WriteLine("eph-gate keys: expected <user> <fingerprint> <keytype> <key>");
                    return 0; // print nothing: sshd refuses the key
                }

                return await KeysAsync(socket, positional[0], positional[1], positional[2], positional[3]).ConfigureAwait(false);
            case "session":
                if (fingerprint is null)
                {
                    Console.Error.WriteLine("eph-gate session: --fingerprint FP is required");
                    return 2;
                }

                return await SessionAsync(socket, fingerprint, relayOptions).ConfigureAwait(false);
            case "operator":
                if (fingerprint is null)
                {
                    Console.Error.WriteLine("eph-gate operator: --fingerprint FP is required");
                    return 2;
                }

                return await OperatorAsync(socket, fingerprint).ConfigureAwait(false);
            default:
                Console.Error.WriteLine($"eph-gate: unknown mode \"{args[0]}\"\n{Usage}");
                return 2;
        }
    }

    private static async Task<Socket> ConnectAsync(string path, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static async Task<int> KeysAsync(string socketPath, string user, string fingerprint, string keyType, string key)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            using var socket = await ConnectAsync(socketPath, timeout.Token).ConfigureAwait(false);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await Wire.WriteAsync(stream, new GateRequest
            {
                Op = "keys",
                Fingerprint = fingerprint,
                User = user,
                KeyType = keyType,
                Key = key,
            }, ProtocolJson.Default.GateRequest, timeout.Token).ConfigureAwait(false);
            var response = await Wire.ReadAsync(stream, ProtocolJson.Default.GateKeysResponse, 1024 * 1024, timeout.Token).ConfigureAwait(false);
            if (response is null)
            {
                Console.Error.WriteLine("eph-gate: the hub closed the connection without an answer; refusing the key");
                return 0;
            }

            var stdout = Console.Out;
            foreach (var line in response.Lines)
            {
                if (!line.Contains('\n', StringComparison.Ordinal) && !line.Contains('\r', StringComparison.Ordinal))
                {
                    stdout.Write(line);
                    stdout.Write('\n');
                }
            }

            stdout.Flush();
            return 0;
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ProtocolException)
        {
            Console.Error.WriteLine($"eph-gate: hub unreachable at {socketPath} ({ex.Message}); refusing the key");
            return 0;
        }
    }

    private static async Task<int> SessionAsync(string socketPath, string fingerprint, SessionRelayOptions options)
    {
        var first = new GateRequest
        {
            Op = "session",
            Fingerprint = fingerprint,
            GatePid = Environment.ProcessId,
            SshConnection = Environment.GetEnvironmentVariable("SSH_CONNECTION"),
            User = Environment.GetEnvironmentVariable("USER"),
        };
        await using var stdin = Console.OpenStandardInput();
        await using var stdout = Console.OpenStandardOutput();
        var relay = new SessionRelay(stdin, stdout, ct => ConnectAsync(socketPath, ct), first, options,
            line => Console.Error.WriteLine($"eph-gate: {line} (hub socket {socketPath})"));
        return await relay.RunAsync().ConfigureAwait(false);
    }

    private static async Task<int> OperatorAsync(string socketPath, string fingerprint)
    {
        var first = new GateRequest
        {
            Op = "operator",
            Fingerprint = fingerprint,
            GatePid = Environment.ProcessId,
            SshConnection = Environment.GetEnvironmentVariable("SSH_CONNECTION"),
            User = Environment.GetEnvironmentVariable("USER"),
        };
        // File bytes cross these pipes (from and to sshd): larger pipes, fewer reads, writes and wake-ups per mebibyte.
        PipeCapacity.TryGrow(0);
        PipeCapacity.TryGrow(1);
        await using var stdin = Console.OpenStandardInput();
        await using var stdout = Console.OpenStandardOutput();
        return await OperatorRelay.RunAsync(stdin, stdout, socketPath, first, Console.Error).ConfigureAwait(false);
    }
}
