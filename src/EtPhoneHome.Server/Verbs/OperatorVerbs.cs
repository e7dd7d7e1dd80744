using EtPhoneHome.Core.Services;
using System.CommandLine;
using System.CommandLine.Parsing;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Operator verbs: keys, approve, revoke, purge-keys, exec (clients, set, remove, history: RegistryVerbs).</summary>
internal static class OperatorVerbs
{
    /// <summary>The source of the verbs' own log entries.</summary>
    internal const string LogSource = "eph-server";

    /// <summary>Exit code for a bad invocation (unknown client, nothing selected).</summary>
    public const int UsageError = 2;

    /// <summary>
    /// The operator services of this invocation, from the composition root of the command tree it was parsed by
    /// (<c>Program.BuildRoot</c>): the CLI's by default, a test's own when it built the tree with its parts.
    /// </summary>
    internal static OperatorServices Services(ParseResult pr, string? data) =>
        (pr.RootCommandResult.Command as EphRootCommand ?? throw new InvalidOperationException("the verbs run under Program.BuildRoot"))
            .Services(DataDirectory.Resolve(data), CliLog.ForVerb(pr.InvocationConfiguration.Error));

    /// <summary>
    /// The CLI's services: the data directory's existing registry, the OS user on surface cli, warnings to
    /// <paramref name="log"/> (the invocation's stderr).
    /// </summary>
    public static OperatorServices CliServices(DataDirectory dir, IEphLog log)
    {
        var registry = OpenExistingRegistry(dir, log);
        return new(registry, OperatorContext.ForSurface(Surfaces.Cli), log) { Routing = HubRouting.ForFrontEnd(registry) };
    }

    /// <summary>
    /// Opens the registry of an initialised data directory. Only <c>init</c> creates one: a mistyped --data must not
    /// answer "No clients." from a new, empty registry. A data directory whose registry is PostgreSQL (registry.conf,
    /// --registry, $ETPHONEHOME_REGISTRY) has no SQLite file; the hub opens that database, and so do the verbs.
    /// </summary>
    public static RegistryStores OpenExistingRegistry(DataDirectory dir, IEphLog log)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(log);
        if (!RegistrySource.Resolve(dir, EphConfiguration.Registry).IsPostgres && !File.Exists(dir.RegistryFile))
        {
            throw new InvalidOperationException(
                $"no registry in {dir.Path} (is --data or ${DataDirectory.EnvironmentVariable} right?); eph-server init --data {dir.Path} creates one");
        }

        var registry = EphConfiguration.OpenRegistry(dir);
        if (RegistryFaults.LowSpaceWarning(dir.Path) is { } warning)
        {
            log.Warning(LogSource, warning);
        }

        return registry;
    }

    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(KeysCommand());
        root.Subcommands.Add(KeyDecisionCommand("approve", "Approve a pending or mismatched key (by fingerprint or client uuid); the agent comes online within seconds.", approve: true));
        root.Subcommands.Add(KeyDecisionCommand("revoke", "Revoke a key (by fingerprint or client uuid) and disconnect its client now.", approve: false));
        root.Subcommands.Add(PurgeKeysCommand());
        root.Subcommands.Add(ExecCommand());
    }

    // Private option instances: the hub verbs have their own, and one option object cannot sit on two commands' lists safely.
    private static Option<string?> DataOption() => new("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "One JSON object per line (snake_case fields) instead of a table." };

    /// <summary>The OS user acting through eph-server, as the history records it.</summary>
    internal static OperatorContext Operator => OperatorContext.ForSurface(Surfaces.Cli);

    private static Command KeysCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var pending = new Option<bool>("--pending") { Description = "Only keys waiting for approval." };
        var cmd = new Command("keys", "List client keys: pending, approved and revoked.") { data, pending, json };
        cmd.SetAction((ParseResult pr) => RunWithRegistry(pr, pr.GetValue(data), registry =>
            Keys(registry.Keys, pr.GetValue(pending), pr.GetValue(json), pr.InvocationConfiguration.Output)));
        return cmd;
    }

    private static Command KeyDecisionCommand(string name, string description, bool approve)
    {
        var data = DataOption();
        var id = new Argument<string>("id") { Description = "Key fingerprint (SHA256:…) or client uuid." };
        var cmd = new Command(name, description) { data, id };
        cmd.SetAction((ParseResult pr) => RunWithRegistry(pr, pr.GetValue(data), registry => approve
            ? Approve(registry.Keys, pr.GetValue(id)!, pr.InvocationConfiguration.Output)
            : Revoke(registry.Keys, pr.GetValue(id)!, pr.InvocationConfiguration.Output)));
        return cmd;
    }

    private static Command PurgeKeysCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var olderThan = new Option<string>("--older-than")
        {
            Description = "Pending keys unseen for longer than this age go: 90m, 12h, 7d (default 7d; 0s means every pending key).",
            DefaultValueFactory = _ => "7d",
        };
        var yes = new Option<bool>("--yes", "-y") { Description = "Purge them; without it the keys that would go are only listed (nothing changes)." };
        olderThan.Validators.Add(r =>
        {
            try
            {
                KeyLimits.ParseAge(r.GetValueOrDefault<string>() ?? "");
            }
            catch (FormatException ex)
            {
                r.AddError($"--older-than: {ex.Message}");
            }
        });
        var cmd = new Command("purge-keys",
            "Purge pending keys whose agent has not been seen for longer than --older-than (approved and revoked keys stay); without --yes, list what would go.")
        {
            data, olderThan, yes, json,
        };
        cmd.SetAction((ParseResult pr) => RunWithRegistry(pr, pr.GetValue(data), registry =>
            PurgeKeys(registry.Keys, KeyLimits.ParseAge(pr.GetValue(olderThan)!), pr.GetValue(yes), pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error)));
        return cmd;
    }

    private static Command ExecCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var all = new Option<bool>("--all") { Description = "Every registered client." };
        var client = new Option<string[]>("--client") { Description = "A client uuid or display name (wildcards * and ?); repeat for more. Any name that matches no client refuses the whole run.", AllowMultipleArgumentsPerToken = false };
        var tag = new Option<string[]>("--tag") { Description = "Clients carrying this tag (repeat: all must match).", AllowMultipleArgumentsPerToken = false };
        var throttle = new Option<int>("--throttle") { Description = $"Most clients running at once ({FleetOptions.MinThrottleLimit}–{FleetOptions.MaxThrottleLimit}).", DefaultValueFactory = _ => FleetOptions.DefaultThrottleLimit };
        var timeout = new Option<int>("--timeout") { Description = $"Per-client command timeout in seconds ({CommandLimits.MinTimeoutSeconds}–{CommandLimits.MaxTimeoutSeconds}).", DefaultValueFactory = _ => CommandLimits.DefaultTimeoutSeconds };
        var maxErrors = new Option<string?>("--max-errors") { Description = "Stop launching after this many errors (a count, or a percentage like 10%); the rest are Skipped." };
        var command = new Argument<string[]>("command") { Description = "The command line to run, after -- (or give it with --command-file).", Arity = ArgumentArity.ZeroOrMore };
        var commandFile = new Option<string?>("--command-file")
        {
            Description = "Read the command line from this file, or from standard input with '-', instead of after --: "
                + "a command given as arguments is visible to every local user in the process list while it runs.",
        };
        var env = new Option<string[]>("--env") { Description = "An environment variable NAME=VALUE for the command (repeat for more).", AllowMultipleArgumentsPerToken = false };
        var shell = new Option<string?>("--shell") { Description = $"The shell that runs the command: {string.Join(", ", CommandShells.All)} (default sh on Unix, cmd on Windows)." };
        var stdinFile = new Option<string?>("--stdin-file") { Description = "A local file whose text is fed to the command's standard input." };
        var cwd = new Option<string?>("--cwd") { Description = "Working directory on the client (absolute; checked against the client's allowed paths)." };
        shell.AcceptOnlyFromAmong([.. CommandShells.All]);
        env.Validators.Add(r =>
        {
            foreach (var item in r.GetValueOrDefault<string[]>() ?? [])
            {
                if (item.IndexOf('=', StringComparison.Ordinal) <= 0)
                {
                    r.AddError($"--env expects NAME=VALUE, got '{item}'");
                }
            }
        });
        throttle.Validators.Add(r => Range(r, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit));
        timeout.Validators.Add(r => Range(r, CommandLimits.MinTimeoutSeconds, CommandLimits.MaxTimeoutSeconds));
        maxErrors.Validators.Add(r =>
        {
            if (r.GetValueOrDefault<string?>() is { } text)
            {
                try
                {
                    ErrorLimit.Parse(text);
                }
                catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException)
                {
                    r.AddError(ex.Message.Split(Environment.NewLine)[0]);
                }
            }
        });

        var cmd = new Command("exec", "Run a command on many clients at once; one result per client, printed as each finishes.")
        {
            data, all, client, tag, throttle, timeout, maxErrors, env, shell, stdinFile, commandFile, cwd, json, command,
        };
        cmd.Validators.Add(r =>
        {
            var modes = (r.GetValue(all) ? 1 : 0) + ((r.GetValue(client)?.Length ?? 0) > 0 ? 1 : 0) + ((r.GetValue(tag)?.Length ?? 0) > 0 ? 1 : 0);
            if (modes != 1)
            {
                r.AddError("choose the targets with exactly one of --all, --client or --tag");
            }

            var words = r.GetValue(command)?.Length ?? 0;
            if ((words > 0) == (r.GetValue(commandFile) is not null))
            {
                r.AddError("give the command either after -- or with --command-file, not both and not neither");
            }

            if (r.GetValue(commandFile) == "-" && r.GetValue(stdinFile) == "-")
            {
                r.AddError("--command-file - and --stdin-file - cannot both read standard input");
            }
        });
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            if (UnknownOptionBeforeDoubleDash(pr, command) is { } unknown)
            {
                // `exec --all --tiemout 5 uptime` must not run "--tiemout 5 uptime" on the fleet.
                await pr.InvocationConfiguration.Error.WriteLineAsync(
                    $"eph-server exec: unknown option '{unknown}'; the remote command goes after --, e.g. eph-server exec --all -- uptime").ConfigureAwait(false);
                return UsageError;
            }

            var request = new ExecRequest
            {
                Selection = new TargetSelection
                {
                    All = pr.GetValue(all),
                    Clients = pr.GetValue(client) ?? [],
                    Tags = pr.GetValue(tag) ?? [],
                },
                Command = string.Join(' ', pr.GetValue(command) ?? []),
                ThrottleLimit = pr.GetValue(throttle),
                TimeoutSeconds = pr.GetValue(timeout),
                MaxErrors = pr.GetValue(maxErrors) is { } m ? ErrorLimit.Parse(m) : null,
                Json = pr.GetValue(json),
                Environment = ParseEnvironment(pr.GetValue(env)),
                Shell = pr.GetValue(shell),
                WorkingDirectory = pr.GetValue(cwd),
            };
            var output = pr.InvocationConfiguration.Output;
            var error = pr.InvocationConfiguration.Error;
            try
            {
                if (pr.GetValue(commandFile) is { } commandPath)
                {
                    var text = await ReadTextArgumentAsync(commandPath, ct).ConfigureAwait(false);
                    // One trailing newline (an editor's, a here-string's) is not part of the command.
                    text = text.EndsWith("\r\n", StringComparison.Ordinal) ? text[..^2] : text.EndsWith('\n') ? text[..^1] : text;
                    if (string.IsNullOrWhiteSpace(text))
                    {
                        await error.WriteLineAsync($"eph-server exec: --command-file {commandPath} holds no command").ConfigureAwait(false);
                        return UsageError;
                    }

                    request = request with { Command = text };
                }

                if (pr.GetValue(stdinFile) is { } stdinPath)
                {
                    request = request with { Stdin = await ReadTextArgumentAsync(stdinPath, ct).ConfigureAwait(false) };
                }

                using var services = Services(pr, pr.GetValue(data));
                return await ExecAsync(services, request, output, error, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is InvalidOperationException or RegistryNotFoundException or IOException or UnauthorizedAccessException)
            {
                await error.WriteLineAsync($"eph-server exec: {ex.Message}").ConfigureAwait(false);
                return 1;
            }
        });
        return cmd;
    }

    /// <summary>The text of a file argument; <c>-</c> reads the verb's standard input.</summary>
    internal static async Task<string> ReadTextArgumentAsync(string path, CancellationToken ct)
    {
        if (path == "-")
        {
            return await Console.In.ReadToEndAsync(ct).ConfigureAwait(false);
        }

        return await File.ReadAllTextAsync(path, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The first word of the remote command that looks like an option of exec itself and came before "--" (a mistyped
    /// option ends up there); null when there is none.
    /// </summary>
    internal static string? UnknownOptionBeforeDoubleDash(ParseResult pr, Argument<string[]> command)
    {
        var doubleDash = -1;
        for (var i = 0; i < pr.Tokens.Count; i++)
        {
            if (pr.Tokens[i].Type == TokenType.DoubleDash)
            {
                doubleDash = i;
                break;
            }
        }

        var commandTokens = pr.GetResult(command)?.Tokens ?? [];
        for (var i = 0; i < pr.Tokens.Count && (doubleDash < 0 || i < doubleDash); i++)
        {
            var token = pr.Tokens[i];
            if (token.Value.StartsWith('-') && commandTokens.Contains(token))
            {
                return token.Value;
            }
        }

        return null;
    }

    /// <summary>NAME=VALUE pairs (validated by the option) as a dictionary; the last value of a repeated name wins.</summary>
    internal static Dictionary<string, string>? ParseEnvironment(string[]? items)
    {
        if (items is null || items.Length == 0)
        {
            return null;
        }

        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var item in items)
        {
            var cut = item.IndexOf('=', StringComparison.Ordinal);
            result[item[..cut]] = item[(cut + 1)..];
        }

        return result;
    }

    /// <summary>The validator every int option of the verbs uses: a value outside min..max names the option and the range.</summary>
    internal static void Range(OptionResult result, int min, int max)
    {
        if (!TryGetInt(result, out var value))
        {
            return;
        }

        if (value < min || value > max)
        {
            result.AddError($"{result.Option.Name} must be between {min} and {max}, got {value}");
        }
    }

    /// <summary>
    /// The option's value, false when it did not convert (a number too large for an int, "abc"): the parser reports that
    /// error itself, and a validator must not turn it into a crash.
    /// </summary>
    internal static bool TryGetInt(OptionResult result, out int value)
    {
        try
        {
            value = result.GetValueOrDefault<int>();
            return true;
        }
        catch (InvalidOperationException)
        {
            value = 0;
            return false;
        }
    }

    internal static int RunWithRegistry(ParseResult pr, string? data, Func<RegistryStores, int> verb)
    {
        var error = pr.InvocationConfiguration.Error;
        var name = VerbName(pr);
        try
        {
            using var services = Services(pr, data);
            return verb(services.Registry);
        }
        catch (RegistryNotFoundException ex)
        {
            error.WriteLine($"eph-server {name}: {ex.Message}");
            return 1;
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or ArgumentException)
        {
            error.WriteLine($"eph-server {name}: {ex.Message}");
            return 1;
        }
    }

    /// <summary>The verb as typed: its group too for a verb of a group (<c>operators add</c>).</summary>
    internal static string VerbName(ParseResult pr) =>
        pr.CommandResult.Parent is CommandResult { Command: var group } && group is not RootCommand
            ? group.Name + " " + pr.CommandResult.Command.Name
            : pr.CommandResult.Command.Name;

    // ----- verb bodies (tested directly) -----

    internal static int Keys(IKeyStore keyStore, bool pendingOnly, bool json, TextWriter output)
        => KeysOutput(keyStore.ListKeys(pendingOnly ? KeyStatus.Pending : null), pendingOnly, json, output);

    /// <summary>Prints keys as <c>keys</c> does (a table, or JSON lines), from this host's registry or a server's.</summary>
    internal static int KeysOutput(IEnumerable<KeyRecord> records, bool pendingOnly, bool json, TextWriter output)
    {
        var keys = records.OrderBy(k => k.Status).ThenBy(k => k.FirstSeen).Select(KeyRow.From).ToList();
        if (json)
        {
            keys.ForEach(k => output.WriteLine(OperatorRows.JsonLine(k)));
            return 0;
        }

        if (keys.Count == 0)
        {
            output.WriteLine(pendingOnly ? "No pending keys." : "No keys.");
            return 0;
        }

        output.Write(OperatorRows.Table(
            ["FINGERPRINT", "STATUS", "HOSTNAME", "PLATFORM", "UUID", "FIRST SEEN"],
            keys.Select(k => new[] { k.Fingerprint, k.KeyMismatch ? k.Status + " (mismatch)" : k.Status, k.ClaimedHostname, k.ClaimedPlatform, k.Uuid, k.FirstSeen }),
            maxCell: 60));
        return 0;
    }

    /// <summary>
    /// purge-keys: with <paramref name="yes"/> purges the pending keys unseen for longer than <paramref name="olderThan"/>,
    /// otherwise lists them (a dry run). Table or JSON lines on stdout; the summary on stdout (stderr with --json).
    /// </summary>
    internal static int PurgeKeys(IKeyStore keyStore, TimeSpan olderThan, bool yes, bool json, TextWriter output, TextWriter error)
    {
        var keys = yes ? KeyLimits.PurgePendingKeys(keyStore, olderThan, Operator) : KeyLimits.ExpiredPendingKeys(keyStore, olderThan);
        var rows = keys.Select(k => (Row: KeyRow.From(k), LastSeen: OperatorRows.Time(k.LastSeen))).ToList();
        if (json)
        {
            rows.ForEach(r => output.WriteLine(OperatorRows.JsonLine(r.Row)));
            error.WriteLine(KeyLimits.Describe(keys, olderThan, dryRun: !yes));
            return 0;
        }

        if (rows.Count > 0)
        {
            output.Write(OperatorRows.Table(
                ["FINGERPRINT", "STATUS", "HOSTNAME", "PLATFORM", "CLAIMS", "LAST SEEN"],
                rows.Select(r => new[] { r.Row.Fingerprint, r.Row.KeyMismatch ? r.Row.Status + " (mismatch)" : r.Row.Status, r.Row.ClaimedHostname, r.Row.ClaimedPlatform, r.Row.Uuid, r.LastSeen }),
                maxCell: 60));
        }

        output.WriteLine(KeyLimits.Describe(keys, olderThan, dryRun: !yes));
        return 0;
    }

    internal static int Approve(IKeyStore keys, string id, TextWriter output)
    {
        var outcome = KeyAdministration.Approve(keys, id, Operator);
        output.WriteLine(KeyAdministration.Describe(outcome, id));
        return 0;
    }

    internal static int Revoke(IKeyStore keys, string id, TextWriter output, Func<int, bool>? terminate = null)
    {
        var report = KeyAdministration.Revoke(keys, id, Operator, terminate);
        var outcome = report.Outcome;
        if (outcome.AlreadyRevoked)
        {
            output.WriteLine($"Key {outcome.Fingerprint} was already revoked.");
            return 0;
        }

        var sessions = outcome.ClosedSessions.Count;
        output.WriteLine($"Revoked key {outcome.Fingerprint}{(outcome.Uuid is null ? "" : $" (client {outcome.Uuid})")}; " +
            (sessions == 0 ? "it had no open session." : $"closed {sessions} session(s), disconnected {report.SignalledGatePids.Count}."));
        return 0;
    }

    internal sealed record ExecRequest
    {
        public required TargetSelection Selection { get; init; }
        public required string Command { get; init; }
        public int ThrottleLimit { get; init; } = FleetOptions.DefaultThrottleLimit;
        public int TimeoutSeconds { get; init; } = CommandLimits.DefaultTimeoutSeconds;
        public ErrorLimit? MaxErrors { get; init; }
        public bool Json { get; init; }
        public Dictionary<string, string>? Environment { get; init; }
        public string? Shell { get; init; }
        public string? Stdin { get; init; }
        public string? WorkingDirectory { get; init; }
    }

    /// <summary>Runs exec; returns 0 when every target succeeded, 1 when any did not, 2 for an unknown client.</summary>
    internal static async Task<int> ExecAsync(OperatorServices services, ExecRequest request, TextWriter output, TextWriter error, CancellationToken ct)
    {
        var command = new CommandRequest
        {
            Command = request.Command,
            TimeoutSeconds = request.TimeoutSeconds,
            Environment = request.Environment,
            Shell = request.Shell,
            Stdin = request.Stdin,
            WorkingDirectory = request.WorkingDirectory,
        };
        try
        {
            _ = command.ToParams();
        }
        catch (InvalidCommandRequestException ex)
        {
            await error.WriteLineAsync($"eph-server exec: {ex.Message}; nothing was run").ConfigureAwait(false);
            return UsageError;
        }

        IReadOnlyList<FleetTarget> targets;
        try
        {
            targets = services.Targets(request.Selection);
        }
        catch (UnknownClientsException ex)
        {
            await error.WriteLineAsync($"eph-server exec: {ex.Message}").ConfigureAwait(false);
            return UsageError;
        }

        if (targets.Count == 0)
        {
            await error.WriteLineAsync("eph-server exec: the selection matches no client; nothing was run").ConfigureAwait(false);
            return UsageError;
        }

        var options = new FleetOptions { ThrottleLimit = request.ThrottleLimit, MaxErrors = request.MaxErrors };
        return await ExecOutputAsync(services.RunCommandsAsync(targets, command, options, ct), request.Json, output, error).ConfigureAwait(false);
    }

    /// <summary>
    /// Prints each result as it arrives (a text block, or a JSON line), then the summary; 0 when every target
    /// succeeded, 1 when any did not. The same for a fan-out run here and one run through a server's operator service.
    /// </summary>
    internal static async Task<int> ExecOutputAsync(IAsyncEnumerable<FleetCommandResult> results, bool json, TextWriter output, TextWriter error)
    {
        var summary = new FleetSummary();
        await foreach (var result in results.ConfigureAwait(false))
        {
            summary.Add(result);
            await output.WriteAsync(json ? OperatorRows.JsonLine(ExecRow.From(result)) + Environment.NewLine : TextBlock(result)).ConfigureAwait(false);
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        await (json ? error : output).WriteLineAsync(summary.ToString()).ConfigureAwait(false);
        return summary.AllSucceeded ? 0 : 1;
    }

    /// <summary>A readable block per target: a header line, stdout, then stderr when there is any.</summary>
    internal static string TextBlock(FleetCommandResult result)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("=== ").Append(ClientText.Describe(result.DisplayName, result.Uuid)).Append(": ").Append(result.Status);
        if (result.ExitCode is { } exit && result.Status != CommandStatus.Succeeded)
        {
            sb.Append(" (exit ").Append(exit).Append(')');
        }

        sb.Append(" in ").Append(result.DurationMs).Append(" ms");
        if (result.Truncated)
        {
            sb.Append(", output truncated");
        }

        sb.AppendLine();
        if (result.Error is { } message)
        {
            sb.Append("error: ").AppendLine(UntrustedText.ForTerminal(message));
        }

        // The output is the client's: shown, never interpreted (an ESC sequence could retitle, recolour or write the
        // operator's clipboard); --json carries the exact text.
        var stdout = UntrustedText.ForTerminalBlock(result.Stdout);
        var stderr = UntrustedText.ForTerminalBlock(result.Stderr);
        if (stdout.Length > 0)
        {
            sb.Append(stdout);
            if (!stdout.EndsWith('\n'))
            {
                sb.AppendLine();
            }
        }

        if (stderr.Length > 0)
        {
            sb.AppendLine("--- stderr");
            sb.Append(stderr);
            if (!stderr.EndsWith('\n'))
            {
                sb.AppendLine();
            }
        }

        return sb.ToString();
    }
}
