using System.Collections.Concurrent;
using System.Security.Cryptography;

namespace EtPhoneHome.Mcp;

/// <summary>A background command of <c>start_command</c>.</summary>
public sealed class CommandJob
{
    internal CommandJob(string id, string uuid, string displayName, string command, DateTimeOffset startedAt)
    {
        Id = id;
        Uuid = uuid;
        DisplayName = displayName;
        Command = command;
        StartedAt = startedAt;
    }

    public string Id { get; }
    public string Uuid { get; }
    public string DisplayName { get; }
    public string Command { get; }
    public DateTimeOffset StartedAt { get; }
    public DateTimeOffset? FinishedAt { get; private set; }

    /// <summary>The tool answer once finished (what run_command would have returned).</summary>
    public object? Result { get; private set; }

    /// <summary>The failure once finished, when the command could not be run to an answer.</summary>
    public ToolFailure? Failure { get; private set; }

    public bool IsFinished => FinishedAt is not null;

    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes when the command has finished (never faults).</summary>
    public Task Completion => _done.Task;

    internal void Finish(object? result, ToolFailure? failure, DateTimeOffset at)
    {
        Result = result;
        Failure = failure;
        FinishedAt = at;
        _done.TrySetResult();
    }
}

/// <summary>
/// Background commands, so a command can outlive an MCP client's request timeout (often about 60 s):
/// <c>start_command</c> returns an id at once, <c>get_command_result</c> polls it. Results are kept in
/// memory by this server process for <c>retention</c> after they finish (default 1 h), at most
/// <c>capacity</c> commands at once (default 256); a restart of the MCP server forgets them.
/// </summary>
public sealed class CommandJobStore(TimeSpan retention, int capacity, TimeProvider time) : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, CommandJob> _jobs = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Task> _running = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly object _admission = new();

    public TimeSpan Retention { get; } = retention;

    public int Capacity { get; } = capacity;

    /// <summary>
    /// Starts <paramref name="run"/> in the background. Its result (or <see cref="ToolFailure"/>) is kept.
    /// Throws BUSY when <see cref="Capacity"/> commands are running or kept and none can be dropped.
    /// </summary>
    public CommandJob Start(string uuid, string displayName, string command, Func<CancellationToken, Task<object>> run)
    {
        ArgumentNullException.ThrowIfNull(run);
        CommandJob job;
        lock (_admission)
        {
            Sweep();
            if (_jobs.Count >= Capacity)
            {
                // Make room by forgetting the oldest finished results first.
                foreach (var old in _jobs.Values.Where(j => j.IsFinished).OrderBy(j => j.FinishedAt).Take(_jobs.Count - Capacity + 1))
                {
                    _jobs.TryRemove(old.Id, out _);
                }
            }

            if (_jobs.Count >= Capacity)
            {
                throw new ToolFailure(ToolErrorCodes.Busy, $"{Capacity} background commands are already running on this MCP server",
                    "Wait for some to finish (get_command_result) before starting more.");
            }

            job = new CommandJob("cmd_" + Convert.ToHexString(RandomNumberGenerator.GetBytes(8)).ToLowerInvariant(), uuid, displayName, command, time.GetUtcNow());
            _jobs[job.Id] = job;
        }

        _running[job.Id] = Task.Run(async () =>
        {
            try
            {
                var result = await run(_stopping.Token).ConfigureAwait(false);
                job.Finish(result, null, time.GetUtcNow());
            }
            catch (ToolFailure failure)
            {
                job.Finish(null, failure, time.GetUtcNow());
            }
            catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
            {
                job.Finish(null, new ToolFailure(ToolErrorCodes.Internal, "the MCP server stopped before the command finished", "Run the command again."), time.GetUtcNow());
            }
            catch (Exception)
            {
                // The runner classifies every fault it knows; anything else is reported without its text.
                job.Finish(null, new ToolFailure(ToolErrorCodes.Internal, "the command failed unexpectedly", "See the MCP server's log (stderr)."), time.GetUtcNow());
                throw;
            }
            finally
            {
                _running.TryRemove(job.Id, out _);
            }
        });
        return job;
    }

    /// <summary>The job with <paramref name="id"/>, or null when unknown or expired.</summary>
    public CommandJob? Get(string id)
    {
        Sweep();
        return _jobs.TryGetValue(id, out var job) ? job : null;
    }

    /// <summary>Commands kept now (running and finished).</summary>
    public int Count => _jobs.Count;

    private void Sweep()
    {
        var cutoff = time.GetUtcNow() - Retention;
        foreach (var job in _jobs.Values)
        {
            if (job.FinishedAt is { } at && at < cutoff)
            {
                _jobs.TryRemove(job.Id, out _);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync().ConfigureAwait(false);
        try
        {
            await Task.WhenAll(_running.Values).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (Exception)
        {
            // Stopping: the jobs' own handlers recorded what happened.
        }

        _stopping.Dispose();
    }
}
