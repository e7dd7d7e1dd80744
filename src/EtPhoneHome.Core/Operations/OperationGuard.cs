using System.Diagnostics;
using System.Text.Json.Nodes;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Who is acting and through which surface (recorded in the history).</summary>
public sealed record OperatorContext(string Actor, string Surface)
{
    /// <summary>The acting operator's role (reader, operator, admin) when an operator key acts; null for local operators.</summary>
    public string? Role { get; init; }

    /// <summary>Where the acting operator connected from (the SSH peer address) when known; null for local operators.</summary>
    public string? Source { get; init; }

    /// <summary>The current OS user acting through <paramref name="surface"/>.</summary>
    public static OperatorContext ForSurface(string surface) => new(Environment.UserName, surface);
}

/// <summary>
/// The single path every operator request to an agent goes through, whatever the surface: it opens a
/// lease before the request — counting it against the client's rate limits in the registry, shared by every
/// process — and records the outcome in the history (and the events that go with it: command_executed,
/// file_accessed) in one transaction when the lease completes.
/// </summary>
public sealed class OperationGuard(IRateLimitLedger ledger, OperatorContext context)
{
    /// <summary>Longest detail kept in the history (commands can be long).</summary>
    public const int MaxDetailLength = AuditEntry.MaxDetailLength;

    public OperatorContext Context { get; } = context;

    /// <summary>The shared rate-limit counters, which also write each completed operation's history entry and event.</summary>
    public IRateLimitLedger Ledger { get; } = ledger;

    /// <summary>Default limits and the mode fallback (the registry's <c>rate_limit_mode</c> setting wins).</summary>
    public RateLimitPolicy RateLimits { get; init; } = new();

    /// <summary>The source the guard's log entries name.</summary>
    public const string LogSource = "guard";

    /// <summary>
    /// Where rate-limit warnings go (warn mode). Core never writes to the console: each surface supplies its log
    /// (the cmdlets' warning stream, the CLI's stderr, the MCP server's log); without one they are dropped.
    /// </summary>
    public IEphLog Log { get; init; } = NullLog.Instance;

    /// <summary>
    /// Starts an operation on a client (null: a server-side operation such as an exchange listing, which no
    /// client's rate limit counts). Dispose the lease; complete it with the outcome first.
    /// Throws <see cref="RateLimitExceededException"/> when an enforced limit refuses it (the refusal is in the history).
    /// </summary>
    public OperationLease Begin(string? uuid, string operation, string? detail = null)
    {
        var (truncated, refusal) = Prepare(uuid, operation, detail);
        return refusal is null
            ? new(this, null, operation, truncated, inflightId: 0)
            : Admit(uuid!, operation, truncated, Ledger.BeginRequest(uuid!, RateLimits, refusal));
    }

    /// <summary>
    /// <see cref="Begin"/> without blocking a thread while the registry records it: the operations of a fan-out that
    /// start together share the registry's transactions (<see cref="IRateLimitLedger.BeginRequestAsync"/>). Complete the
    /// lease with <see cref="OperationLease.CompleteAsync"/>.
    /// </summary>
    public async Task<OperationLease> BeginAsync(string? uuid, string operation, string? detail = null)
    {
        var (truncated, refusal) = Prepare(uuid, operation, detail);
        return refusal is null
            ? new(this, null, operation, truncated, inflightId: 0)
            : Admit(uuid!, operation, truncated, await Ledger.BeginRequestAsync(uuid!, RateLimits, refusal).ConfigureAwait(false));
    }

    /// <summary>Checks the request; the history entry that records a refusal, or null for a server-side operation.</summary>
    private (string? Detail, AuditEntry? Refusal) Prepare(string? uuid, string operation, string? detail)
    {
        ArgumentException.ThrowIfNullOrEmpty(operation);
        if (OperationNames.ParseOperation(operation) != operation)
        {
            throw new ArgumentException($"'{operation}' is not an operation of the history (OperationNames)", nameof(operation));
        }

        var truncated = Truncate(detail);
        if (uuid is null)
        {
            return (truncated, null);
        }

        ArgumentException.ThrowIfNullOrEmpty(uuid);
        return (truncated, new AuditEntry
        {
            Operation = operation,
            Uuid = uuid,
            Actor = Context.Actor,
            Surface = Context.Surface,
            Role = Context.Role,
            Source = Context.Source,
            Status = OperationNames.Wire(OperationStatus.RateLimited),
            Detail = truncated,
            DurationMs = 0,
        });
    }

    private OperationLease Admit(string uuid, string operation, string? truncated, RateLimitAdmission admission)
    {
        if (!admission.Allowed)
        {
            throw new RateLimitExceededException(uuid, operation, admission);
        }

        if (admission.OverRpm || admission.OverConcurrent)
        {
            Log.Warning(LogSource, RateLimitExceededException.Describe(uuid, operation, admission) + " (warn mode: the request runs)");
        }

        return new(this, uuid, operation, truncated, admission.InflightId);
    }

    internal static string? Truncate(string? text) => AuditEntry.Truncate(text);

    /// <summary>The event an operation emits: command_executed for commands, file_accessed for file and exchange operations.</summary>
    internal static string? EventFor(string operation) =>
        operation switch
        {
            OperationNames.RunCommand => WebhookEvents.CommandExecuted,
            OperationNames.ReadFile or OperationNames.WriteFile or OperationNames.ListFiles or OperationNames.UploadFile or OperationNames.DownloadFile
                or OperationNames.ExchangeUpload or OperationNames.ExchangeDownload or OperationNames.ExchangeList or OperationNames.ExchangeDelete
                or OperationNames.ExchangeInit => WebhookEvents.FileAccessed,
            _ => null,
        };
}

/// <summary>One operation in flight. Disposing without <see cref="Complete"/> records it as an error.</summary>
public sealed class OperationLease : IDisposable
{
    private readonly OperationGuard _guard;
    private readonly long _inflightId;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private bool _completed;

    internal OperationLease(OperationGuard guard, string? uuid, string operation, string? detail, long inflightId)
    {
        _guard = guard;
        Uuid = uuid;
        Operation = operation;
        Detail = detail;
        _inflightId = inflightId;
    }

    /// <summary>The client, or null for a server-side operation.</summary>
    public string? Uuid { get; }
    public string Operation { get; }
    public string? Detail { get; }

    /// <summary>
    /// Records the outcome (written in the wire spelling: succeeded, failed, timed_out, denied, error…), releases the rate-limit
    /// slot and writes the operation's event, all in one registry transaction.
    /// </summary>
    public void Complete(OperationStatus outcomeStatus, string? outcome = null, int? exitCode = null)
    {
        if (Outcome(outcomeStatus, outcome, exitCode) is var (entry, eventType, data))
        {
            _guard.Ledger.CompleteRequest(_inflightId, entry, eventType, data);
        }
    }

    /// <summary>
    /// <see cref="Complete"/> without blocking a thread: the operations of a fan-out that end together share the
    /// registry's transactions. Completes once the outcome is written.
    /// </summary>
    public Task CompleteAsync(OperationStatus outcomeStatus, string? outcome = null, int? exitCode = null) =>
        Outcome(outcomeStatus, outcome, exitCode) is var (entry, eventType, data)
            ? _guard.Ledger.CompleteRequestAsync(_inflightId, entry, eventType, data)
            : Task.CompletedTask;

    /// <summary>The history entry and event of the outcome, once; null when the lease was already completed.</summary>
    private (AuditEntry Entry, string? EventType, JsonObject? Data)? Outcome(OperationStatus outcomeStatus, string? outcome, int? exitCode)
    {
        if (_completed)
        {
            return null;
        }

        _completed = true;
        var status = OperationNames.Wire(outcomeStatus);
        var duration = _clock.ElapsedMilliseconds;
        var detail = outcome is null ? Detail : Detail is null ? outcome : $"{Detail} → {outcome}";
        var eventType = OperationGuard.EventFor(Operation);
        JsonObject? data = null;
        if (eventType == WebhookEvents.CommandExecuted)
        {
            data = new JsonObject
            {
                ["cmd"] = Detail,
                ["status"] = status,
                ["exit_code"] = exitCode,
                ["duration_ms"] = duration,
                ["actor"] = _guard.Context.Actor,
                ["surface"] = _guard.Context.Surface,
            };
        }
        else if (eventType is not null)
        {
            data = new JsonObject
            {
                ["operation"] = Operation,
                ["path"] = Detail,
                ["status"] = status,
                ["outcome"] = outcome,
                ["duration_ms"] = duration,
                ["actor"] = _guard.Context.Actor,
                ["surface"] = _guard.Context.Surface,
            };
        }

        return (new AuditEntry
        {
            Operation = Operation,
            Uuid = Uuid,
            Actor = _guard.Context.Actor,
            Surface = _guard.Context.Surface,
            Role = _guard.Context.Role,
            Source = _guard.Context.Source,
            Status = status,
            Detail = OperationGuard.Truncate(detail),
            DurationMs = duration,
        }, eventType, data);
    }

    public void Dispose() => Complete(OperationStatus.Error, "abandoned");
}

/// <summary>Completing a lease that may be absent (an operation run without a guard).</summary>
public static class OperationLeaseExtensions
{
    /// <summary><see cref="OperationLease.CompleteAsync"/> when there is a lease; nothing otherwise.</summary>
    public static Task RecordAsync(this OperationLease? lease, OperationStatus outcomeStatus, string? outcome = null, int? exitCode = null) =>
        lease?.CompleteAsync(outcomeStatus, outcome, exitCode) ?? Task.CompletedTask;
}
