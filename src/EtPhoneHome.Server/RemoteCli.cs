using System.CommandLine;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Server.Verbs;

namespace EtPhoneHome.Server;

/// <summary>
/// eph-server from a workstation: with <c>--server [user@]host[:port]</c> (or a saved connection's name, or
/// <c>$ETPHONEHOME_SERVER</c>) the operator verbs run through the server's operator service over ssh, with the same
/// output and exit codes as on the server host. A verb with no remote operation refuses (exit 2) and touches nothing here.
/// </summary>
internal static class RemoteCli
{
    /// <summary>The environment variable naming the default server.</summary>
    public const string ServerVariable = "ETPHONEHOME_SERVER";

    /// <summary>Exit code of an operation the operator's role does not allow (EX_NOPERM); the message names the role it needs.</summary>
    public const int Forbidden = 77;

    /// <summary>Exit code when the server could not be reached or the connection failed (EX_UNAVAILABLE).</summary>
    public const int ConnectionFailed = 69;

    /// <summary>The verbs that run through the operator service.</summary>
    public static readonly IReadOnlySet<string> RemoteVerbs = new HashSet<string>(StringComparer.Ordinal)
    {
        "clients", "exec", "upload", "download", "metrics", "status", "history", "keys", "approve", "revoke", "set", "remove",
        "read", "write", "ls", "limits", "webhooks", "webhooks resend",
        "operators list", "operators add", "operators remove", "operators set-role",
        "exchange upload", "exchange download", "exchange list", "exchange delete", "exchange upload-url", "exchange init",
    };

    /// <summary>Verbs that are about the workstation's own profile and handle --server themselves.</summary>
    private static readonly IReadOnlySet<string> ProfileVerbs = new HashSet<string>(StringComparer.Ordinal) { "connect", "connections" };

    public static Option<string?> ServerOption() => new("--server")
    {
        Description = $"Run the verb on this server through its operator service over ssh: [user@]host[:port] or a saved connection's name (default ${ServerVariable}).",
        Recursive = true,
    };

    public static Option<string?> KeyFileOption() => new("--key-file")
    {
        Description = "The ssh private key to log in with (with --server; default: ssh's own).",
        Recursive = true,
    };

    public static Option<string?> FingerprintOption() => new("--host-key-fingerprint")
    {
        Description = "The server's host key fingerprint (SHA256:…) to pin at the first connection (with --server).",
        Recursive = true,
    };

    /// <summary>What names the server for this invocation: --server, else the environment; null runs the verb here.</summary>
    public static string? ServerOf(ParseResult pr, EphRootCommand root)
    {
        var given = pr.GetValue<string?>("--server");
        if (!string.IsNullOrWhiteSpace(given))
        {
            return given.Trim();
        }

        var env = root.Environment(ServerVariable);
        return string.IsNullOrWhiteSpace(env) ? null : env.Trim();
    }

    /// <summary>
    /// Wraps every verb's action under <paramref name="root"/>: with a server named, the verb runs remotely (or refuses);
    /// otherwise its own action runs as before.
    /// </summary>
    public static void Wrap(EphRootCommand root)
    {
        foreach (var command in All(root))
        {
            if (command.Action is not { } original || ProfileVerbs.Contains(command.Name))
            {
                continue;
            }

            command.SetAction(async (ParseResult pr, CancellationToken ct) =>
            {
                if (ServerOf(pr, root) is { } server)
                {
                    return await RunRemoteAsync(pr, root, server, ct).ConfigureAwait(false);
                }

                return original switch
                {
                    System.CommandLine.Invocation.AsynchronousCommandLineAction a => await a.InvokeAsync(pr, ct).ConfigureAwait(false),
                    System.CommandLine.Invocation.SynchronousCommandLineAction s => s.Invoke(pr),
                    _ => throw new InvalidOperationException($"unsupported action on {command.Name}"),
                };
            });
        }
    }

    private static IEnumerable<Command> All(Command command)
    {
        foreach (var sub in command.Subcommands)
        {
            if (sub.Name is "connect" or "connections")
            {
                continue;
            }

            yield return sub;
            foreach (var nested in All(sub))
            {
                yield return nested;
            }
        }
    }

    /// <summary>The verb's full name: <c>exchange upload</c>, <c>clients</c>.</summary>
    private static string VerbPath(ParseResult pr)
    {
        var names = new List<string>();
        for (var r = pr.CommandResult; r is not null && r.Command is not RootCommand; r = r.Parent as System.CommandLine.Parsing.CommandResult)
        {
            names.Insert(0, r.Command.Name);
        }

        return string.Join(' ', names);
    }

    private static async Task<int> RunRemoteAsync(ParseResult pr, EphRootCommand root, string server, CancellationToken ct)
    {
        var output = pr.InvocationConfiguration.Output;
        var error = pr.InvocationConfiguration.Error;
        var verb = VerbPath(pr);
        var remoteVerb = RemoteVerbs.Contains(verb);
        var mcpStdio = verb == "mcp" && string.IsNullOrEmpty(pr.GetValue<string?>("--http"));
        if (!remoteVerb && !mcpStdio)
        {
            await error.WriteLineAsync(
                $"eph-server {verb}: runs on the server host only (it works on the data directory there) and has no remote operation; " +
                "run it on the server, or without --server and $" + ServerVariable + ". Nothing was done.").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        if (pr.GetResult(pr.CommandResult.Command.Options.FirstOrDefault(o => o.Name == "--data") ?? new Option<string?>("--unused")) is { Implicit: false })
        {
            await error.WriteLineAsync($"eph-server {verb}: --data names a directory on the server host; it does not go with --server").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        try
        {
            await using var remote = await root.RemoteConnector(new RemoteRequest(server, pr.GetValue<string?>("--key-file"), pr.GetValue<string?>("--host-key-fingerprint"), mcpStdio ? Surfaces.Mcp : Surfaces.Cli, root.ProfileDirectory),
                root.Prompt, error, ct).ConfigureAwait(false);
            if (mcpStdio)
            {
                return await root.RemoteMcp(remote, pr, ct).ConfigureAwait(false);
            }

            return await RunVerbAsync(verb, pr, remote, output, error, root.Prompt, ct).ConfigureAwait(false);
        }
        catch (OperatorRemoteException ex)
        {
            return await RemoteErrorAsync(verb, ex, error).ConfigureAwait(false);
        }
        catch (RemoteConnectionException ex)
        {
            await error.WriteLineAsync($"eph-server {verb}: {ex.Message}").ConfigureAwait(false);
            return ConnectionFailed;
        }
        catch (Exception ex) when (ex is ConnectionProfileException or FormatException or ArgumentException or IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"eph-server {verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
            return ex is FormatException or ArgumentException ? OperatorVerbs.UsageError : 1;
        }
    }

    /// <summary>The exit code and one line for an error the operator service answered.</summary>
    internal static async Task<int> RemoteErrorAsync(string verb, OperatorRemoteException ex, TextWriter error)
    {
        var message = UntrustedText.ForTerminal(ex.Message);
        switch (ex.Code)
        {
            case OperatorErrorCodes.Forbidden:
                var needs = ex.Error.Needs is { } role ? $" (needs the {UntrustedText.ForTerminal(role, 20)} role)" : "";
                await error.WriteLineAsync($"eph-server {verb}: refused by the server: {message}{(message.Contains("role", StringComparison.Ordinal) ? "" : needs)}; nothing was changed").ConfigureAwait(false);
                return Forbidden;
            case OperatorErrorCodes.NotFound:
            case OperatorErrorCodes.NotConfigured:
                await error.WriteLineAsync($"eph-server {verb}: {message}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            case OperatorErrorCodes.InvalidArgument:
                await error.WriteLineAsync($"eph-server {verb}: {message}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            default:
                await error.WriteLineAsync($"eph-server {verb}: {message}").ConfigureAwait(false);
                return 1;
        }
    }

    private static async Task<int> RunVerbAsync(string verb, ParseResult pr, RemoteServer server, TextWriter output, TextWriter error, OperatorPrompt prompt, CancellationToken ct)
    {
        var json = pr.GetValue<bool>("--json");
        switch (verb)
        {
            case "clients":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var lookup = await remote.SearchAsync(new ClientQuery
                {
                    Names = NonEmpty(pr.GetValue<string[]>("--name")),
                    Query = pr.GetValue<string?>("--query"),
                    Purpose = pr.GetValue<string?>("--purpose"),
                    Tags = NonEmpty(pr.GetValue<string[]>("--tag")),
                    Capabilities = NonEmpty(pr.GetValue<string[]>("--capability")),
                    OnlineOnly = pr.GetValue<bool>("--online"),
                }, ct).ConfigureAwait(false);
                return RegistryVerbs.ClientsOutput(lookup, json, output, error);
            }

            case "exec":
                return await ExecAsync(pr, server, json, output, error, ct).ConfigureAwait(false);

            case { } exchange when exchange.StartsWith("exchange ", StringComparison.Ordinal):
                return await ExchangeVerbs.RunRemoteAsync(pr, await server.GetAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false);

            case "metrics":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var count = -1;
                var results = remote.CollectMetricsAsync(new CollectMetricsArgs
                {
                    Targets = Selection(pr),
                    Summary = pr.GetValue<bool>("--summary"),
                    ThrottleLimit = pr.GetValue<int>("--throttle"),
                    TimeoutSeconds = pr.GetValue<int>("--timeout"),
                }, targets => count = targets.Count, ct);
                var code = await HealthVerbs.MetricsOutputAsync(results, json, output, error).ConfigureAwait(false);
                if (count == 0)
                {
                    await error.WriteLineAsync("eph-server metrics: the selection matches no client").ConfigureAwait(false);
                    return OperatorVerbs.UsageError;
                }

                return code;
            }

            case "status":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var status = await remote.FleetStatusAsync(new FleetStatusArgs
                {
                    Thresholds = new Core.Health.FleetThresholds
                    {
                        CpuPercent = pr.GetValue<double>("--cpu-threshold"),
                        MemoryPercent = pr.GetValue<double>("--memory-threshold"),
                        DiskPercent = pr.GetValue<double>("--disk-threshold"),
                    },
                    ThrottleLimit = pr.GetValue<int>("--throttle"),
                    TimeoutSeconds = pr.GetValue<int>("--timeout"),
                }, ct).ConfigureAwait(false);
                await output.WriteAsync(json ? HealthVerbs.StatusJson(status) + Environment.NewLine : HealthVerbs.StatusText(status)).ConfigureAwait(false);
                return 0;
            }

            case "history":
                return await HistoryAsync(pr, server, json, output, error, ct).ConfigureAwait(false);

            case "keys":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var pending = pr.GetValue<bool>("--pending");
                return OperatorVerbs.KeysOutput(await remote.ListKeysAsync(pending, ct).ConfigureAwait(false), pending, json, output);
            }

            case "approve":
            {
                var id = pr.GetValue<string>("id")!;
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var outcome = await remote.ApproveKeyAsync(id, ct).ConfigureAwait(false);
                await output.WriteLineAsync(KeyAdministration.Describe(outcome, id)).ConfigureAwait(false);
                return 0;
            }

            case "revoke":
            {
                var id = pr.GetValue<string>("id")!;
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var outcome = await remote.RevokeKeyAsync(id, ct).ConfigureAwait(false);
                await output.WriteLineAsync(outcome.AlreadyRevoked
                    ? $"Key {outcome.Fingerprint} was already revoked."
                    : $"Revoked key {outcome.Fingerprint}{(outcome.Uuid is null ? "" : $" (client {outcome.Uuid})")}; " +
                      (outcome.ClosedSessions.Count == 0 ? "it had no open session." : $"closed {outcome.ClosedSessions.Count} session(s).")).ConfigureAwait(false);
                return 0;
            }

            case "set":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var updated = await remote.UpdateClientAsync(pr.GetValue<string>("client")!, new ClientUpdate
                {
                    DisplayName = pr.GetValue<string?>("--display-name"),
                    Purpose = pr.GetValue<string?>("--purpose"),
                    Tags = NonEmpty(pr.GetValue<string[]>("--tag")),
                    AddTags = NonEmpty(pr.GetValue<string[]>("--add-tag")),
                    RemoveTags = NonEmpty(pr.GetValue<string[]>("--remove-tag")),
                    AllowedPaths = NonEmpty(pr.GetValue<string[]>("--allowed-path")),
                    ClearAllowedPaths = pr.GetValue<bool>("--clear-allowed-paths"),
                    WebhookUrl = pr.GetValue<string?>("--webhook-url"),
                    RateLimitRpm = pr.GetValue<int?>("--rate-limit-rpm"),
                    RateLimitConcurrent = pr.GetValue<int?>("--rate-limit-concurrent"),
                }, ct).ConfigureAwait(false);
                return RegistryVerbs.SetOutput(updated, json, output);
            }

            case "remove":
            {
                var client = pr.GetValue<string>("client")!;
                if (!pr.GetValue<bool>("--yes"))
                {
                    if (!prompt.IsInteractive())
                    {
                        await error.WriteLineAsync($"eph-server remove: refusing to remove '{UntrustedText.ForTerminal(client, 100)}' without confirmation; add --yes to remove it (nothing was changed)").ConfigureAwait(false);
                        return OperatorVerbs.UsageError;
                    }

                    await output.WriteAsync($"Remove '{UntrustedText.ForTerminal(client, 100)}' on {server.Address}? Its key is revoked and it is disconnected now; its history stays. [y/N] ").ConfigureAwait(false);
                    await output.FlushAsync(ct).ConfigureAwait(false);
                    if (prompt.ReadAnswer()?.Trim().ToLowerInvariant() is not ("y" or "yes"))
                    {
                        await output.WriteLineAsync("Not removed.").ConfigureAwait(false);
                        return 1;
                    }
                }

                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var outcome = await remote.RemoveClientAsync(client, ct).ConfigureAwait(false);
                var report = new RemoveReport(outcome, []);
                await output.WriteLineAsync(json ? RegistryRows.JsonLine(RemoveRow.From(report)) : ClientAdministration.Describe(report)).ConfigureAwait(false);
                return 0;
            }

            case "upload":
            case "download":
                return await TransferAsync(verb == "upload", pr, server, json, output, error, ct).ConfigureAwait(false);

            case "read":
            case "write":
            case "ls":
                return await FileVerbAsync(verb, pr, server, json, output, error, ct).ConfigureAwait(false);

            case "limits":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var names = pr.GetValue<string[]>("client") ?? [];
                var lookup = await remote.SearchAsync(new ClientQuery { Names = NonEmpty(names) }, ct).ConfigureAwait(false);
                var stats = lookup.Clients.Count == 0 ? [] : await remote.RateLimitStatsAsync([.. lookup.Clients.Select(c => c.Uuid)], ct).ConfigureAwait(false);
                return RateLimitVerbs.LimitsOutput(lookup, stats, json, output, error);
            }

            case "webhooks":
            {
                var request = new WebhookVerbs.ListRequest
                {
                    Status = WebhookVerbs.ParseStatus(pr.GetValue<string?>("--status")),
                    Clients = pr.GetValue<string[]>("--client") ?? [],
                    Events = pr.GetValue<string[]>("--event") ?? [],
                    Limit = pr.GetValue<int>("--limit"),
                    Json = json,
                };
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var clients = request.Clients.Count > 0 ? await remote.SearchAsync(new ClientQuery { Names = request.Clients }, ct).ConfigureAwait(false) : new ClientLookup([], []);
                if (WebhookVerbs.Query(request, clients, error) is not { } query)
                {
                    return OperatorVerbs.UsageError;
                }

                var page = await remote.WebhookDeliveriesAsync(query, ct).ConfigureAwait(false);
                if (request.Clients.Count == 0 && page.Deliveries.Select(d => d.Uuid).OfType<string>().Distinct(StringComparer.Ordinal).ToList() is { Count: > 0 } uuids)
                {
                    // The names of the clients the deliveries concern, not the whole fleet.
                    clients = await remote.SearchAsync(new ClientQuery { Ids = uuids }, ct).ConfigureAwait(false);
                }

                return WebhookVerbs.ListOutput(request, clients, page.Deliveries, page.GlobalUrl, page.HasSecret, output);
            }

            case "webhooks resend":
            {
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                var failures = 0;
                foreach (var id in pr.GetValue<string[]>("id") ?? [])
                {
                    try
                    {
                        await output.WriteLineAsync(WebhookVerbs.ResentText(await remote.ResendWebhookAsync(id, ct).ConfigureAwait(false))).ConfigureAwait(false);
                    }
                    catch (OperatorRemoteException ex) when (ex.Code is OperatorErrorCodes.NotFound or OperatorErrorCodes.Failed)
                    {
                        // As on the server host: an unknown or already queued delivery is reported, the others go on.
                        await error.WriteLineAsync($"eph-server webhooks resend: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
                        failures++;
                    }
                }

                return failures == 0 ? 0 : 1;
            }

            case "operators list":
            {
                var all = pr.GetValue<bool>("--all");
                var remote = await server.GetAsync(ct).ConfigureAwait(false);
                return OperatorsVerbs.ListOutput(await remote.ListOperatorsAsync(all, ct).ConfigureAwait(false), all, json, output);
            }

            case "operators add":
                return await OperatorChangeAsync(verb, error, async () =>
                {
                    var line = pr.GetValue<string?>("--key") ?? OperatorsVerbs.ReadKeyFile(pr.GetValue<string?>(OperatorsVerbs.PublicKeyFileOption)!);
                    var remote = await server.GetAsync(ct).ConfigureAwait(false);
                    var added = await remote.AddOperatorAsync(pr.GetValue<string>("--name")!, line, OperatorRoles.Parse(pr.GetValue<string>("--role")), ct).ConfigureAwait(false);
                    await output.WriteLineAsync(OperatorsVerbs.AddedText(added, json)).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);

            case "operators remove":
                return await OperatorChangeAsync(verb, error, async () =>
                {
                    var remote = await server.GetAsync(ct).ConfigureAwait(false);
                    var target = await FindOperatorAsync(remote, pr.GetValue<string>("name")!, ct).ConfigureAwait(false);
                    if (OperatorsVerbs.ConfirmRemove(target, pr.GetValue<bool>("--yes"), output, error, prompt) is { } refused)
                    {
                        return refused;
                    }

                    await output.WriteLineAsync(OperatorsVerbs.RemovedText(await remote.RemoveOperatorAsync(target.Fingerprint, ct).ConfigureAwait(false), json)).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);

            case "operators set-role":
                return await OperatorChangeAsync(verb, error, async () =>
                {
                    var role = OperatorRoles.Parse(pr.GetValue<string>("role"));
                    var remote = await server.GetAsync(ct).ConfigureAwait(false);
                    var before = await FindOperatorAsync(remote, pr.GetValue<string>("name")!, ct).ConfigureAwait(false);
                    var changed = await remote.SetOperatorRoleAsync(before.Fingerprint, role, ct).ConfigureAwait(false);
                    await output.WriteLineAsync(OperatorsVerbs.RoleSetText(before, changed, json)).ConfigureAwait(false);
                    return 0;
                }).ConfigureAwait(false);

            default:
                throw new InvalidOperationException($"no remote form of {verb}");
        }
    }

    /// <summary>
    /// An operator change through the server, with the local verb's exit codes: a refusal of the registry (no such
    /// operator, the last admin, a taken name) is 1 as on the server host; a role refusal stays the server's.
    /// </summary>
    private static async Task<int> OperatorChangeAsync(string verb, TextWriter error, Func<Task<int>> change)
    {
        try
        {
            return await change().ConfigureAwait(false);
        }
        catch (OperatorRemoteException ex) when (ex.Code is OperatorErrorCodes.NotFound or OperatorErrorCodes.InvalidArgument)
        {
            await error.WriteLineAsync($"eph-server {verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception ex) when (ex is RegistryNotFoundException or InvalidOperationException or IOException)
        {
            await error.WriteLineAsync($"eph-server {verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>The active operator by name (any case) or key fingerprint, as the registry finds it.</summary>
    private static async Task<OperatorRecord> FindOperatorAsync(RemoteOperator remote, string nameOrFingerprint, CancellationToken ct)
    {
        var wanted = nameOrFingerprint.Trim();
        return (await remote.ListOperatorsAsync(false, ct).ConfigureAwait(false))
            .FirstOrDefault(o => string.Equals(o.Name, wanted, StringComparison.OrdinalIgnoreCase) || string.Equals(o.Fingerprint, wanted, StringComparison.Ordinal))
            ?? throw new RegistryNotFoundException($"no active operator named '{UntrustedText.ForTerminal(wanted)}' or with that key fingerprint");
    }

    /// <summary>read, write and ls through the server: the same requests and output as on the server host.</summary>
    private static async Task<int> FileVerbAsync(string verb, ParseResult pr, RemoteServer server, bool json, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        var throttle = pr.GetValue<int>("--throttle");
        var count = -1;
        void Targets(IReadOnlyList<RemoteTarget> targets) => count = targets.Count;
        int code;
        switch (verb)
        {
            case "read":
            {
                var request = FilesVerbs.ReadRequest(pr);
                code = await FilesVerbs.ReadOutputAsync(remote.ReadFilesAsync(Selection(pr), request, throttle, Targets, ct), request.Path, json, output).ConfigureAwait(false);
                break;
            }

            case "write":
            {
                var request = await FilesVerbs.WriteRequestAsync(pr, ct).ConfigureAwait(false);
                code = await FilesVerbs.WriteOutputAsync(remote.WriteFilesAsync(Selection(pr), request, throttle, Targets, ct), request.Path, json, output).ConfigureAwait(false);
                break;
            }

            default:
            {
                var request = FilesVerbs.ListRequest(pr);
                code = await FilesVerbs.ListOutputAsync(remote.ListFilesAsync(Selection(pr), request, throttle, Targets, ct), request.Path, json, output).ConfigureAwait(false);
                break;
            }
        }

        if (count == 0)
        {
            await error.WriteLineAsync($"eph-server {verb}: the selection matches no client; nothing was done").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        return code;
    }

    private static TargetSelection Selection(ParseResult pr) => new()
    {
        All = pr.GetValue<bool>("--all"),
        Clients = pr.GetValue<string[]>("--client") ?? [],
        Tags = pr.GetValue<string[]>("--tag") ?? [],
    };

    private static string[]? NonEmpty(string[]? values) => values is { Length: > 0 } ? values : null;

    private static async Task<int> ExecAsync(ParseResult pr, RemoteServer server, bool json, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var commandArgument = (Argument<string[]>)pr.CommandResult.Command.Arguments.Single(a => a.Name == "command");
        if (OperatorVerbs.UnknownOptionBeforeDoubleDash(pr, commandArgument) is { } unknown)
        {
            await error.WriteLineAsync($"eph-server exec: unknown option '{unknown}'; the remote command goes after --, e.g. eph-server exec --all -- uptime").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        var command = string.Join(' ', pr.GetValue(commandArgument) ?? []);
        if (pr.GetValue<string?>("--command-file") is { } commandPath)
        {
            var text = await OperatorVerbs.ReadTextArgumentAsync(commandPath, ct).ConfigureAwait(false);
            text = text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2] : text.EndsWith('\n') ? text[..^1] : text;
            if (string.IsNullOrWhiteSpace(text))
            {
                await error.WriteLineAsync($"eph-server exec: --command-file {commandPath} holds no command").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            command = text;
        }

        var request = new CommandRequest
        {
            Command = command,
            TimeoutSeconds = pr.GetValue<int>("--timeout"),
            Environment = OperatorVerbs.ParseEnvironment(pr.GetValue<string[]>("--env")),
            Shell = pr.GetValue<string?>("--shell"),
            Stdin = pr.GetValue<string?>("--stdin-file") is { } stdinPath ? await OperatorVerbs.ReadTextArgumentAsync(stdinPath, ct).ConfigureAwait(false) : null,
            WorkingDirectory = pr.GetValue<string?>("--cwd"),
        };
        try
        {
            _ = request.ToParams();
        }
        catch (InvalidCommandRequestException ex)
        {
            await error.WriteLineAsync($"eph-server exec: {ex.Message}; nothing was run").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        var count = -1;
        var results = remote.RunCommandsAsync(new RunCommandsArgs
        {
            Targets = Selection(pr),
            Request = request,
            ThrottleLimit = pr.GetValue<int>("--throttle"),
            MaxErrors = pr.GetValue<string?>("--max-errors"),
        }, targets => count = targets.Count, ct);
        var code = await OperatorVerbs.ExecOutputAsync(results, json, output, error).ConfigureAwait(false);
        if (count == 0)
        {
            await error.WriteLineAsync("eph-server exec: the selection matches no client; nothing was run").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        return code;
    }

    private static async Task<int> HistoryAsync(ParseResult pr, RemoteServer server, bool json, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        var clients = pr.GetValue<string[]>("--client") ?? [];
        IReadOnlyList<string>? uuids = null;
        if (clients.Length > 0)
        {
            var lookup = await remote.SearchAsync(new ClientQuery { Names = clients }, ct).ConfigureAwait(false);
            if (lookup.NotFound.Count > 0)
            {
                await error.WriteLineAsync($"eph-server history: no client named {string.Join(", ", lookup.NotFound.Select(n => $"'{UntrustedText.ForTerminal(n, 100)}'"))}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            uuids = [.. lookup.Clients.Select(c => c.Uuid)];
        }

        var now = DateTimeOffset.UtcNow;
        var operations = pr.GetValue<string[]>("--operation") ?? [];
        var statuses = pr.GetValue<string[]>("--status") ?? [];
        var page = await remote.QueryHistoryAsync(new HistoryQuery
        {
            Uuids = uuids,
            Operations = operations.Length > 0 ? operations : null,
            Statuses = statuses.Length > 0 ? statuses : null,
            Since = pr.GetValue<string?>("--since") is { } s ? ClientHistory.ParseTime(s, now) : null,
            Until = pr.GetValue<string?>("--until") is { } u ? ClientHistory.ParseTime(u, now) : null,
            Take = pr.GetValue<int>("--limit"),
            Skip = pr.GetValue<int>("--skip"),
        }, withTotal: false, ct).ConfigureAwait(false);
        return RegistryVerbs.HistoryOutput(page.Entries, page.DisplayNames, json, output);
    }

    private static async Task<int> TransferAsync(bool upload, ParseResult pr, RemoteServer server, bool json, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var verb = upload ? "upload" : "download";
        var from = pr.GetValue<string>(upload ? "local" : "remote")!;
        var to = pr.GetValue<string>(upload ? "remote" : "local")!;
        if (upload && !File.Exists(from))
        {
            await error.WriteLineAsync($"eph-server upload: the local file '{from}' does not exist").ConfigureAwait(false);
            return 1;
        }

        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        var selection = Selection(pr);
        var lookup = await remote.SearchAsync(selection.All ? new ClientQuery() : new ClientQuery
        {
            Names = selection.Clients.Count > 0 ? [.. selection.Clients] : null,
            Tags = selection.Tags.Count > 0 ? [.. selection.Tags] : null,
        }, ct).ConfigureAwait(false);
        if (lookup.NotFound.Count > 0)
        {
            await error.WriteLineAsync($"eph-server {verb}: {new UnknownClientsException(lookup.NotFound).Message}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        if (lookup.Clients.Count == 0)
        {
            await error.WriteLineAsync($"eph-server {verb}: the selection matches no client; nothing was done").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        // One target at a time: each transfer is one stream of the connection, flow-controlled end to end.
        var failures = 0;
        foreach (var client in lookup.Clients)
        {
            var target = new FleetTarget(client.Uuid, client.DisplayName, null);
            var clock = System.Diagnostics.Stopwatch.StartNew();
            FleetFileOutcome<FileTransferResult> outcome;
            try
            {
                var current = await server.GetAsync(ct).ConfigureAwait(false);
                var local = upload ? from : lookup.Clients.Count > 1 ? Path.Join(to, client.DisplayName) + Path.DirectorySeparatorChar : to;
                var done = upload
                    ? await current.UploadAsync(client.Uuid, from, to, null, ct).ConfigureAwait(false)
                    : await current.DownloadAsync(client.Uuid, from, local, null, ct).ConfigureAwait(false);
                outcome = new FleetFileOutcome<FileTransferResult>(target, CommandStatus.Succeeded, done with { Uuid = client.Uuid, DisplayName = client.DisplayName }, null, clock.ElapsedMilliseconds);
            }
            catch (OperatorRemoteException ex) when (ex.Code is not OperatorErrorCodes.Forbidden)
            {
                outcome = new FleetFileOutcome<FileTransferResult>(target, CommandStatus.Error, null, UntrustedText.ForTerminal(ex.Message), clock.ElapsedMilliseconds);
            }
            catch (Exception ex) when (ex is RpcException or IOException or UnauthorizedAccessException or OperatorConnectionLostException)
            {
                outcome = new FleetFileOutcome<FileTransferResult>(target, CommandStatus.Error, null, UntrustedText.ForTerminal(ex.Message), clock.ElapsedMilliseconds);
            }

            if (outcome.Status != CommandStatus.Succeeded)
            {
                failures++;
            }

            await output.WriteAsync(FilesVerbs.TransferLine(outcome, upload, upload ? to : from, json)).ConfigureAwait(false);
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return failures == 0 ? 0 : 1;
    }

    /// <summary>
    /// The CLI's way to a server: a saved connection's name or an address, the host key pinned in the profile (or
    /// confirmed on the terminal, or given as a fingerprint; never trusted silently), the system ssh.
    /// </summary>
    public static async Task<RemoteServer> ConnectAsync(RemoteRequest request, OperatorPrompt prompt, TextWriter error, CancellationToken ct)
    {
        var address = ResolveAddress(request.Server, request.KeyFile, new SavedConnections(request.ProfileDirectory));
        var key = await new HostKeyPins(request.ProfileDirectory).ResolveAsync(address, request.HostKeyFingerprint, Confirmation(address, prompt, error), ct).ConfigureAwait(false);
        return new RemoteServer(address, key, request.Surface);
    }

    /// <summary>A saved connection's name (when one is saved by that name), else <c>[user@]host[:port]</c>.</summary>
    public static ServerAddress ResolveAddress(string server, string? keyFile, SavedConnections? saved = null)
    {
        if (SavedConnections.IsValidName(server) && (saved ?? new SavedConnections()).Get(server) is { } connection)
        {
            return keyFile is null ? connection.Address : connection.Address with { KeyFile = keyFile };
        }

        return ServerAddress.Parse(server, keyFile);
    }

    /// <summary>On a terminal: show the offered key's fingerprint and ask; otherwise null (no one to ask: refuse).</summary>
    public static Func<HostKey, bool>? Confirmation(ServerAddress address, OperatorPrompt prompt, TextWriter error)
    {
        if (!prompt.IsInteractive())
        {
            return null;
        }

        return key =>
        {
            error.Write($"The server {address.PinKey} offers the host key {key.Type} {key.Fingerprint}. Compare it with the server's " +
                "(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub there). Trust and pin it? [y/N] ");
            error.Flush();
            return prompt.ReadAnswer()?.Trim().ToLowerInvariant() is "y" or "yes";
        };
    }
}

/// <summary>What an invocation asked to connect to.</summary>
internal sealed record RemoteRequest(string Server, string? KeyFile, string? HostKeyFingerprint, string Surface, string ProfileDirectory);
