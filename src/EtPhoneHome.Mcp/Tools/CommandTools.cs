using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Net.Sockets;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>Running commands on agents: one client, a fleet, or in the background.</summary>
[McpServerToolType]
public sealed class CommandTools(McpFleet fleet, McpSession session)
{
    /// <summary>Longest a get_command_result call waits for a running command.</summary>
    public const int MaxWaitSeconds = 30;

    /// <summary>Budget of a whole run_fleet_command answer; the per-target budget shrinks with the fleet.</summary>
    public const int FleetAnswerBudgetBytes = 64 * 1024;

    [McpServerTool(Name = "run_command", Title = "Run a command on a client", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true, UseStructuredContent = true)]
    [Description("Run a shell command on one client and wait for it: returns exit code, stdout and stderr (each cut at the server's output budget, with the full size). Commands run with the agent user's permissions. A non-zero exit is a result, not an error. For commands longer than about a minute use start_command.")]
    public async Task<CommandOutput> RunCommand(
        [Description("Shell command line to run (1-65536 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Working directory on the client (absolute path; must be inside the client's allowed paths).")][MaxLength(ToolArguments.MaxPathLength)] string? cwd = null,
        [Description("Timeout in seconds (1-3600, default 300); the command is stopped when it runs longer.")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var request = Validate(cmd, cwd, timeout);
        if (fleet.Remote is { } remote)
        {
            var online = RemoteOnly.Online(await RemoteOnly.ResolveAsync(remote, session, client_id, cancellationToken).ConfigureAwait(false));
            return await ExecuteRemoteAsync(remote, online, request, cancellationToken).ConfigureAwait(false);
        }

        var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
        return await ExecuteAsync(target, request, cancellationToken).ConfigureAwait(false);
    }

    [McpServerTool(Name = "start_command", Title = "Start a command in the background", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true, UseStructuredContent = true)]
    [Description("Start a shell command on one client and return at once with a command_id; poll get_command_result for its outcome. Use it for commands that may outlast the MCP client's request timeout. Results are kept by this MCP server for 1 hour after they finish.")]
    public async Task<CommandState> StartCommand(
        [Description("Shell command line to run (1-65536 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Working directory on the client (absolute path; must be inside the client's allowed paths).")][MaxLength(ToolArguments.MaxPathLength)] string? cwd = null,
        [Description("Timeout in seconds (1-3600, default 300); the command is stopped when it runs longer.")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var request = Validate(cmd, cwd, timeout);
        var remote = fleet.Remote;
        var target = remote is not null
            ? RemoteOnly.Online(await RemoteOnly.ResolveAsync(remote, session, client_id, cancellationToken).ConfigureAwait(false))
            : ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
        var job = fleet.Commands.Start(target.Uuid, target.DisplayName, request.Command, async ct => remote is not null
            ? await ExecuteRemoteAsync(remote, target, request, ct).ConfigureAwait(false)
            : await ExecuteAsync(target, request, ct).ConfigureAwait(false));
        return new CommandState(job.Id, "running", new ClientRef(target.Uuid, target.DisplayName), Views.Time(job.StartedAt))
        {
            Message = $"Started on {target.Describe()}; call get_command_result with command_id \"{job.Id}\" (wait_seconds up to {MaxWaitSeconds}) until status is completed",
        };
    }

    [McpServerTool(Name = "get_command_result", Title = "Get a background command's result", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false, UseStructuredContent = true)]
    [Description("The state of a command started with start_command: running, or completed with the same fields run_command returns. Optionally waits up to wait_seconds for it to finish.")]
    public async Task<CommandState> GetCommandResult(
        [Description("The command_id start_command returned.")][MaxLength(64)] string command_id,
        [Description("Seconds to wait for a running command to finish before answering (0-30, default 0).")][Range(0, MaxWaitSeconds)] int? wait_seconds = null,
        CancellationToken cancellationToken = default)
    {
        var id = ToolArguments.Required("command_id", command_id, 64).Trim();
        var wait = ToolArguments.Range("wait_seconds", wait_seconds, 0, MaxWaitSeconds, 0);
        var job = fleet.Commands.Get(id) ?? throw new ToolFailure(ToolErrorCodes.CommandNotFound,
            $"no background command '{id}' on this MCP server (unknown, or its result expired after {fleet.Commands.Retention.TotalMinutes:0} minutes)",
            "Start it again with start_command; results live only in the MCP server process that started them.");
        if (!job.IsFinished && wait > 0)
        {
            await Task.WhenAny(job.Completion, Task.Delay(TimeSpan.FromSeconds(wait), cancellationToken)).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
        }

        if (!job.IsFinished)
        {
            return new CommandState(job.Id, "running", new ClientRef(job.Uuid, job.DisplayName), Views.Time(job.StartedAt))
            {
                ElapsedMs = (long)(DateTimeOffset.UtcNow - job.StartedAt).TotalMilliseconds,
            };
        }

        if (job.Failure is { } failure)
        {
            var details = new Dictionary<string, object?>(failure.Details ?? new Dictionary<string, object?>())
            {
                ["command_id"] = job.Id,
                ["status"] = "failed",
            };
            throw new ToolFailure(failure.Code, failure.Message, failure.Hint, details);
        }

        return new CommandState(job.Id, "completed", null, Views.Time(job.StartedAt))
        {
            FinishedAt = Views.Time(job.FinishedAt!.Value),
            Result = (CommandOutput?)job.Result,
        };
    }

    [McpServerTool(Name = "run_fleet_command", Title = "Run a command on many clients", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true, UseStructuredContent = true)]
    [Description("Run one shell command on many clients at once (by tags or by a list of clients) and get one compact result per client: status (succeeded, failed, timed_out, offline, denied, rate_limited, error, skipped), exit code, the start of its output, and counts. Offline clients are answered at once; one failure never stops the others.")]
    public async Task<FleetAnswer> RunFleetCommand(
        [Description("Shell command line to run on every target (1-65536 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Run on clients that have ALL of these tags. Give tags or client_ids, not both.")] string[]? tags = null,
        [Description("Run on these clients (uuids or display names, * and ? wildcards allowed). Give tags or client_ids, not both. If any name matches no client, nothing runs anywhere and the error lists every unknown name.")] string[]? client_ids = null,
        [Description("Most clients running the command at once (1-1024, default 32).")][Range(ToolArguments.MinThrottle, ToolArguments.MaxThrottle)] int? throttle = null,
        [Description("Per-client timeout in seconds (1-3600, default 300).")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Stop launching new clients after this many have not succeeded (1-10000); the rest are reported as skipped. Unlimited when omitted.")][Range(1, ToolArguments.MaxFleetTargets)] int? max_errors = null,
        CancellationToken cancellationToken = default)
    {
        var request = Validate(cmd, null, timeout);
        var limit = ToolArguments.Range("throttle", throttle, ToolArguments.MinThrottle, ToolArguments.MaxThrottle, FleetOptions.DefaultThrottleLimit);
        int? errors = max_errors is null ? null : ToolArguments.Range("max_errors", max_errors, 1, ToolArguments.MaxFleetTargets, 1);
        var hasTags = tags is { Length: > 0 };
        var hasClients = client_ids is { Length: > 0 };
        if (hasTags == hasClients)
        {
            throw ToolFailure.Invalid("tags", "give exactly one of tags or client_ids");
        }

        if (fleet.Remote is { } server)
        {
            return await RunFleetRemoteAsync(server, request, tags, client_ids, hasTags, limit, errors, cancellationToken).ConfigureAwait(false);
        }

        IReadOnlyList<FleetTarget> targets;
        try
        {
            targets = FleetTargets.ResolveOrRefuse(fleet.Registry, new TargetSelection
            {
                Tags = hasTags ? tags! : [],
                Clients = hasClients ? client_ids!.Select(c => c.Trim()).ToList() : [],
            });
        }
        catch (UnknownClientsException ex)
        {
            throw new ToolFailure(ToolErrorCodes.ClientNotFound, ex.Message,
                "Fix client_ids (see available_clients, list_clients or find_client) and call again.",
                new Dictionary<string, object?> { ["not_found"] = ex.Names, ["available_clients"] = ClientResolver.Suggestions(fleet.Registry.Clients) });
        }

        if (targets.Count == 0)
        {
            throw ToolFailure.Invalid(hasTags ? "tags" : "client_ids", "the selection matches no client; nothing was run");
        }

        if (targets.Count > ToolArguments.MaxFleetTargets)
        {
            throw ToolFailure.Invalid(hasTags ? "tags" : "client_ids", $"the selection matches {targets.Count} clients; at most {ToolArguments.MaxFleetTargets} per call");
        }

        var perTarget = Math.Clamp(FleetAnswerBudgetBytes / targets.Count / 2, 128, fleet.Settings.MaxFleetOutputBytesPerTarget);
        var options = new FleetOptions { ThrottleLimit = limit, MaxErrors = errors is { } e ? ErrorLimit.Count(e) : null };
        return await FleetAnswerAsync(fleet.Services.RunCommandsAsync(targets, request, options, cancellationToken), targets.Count, perTarget).ConfigureAwait(false);
    }

    /// <summary>run_fleet_command through the server's operator service: the same selection rules and answer.</summary>
    private async Task<FleetAnswer> RunFleetRemoteAsync(Core.Remote.RemoteServer server, CommandRequest request, string[]? tags, string[]? clientIds, bool hasTags,
        int limit, int? errors, CancellationToken cancellationToken)
    {
        var selection = new TargetSelection
        {
            Tags = hasTags ? tags! : [],
            Clients = hasTags ? [] : clientIds!.Select(c => c.Trim()).ToList(),
        };
        var remote = await server.GetAsync(cancellationToken).ConfigureAwait(false);
        // The targets, first, size the per-target budget; the count rule is checked before the command is sent.
        var found = await remote.SearchAsync(hasTags ? new ClientQuery { Tags = tags } : new ClientQuery { Names = [.. selection.Clients] }, cancellationToken).ConfigureAwait(false);
        if (found.NotFound.Count > 0)
        {
            throw new ToolFailure(ToolErrorCodes.ClientNotFound, new UnknownClientsException(found.NotFound).Message,
                "Fix client_ids (see list_clients or find_client) and call again.",
                new Dictionary<string, object?> { ["not_found"] = found.NotFound });
        }

        var count = found.Clients.Count;
        if (count == 0)
        {
            throw ToolFailure.Invalid(hasTags ? "tags" : "client_ids", "the selection matches no client; nothing was run");
        }

        if (count > ToolArguments.MaxFleetTargets)
        {
            throw ToolFailure.Invalid(hasTags ? "tags" : "client_ids", $"the selection matches {count} clients; at most {ToolArguments.MaxFleetTargets} per call");
        }

        var perTarget = Math.Clamp(FleetAnswerBudgetBytes / count / 2, 128, fleet.Settings.MaxFleetOutputBytesPerTarget);
        var results = remote.RunCommandsAsync(new Core.Remote.RunCommandsArgs
        {
            Targets = selection,
            Request = request,
            ThrottleLimit = limit,
            MaxErrors = errors?.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }, null, cancellationToken);
        return await FleetAnswerAsync(results, count, perTarget).ConfigureAwait(false);
    }

    private static async Task<FleetAnswer> FleetAnswerAsync(IAsyncEnumerable<FleetCommandResult> stream, int count, int perTarget)
    {
        var summary = new FleetSummary();
        var results = new List<FleetTargetAnswer>(count);
        await foreach (var r in stream.ConfigureAwait(false))
        {
            summary.Add(r);
            var stdout = OutputBudget.Apply(r.Stdout, perTarget);
            var stderr = OutputBudget.Apply(r.Stderr, perTarget);
            results.Add(new FleetTargetAnswer(
                Views.Text(r.DisplayName),
                r.Uuid,
                OperationNames.Wire(r.Status),
                r.Failure == FailureKind.None ? null : FailureKinds.Wire(r.Failure),
                r.ExitCode,
                r.DurationMs,
                stdout.Text.Length == 0 ? null : stdout.Text,
                stderr.Text.Length == 0 ? null : stderr.Text,
                stdout.Truncated || stderr.Truncated || r.Truncated ? true : null,
                r.Error));
        }

        return new FleetAnswer(
            summary.ToString(),
            Enum.GetValues<CommandStatus>().Where(s => summary[s] > 0).ToDictionary(OperationNames.Wire, s => summary[s]),
            summary.AllSucceeded,
            perTarget,
            results);
    }

    /// <summary>
    /// run_command through the server: a fan-out of one, its result shaped as <see cref="ExecuteAsync"/> shapes a
    /// local answer (a non-zero exit is a result; offline, timed out, unreachable are the same errors).
    /// </summary>
    private async Task<CommandOutput> ExecuteRemoteAsync(Core.Remote.RemoteServer server, FleetTarget target, CommandRequest request, CancellationToken ct)
    {
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        FleetCommandResult? result = null;
        await foreach (var r in remote.RunCommandsAsync(new Core.Remote.RunCommandsArgs
        {
            Targets = new TargetSelection { Clients = [target.Uuid] },
            Request = request,
            ThrottleLimit = 1,
        }, null, ct).ConfigureAwait(false))
        {
            result ??= r;
        }

        if (result is null)
        {
            throw new ToolFailure(ToolErrorCodes.ClientNotFound, $"{target.Describe()} is no longer registered on the server", "Call list_clients and pick another client.");
        }

        var stdout = OutputBudget.Apply(result.Stdout, fleet.Settings.MaxOutputBytes);
        var stderr = OutputBudget.Apply(result.Stderr, fleet.Settings.MaxOutputBytes);
        var timedOut = result.Status == CommandStatus.TimedOut;
        var view = new CommandOutput(
            new ClientRef(result.Uuid, result.DisplayName),
            timedOut ? null : result.ExitCode,
            stdout.Text,
            stderr.Text,
            result.DurationMs,
            timedOut ? true : null,
            stdout.TotalBytes,
            stderr.TotalBytes,
            stdout.Truncated ? true : null,
            stderr.Truncated ? true : null,
            result.Truncated ? true : null);
        var error = result.Error ?? result.Status.ToString();
        return result.Status switch
        {
            CommandStatus.Succeeded or CommandStatus.Failed => view,
            CommandStatus.TimedOut => throw new ToolFailure(ToolErrorCodes.Timeout, $"the command ran out of time after {request.TimeoutSeconds} s and was stopped on {target.Describe()}",
                "Raise timeout (up to 3600) or use start_command and poll get_command_result.", new Dictionary<string, object?> { ["partial"] = view }),
            CommandStatus.Offline => throw new ToolFailure(ToolErrorCodes.ClientOffline, $"{target.Describe()} is offline: {error}",
                "Wait for it to reconnect, or pick an online client (find_client with online_only: true)."),
            CommandStatus.Denied => throw new ToolFailure(result.Failure == FailureKind.Denied ? ToolErrorCodes.PathDenied : ToolErrorCodes.KeyMismatch, $"{target.Describe()}: {error}",
                "Check the client's allowed paths and key (describe_client, list_pending_keys)."),
            CommandStatus.RateLimited => throw new ToolFailure(ToolErrorCodes.RateLimited, $"{target.Describe()}: {error}", "Wait a minute or raise the limit with configure_client."),
            _ => throw result.Failure switch
            {
                FailureKind.Invalid or FailureKind.NotFound => new ToolFailure(ToolErrorCodes.InvalidArgument, $"{target.Describe()}: {error}", "Check cmd and cwd."),
                _ => new ToolFailure(ToolErrorCodes.ClientUnreachable, $"{target.Describe()}: {error}",
                    "The client (or the connection to the server) may be reconnecting; check list_clients and try again in a few seconds."),
            },
        };
    }

    /// <summary>Core's one command rule (<see cref="CommandRequest"/>), its refusals named by this tool's parameter names.</summary>
    private static CommandRequest Validate(string? cmd, string? cwd, int? timeout)
    {
        var request = new CommandRequest
        {
            Command = cmd ?? "",
            WorkingDirectory = cwd,
            TimeoutSeconds = timeout ?? CommandLimits.DefaultTimeoutSeconds,
        };
        try
        {
            _ = request.ToParams();
            return request;
        }
        catch (InvalidCommandRequestException ex)
        {
            throw ToolFailure.Invalid(ex.Field == "command" ? "cmd" : ex.Field, ex.Message);
        }
    }

    /// <summary>Runs one command through the guarded transport and shapes the answer (or the failure).</summary>
    private async Task<CommandOutput> ExecuteAsync(FleetTarget target, CommandRequest request, CancellationToken ct)
    {
        RunCommandResult answer;
        try
        {
            answer = await fleet.Services.RunCommandAsync(target, request, ct).ConfigureAwait(false);
        }
        catch (RpcException rpc)
        {
            throw rpc.Code switch
            {
                RpcErrorCodes.PathDenied => new ToolFailure(ToolErrorCodes.PathDenied, rpc.Message, "Use a cwd inside the client's allowed paths (describe_client shows them)."),
                RpcErrorCodes.RateLimited => new ToolFailure(ToolErrorCodes.RateLimited, rpc.Message, "Wait a minute or raise the limit with configure_client."),
                RpcErrorCodes.Busy => new ToolFailure(ToolErrorCodes.RateLimited, rpc.Message, "The agent is at its concurrency limit; try again shortly."),
                RpcErrorCodes.Timeout => new ToolFailure(ToolErrorCodes.Timeout, rpc.Message, "Raise timeout (up to 3600) or use start_command."),
                RpcErrorCodes.InvalidParams or RpcErrorCodes.NotFound => new ToolFailure(ToolErrorCodes.InvalidArgument, rpc.Message, "Check cmd and cwd."),
                _ => Unreachable(target, rpc),
            };
        }
        catch (TimeoutException)
        {
            throw new ToolFailure(ToolErrorCodes.Timeout, $"{target.Describe()} gave no answer within the command timeout (plus grace)",
                "Check that the client is still online; for long commands use start_command with a larger timeout.");
        }
        catch (Exception ex) when (ex is ProtocolException or SocketException or IOException)
        {
            throw Unreachable(target, ex);
        }

        var stdout = OutputBudget.Apply(answer.Stdout, fleet.Settings.MaxOutputBytes);
        var stderr = OutputBudget.Apply(answer.Stderr, fleet.Settings.MaxOutputBytes);
        var view = new CommandOutput(
            new ClientRef(target.Uuid, target.DisplayName),
            answer.TimedOut ? null : answer.ExitCode,
            stdout.Text,
            stderr.Text,
            answer.DurationMs,
            answer.TimedOut ? true : null,
            Math.Max(stdout.TotalBytes, answer.StdoutBytes),
            Math.Max(stderr.TotalBytes, answer.StderrBytes),
            stdout.Truncated ? true : null,
            stderr.Truncated ? true : null,
            // The agent cuts each stream at its own cap (1 MiB by default) before this server's budget applies.
            answer.Truncated ? true : null);
        if (answer.TimedOut)
        {
            throw new ToolFailure(ToolErrorCodes.Timeout, $"the command ran out of time after {request.TimeoutSeconds} s and was stopped on {target.Describe()}",
                "Raise timeout (up to 3600) or use start_command and poll get_command_result.",
                new Dictionary<string, object?> { ["partial"] = view });
        }

        return view;
    }

    private ToolFailure Unreachable(FleetTarget target, Exception ex)
    {
        fleet.Logger.LogWarning("{Target}: tunnel request failed: {Message}", target.Describe(), ex.Message);
        return new ToolFailure(ToolErrorCodes.ClientUnreachable, $"{target.Describe()} could not be reached through its tunnel",
            "The client may be reconnecting; check list_clients and try again in a few seconds.");
    }
}

/// <summary>
/// run_command (and a finished background command's <c>result</c>): exit code and both streams, each cut at the output
/// budget with its full size.
/// </summary>
public sealed record CommandOutput(
    ClientRef Client,
    int? ExitCode,
    string Stdout,
    string Stderr,
    long DurationMs,
    bool? TimedOut,
    long StdoutBytes,
    long StderrBytes,
    bool? StdoutTruncated,
    bool? StderrTruncated,
    bool? AgentTruncated);

/// <summary>start_command and get_command_result: a background command, running or completed.</summary>
public sealed record CommandState(string CommandId, string Status, ClientRef? Client, string StartedAt)
{
    public string? FinishedAt { get; init; }

    public long? ElapsedMs { get; init; }

    /// <summary>When completed: what run_command would have answered.</summary>
    public CommandOutput? Result { get; init; }

    public string? Message { get; init; }
}

/// <summary>run_fleet_command: the counts by status and one compact answer per target.</summary>
public sealed record FleetAnswer(
    string Summary, IReadOnlyDictionary<string, int> Counts, bool AllSucceeded, int OutputBudgetBytesPerTarget, IReadOnlyList<FleetTargetAnswer> Results);

/// <summary>One target of run_fleet_command; <c>failure</c> says why a target was not reached.</summary>
public sealed record FleetTargetAnswer(
    string DisplayName, string Uuid, string Status, string? Failure, int? ExitCode, long DurationMs, string? Stdout, string? Stderr, bool? Truncated, string? Error);
