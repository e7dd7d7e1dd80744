using System.Diagnostics;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Who is acting and through which surface (recorded in the history).</summary>
public sealed record OperatorContext(string Actor, string Surface)
{
    /// <summary>The current OS user acting through <paramref name="surface"/>.</summary>
    public static OperatorContext ForSurface(string surface) => new(Environment.UserName, surface);
}

/// <summary>Names of the surfaces, as they appear in the history.</summary>
public static class Surfaces
{
    public const string PowerShell = "pwsh";
    public const string Mcp = "mcp";
    public const string Cli = "cli";
    public const string Hub = "hub";
}

/// <summary>
/// The single path every operator request to an agent goes through, whatever the surface: it opens a
/// lease before the request (the place for rate limits) and records the outcome in the history (and the
/// events that go with it) when the lease completes.
/// </summary>
public sealed class OperationGuard(IFleetRegistry registry, OperatorContext context)
{
    /// <summary>Longest detail kept in the history (commands can be long).</summary>
    public const int MaxDetailLength = 500;

    public OperatorContext Context { get; } = context;

    public IFleetRegistry Registry { get; } = registry;

    /// <summary>Starts an operation on a client (null: a server-side operation such as an exchange listing). Dispose the lease; complete it with the outcome first.</summary>
    public OperationLease Begin(string? uuid, string operation, string? detail = null)
        => new(this, uuid, operation, Truncate(detail));

    internal static string? Truncate(string? text)
        => text is null || text.Length <= MaxDetailLength ? text : string.Concat(text.AsSpan(0, MaxDetailLength), "…");
}

/// <summary>One operation in flight. Disposing without <see cref="Complete"/> records it as an error.</summary>
public sealed class OperationLease : IDisposable
{
    private readonly OperationGuard _guard;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private bool _completed;

    internal OperationLease(OperationGuard guard, string? uuid, string operation, string? detail)
    {
        _guard = guard;
        Uuid = uuid;
        Operation = operation;
        Detail = detail;
    }

    public string? Uuid { get; }
    public string Operation { get; }
    public string? Detail { get; }

    /// <summary>Records the outcome (status such as succeeded, failed, timed_out, denied, error).</summary>
    public void Complete(string status, string? outcome = null)
    {
        if (_completed)
        {
            return;
        }

        _completed = true;
        var detail = outcome is null ? Detail : Detail is null ? outcome : $"{Detail} → {outcome}";
        _guard.Registry.RecordAudit(new AuditEntry
        {
            Operation = Operation,
            Uuid = Uuid,
            Actor = _guard.Context.Actor,
            Surface = _guard.Context.Surface,
            Status = status,
            Detail = OperationGuard.Truncate(detail),
            DurationMs = _clock.ElapsedMilliseconds,
        });
    }

    public void Dispose() => Complete("error", "abandoned");
}
