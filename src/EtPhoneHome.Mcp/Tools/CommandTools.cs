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

    [McpServerTool(Name = "run_command", Title = "Run a command on a client", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true)]
    [Description("Run a shell command on one client and wait for it: returns exit code, stdout and stderr (each cut at the server's output budget, with the full size). Commands run with the agent user's permissions. A non-zero exit is a result, not an error. For commands longer than about a minute use start_command.")]
    public Task<CallToolResult> RunCommand(
        [Description("Shell command line to run (1-10000 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Working directory on the client (absolute path; must be inside the client's allowed paths).")][MaxLength(ToolArguments.MaxPathLength)] string? cwd = null,
        [Description("Timeout in seconds (1-3600, default 300); the command is stopped when it runs longer.")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
        => ToolResults.RunAsync(fleet, "run_command", async () =>
        {
            var request = Validate(cmd, cwd, timeout);
            var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
            return await ExecuteAsync(target, request, cancellationToken).ConfigureAwait(false);
        });

    [McpServerTool(Name = "start_command", Title = "Start a command in the background", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true)]
    [Description("Start a shell command on one client and return at once with a command_id; poll get_command_result for its outcome. Use it for commands that may outlast the MCP client's request timeout. Results are kept by this MCP server for 1 hour after they finish.")]
    public CallToolResult StartCommand(
        [Description("Shell command line to run (1-10000 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Working directory on the client (absolute path; must be inside the client's allowed paths).")][MaxLength(ToolArguments.MaxPathLength)] string? cwd = null,
        [Description("Timeout in seconds (1-3600, default 300); the command is stopped when it runs longer.")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null)
        => ToolResults.Run(fleet, "start_command", () =>
        {
            var request = Validate(cmd, cwd, timeout);
            var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
            var job = fleet.Commands.Start(target.Uuid, target.DisplayName, request.Cmd, async ct => await ExecuteAsync(target, request, ct).ConfigureAwait(false));
            return new
            {
                command_id = job.Id,
                status = "running",
                client = new ClientRef(target.Uuid, target.DisplayName),
                started_at = Views.Time(job.StartedAt),
                message = $"Started on {target.Describe()}; call get_command_result with command_id \"{job.Id}\" (wait_seconds up to {MaxWaitSeconds}) until status is completed",
            };
        });

    [McpServerTool(Name = "get_command_result", Title = "Get a background command's result", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false)]
    [Description("The state of a command started with start_command: running, or completed with the same fields run_command returns. Optionally waits up to wait_seconds for it to finish.")]
    public Task<CallToolResult> GetCommandResult(
        [Description("The command_id start_command returned.")][MaxLength(64)] string command_id,
        [Description("Seconds to wait for a running command to finish before answering (0-30, default 0).")][Range(0, MaxWaitSeconds)] int? wait_seconds = null,
        CancellationToken cancellationToken = default)
        => ToolResults.RunAsync(fleet, "get_command_result", async () =>
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
                return new
                {
                    command_id = job.Id,
                    status = "running",
                    client = new ClientRef(job.Uuid, job.DisplayName),
                    started_at = Views.Time(job.StartedAt),
                    elapsed_ms = (long)(DateTimeOffset.UtcNow - job.StartedAt).TotalMilliseconds,
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

            return new
            {
                command_id = job.Id,
                status = "completed",
                started_at = Views.Time(job.StartedAt),
                finished_at = Views.Time(job.FinishedAt!.Value),
                result = job.Result,
            };
        });

    [McpServerTool(Name = "run_fleet_command", Title = "Run a command on many clients", ReadOnly = false, Destructive = true, Idempotent = false, OpenWorld = true)]
    [Description("Run one shell command on many clients at once (by tags or by a list of clients) and get one compact result per client: status (succeeded, failed, timed_out, offline, denied, rate_limited, error, skipped), exit code, the start of its output, and counts. Offline clients are answered at once; one failure never stops the others.")]
    public Task<CallToolResult> RunFleetCommand(
        [Description("Shell command line to run on every target (1-10000 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxCommandLength)] string cmd,
        [Description("Run on clients that have ALL of these tags. Give tags or client_ids, not both.")] string[]? tags = null,
        [Description("Run on these clients (uuids or display names, * and ? wildcards allowed). Give tags or client_ids, not both. If any name matches no client, nothing runs anywhere and the error lists every unknown name.")] string[]? client_ids = null,
        [Description("Most clients running the command at once (1-1024, default 32).")][Range(ToolArguments.MinThrottle, ToolArguments.MaxThrottle)] int? throttle = null,
        [Description("Per-client timeout in seconds (1-3600, default 300).")][Range(ToolArguments.MinTimeout, ToolArguments.MaxTimeout)] int? timeout = null,
        [Description("Stop launching new clients after this many have not succeeded (1-10000); the rest are reported as skipped. Unlimited when omitted.")][Range(1, ToolArguments.MaxFleetTargets)] int? max_errors = null,
        CancellationToken cancellationToken = default)
        => ToolResults.RunAsync(fleet, "run_fleet_command", async () =>
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
            var summary = new FleetSummary();
            var results = new List<object>(targets.Count);
            await foreach (var r in new FleetExecutor(fleet.Transport).RunAsync(targets, request, options, cancellationToken).ConfigureAwait(false))
            {
                summary.Add(r);
                var stdout = OutputBudget.Apply(r.Stdout, perTarget);
                var stderr = OutputBudget.Apply(r.Stderr, perTarget);
                results.Add(new
                {
                    display_name = Views.Text(r.DisplayName),
                    uuid = r.Uuid,
                    status = OperationNames.Wire(r.Status),
                    failure = r.Failure == FailureKind.None ? null : FailureKinds.Wire(r.Failure),
                    exit_code = r.ExitCode,
                    duration_ms = r.DurationMs,
                    stdout = stdout.Text.Length == 0 ? null : stdout.Text,
                    stderr = stderr.Text.Length == 0 ? null : stderr.Text,
                    truncated = stdout.Truncated || stderr.Truncated || r.Truncated ? true : (bool?)null,
                    error = r.Error,
                });
            }

            return new
            {
                summary = summary.ToString(),
                counts = Enum.GetValues<CommandStatus>().Where(s => summary[s] > 0).ToDictionary(OperationNames.Wire, s => summary[s]),
                all_succeeded = summary.AllSucceeded,
                output_budget_bytes_per_target = perTarget,
                results,
            };
        });

    private static RunCommandParams Validate(string? cmd, string? cwd, int? timeout)
    {
        var line = ToolArguments.Required("cmd", cmd, ToolArguments.MaxCommandLength);
        var seconds = ToolArguments.Range("timeout", timeout, ToolArguments.MinTimeout, ToolArguments.MaxTimeout, ToolArguments.DefaultTimeout);
        var dir = ToolArguments.MaxLength("cwd", string.IsNullOrWhiteSpace(cwd) ? null : cwd, ToolArguments.MaxPathLength);
        if (dir is not null && !(dir.StartsWith('/') || Path.IsPathFullyQualified(dir)))
        {
            throw ToolFailure.Invalid("cwd", $"cwd must be an absolute path (got '{dir}')");
        }

        return new RunCommandParams { Cmd = line, Cwd = dir, TimeoutS = seconds };
    }

    /// <summary>Runs one command through the guarded transport and shapes the answer (or the failure).</summary>
    private async Task<object> ExecuteAsync(FleetTarget target, RunCommandParams request, CancellationToken ct)
    {
        RunCommandResult answer;
        try
        {
            answer = await fleet.Transport.RunAsync(target, request, ct).ConfigureAwait(false);
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
        var view = new
        {
            client = new ClientRef(target.Uuid, target.DisplayName),
            exit_code = answer.TimedOut ? (int?)null : answer.ExitCode,
            stdout = stdout.Text,
            stderr = stderr.Text,
            duration_ms = answer.DurationMs,
            timed_out = answer.TimedOut ? true : (bool?)null,
            stdout_bytes = Math.Max(stdout.TotalBytes, answer.StdoutBytes),
            stderr_bytes = Math.Max(stderr.TotalBytes, answer.StderrBytes),
            stdout_truncated = stdout.Truncated ? true : (bool?)null,
            stderr_truncated = stderr.Truncated ? true : (bool?)null,
            // The agent cuts each stream at its own cap (1 MiB by default) before this server's budget applies.
            agent_truncated = answer.Truncated ? true : (bool?)null,
        };
        if (answer.TimedOut)
        {
            throw new ToolFailure(ToolErrorCodes.Timeout, $"the command ran out of time after {request.TimeoutS} s and was stopped on {target.Describe()}",
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
