using System.Net.Sockets;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>The result of one target of a fan-out. Every target gets exactly one.</summary>
public sealed record FleetCommandResult
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required CommandStatus Status { get; init; }
    /// <summary>Exit code when the command ran to an exit; null when it never ran or was cut.</summary>
    public int? ExitCode { get; init; }
    public string Stdout { get; init; } = "";
    public string Stderr { get; init; } = "";
    /// <summary>Wall-clock time from launch to result, as the operator saw it.</summary>
    public long DurationMs { get; init; }
    public bool Truncated { get; init; }
    /// <summary>Short reason for every status other than Succeeded and Failed.</summary>
    public string? Error { get; init; }
    /// <summary>Why the target did not succeed, decided from the fault's code or type (None when it ran).</summary>
    public FailureKind Failure { get; init; }

    /// <summary>Longest error text kept; agents and sockets can produce long messages.</summary>
    public const int MaxErrorLength = 300;

    /// <summary>Classifies an agent's answer: timed out, non-zero exit (Failed) or success.</summary>
    public static FleetCommandResult FromAnswer(FleetTarget target, RunCommandResult answer, long durationMs)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(answer);
        var status = answer.TimedOut ? CommandStatus.TimedOut
            : answer.ExitCode != 0 ? CommandStatus.Failed
            : CommandStatus.Succeeded;
        return new FleetCommandResult
        {
            Uuid = target.Uuid,
            DisplayName = target.DisplayName,
            Status = status,
            ExitCode = answer.TimedOut ? null : answer.ExitCode,
            Stdout = answer.Stdout,
            Stderr = answer.Stderr,
            DurationMs = durationMs,
            Truncated = answer.Truncated,
            Error = answer.TimedOut ? "the command ran out of time and was stopped" : null,
            Failure = answer.TimedOut ? FailureKind.TimedOut : FailureKind.None,
        };
    }

    /// <summary>Classifies a fault: RPC error codes, transport timeouts, tunnel and protocol faults.</summary>
    public static FleetCommandResult FromException(FleetTarget target, Exception exception, long durationMs)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentNullException.ThrowIfNull(exception);
        var (status, message) = exception switch
        {
            RpcException { Code: RpcErrorCodes.PathDenied } rpc => (CommandStatus.Denied, $"PATH_DENIED: {rpc.Message}"),
            RpcException { Code: RpcErrorCodes.RateLimited } rpc => (CommandStatus.RateLimited, $"RATE_LIMITED: {rpc.Message}"),
            RateLimitExceededException limited => (CommandStatus.RateLimited, $"RATE_LIMITED: {limited.Message}"),
            RpcException { Code: RpcErrorCodes.Timeout } rpc => (CommandStatus.TimedOut, $"TIMEOUT: {rpc.Message}"),
            RpcException rpc => (CommandStatus.Error, $"{rpc.CodeName}: {rpc.Message}"),
            TimeoutException timeout => (CommandStatus.TimedOut, timeout.Message),
            ProtocolException protocol => (CommandStatus.Error, $"tunnel: {protocol.Message}"),
            SocketException socket => (CommandStatus.Error, $"tunnel unreachable: {socket.Message}"),
            IOException io => (CommandStatus.Error, $"tunnel closed: {io.Message}"),
            OperationCanceledException => (CommandStatus.Error, "cancelled"),
            _ => (CommandStatus.Error, exception.Message),
        };
        return Unstarted(target, status, message) with { DurationMs = durationMs, Failure = FailureKinds.Of(exception) };
    }

    /// <summary>A result for a target that was never contacted (Offline, Denied, Skipped).</summary>
    public static FleetCommandResult Unstarted(FleetTarget target, CommandStatus status, string message)
    {
        ArgumentNullException.ThrowIfNull(target);
        return new FleetCommandResult
        {
            Uuid = target.Uuid,
            DisplayName = target.DisplayName,
            Status = status,
            Error = Shorten(message),
            Failure = FailureKinds.Of(status),
        };
    }

    private static string Shorten(string message)
    {
        var firstLine = message.Split('\n', 2)[0].TrimEnd('\r');
        return firstLine.Length <= MaxErrorLength ? firstLine : firstLine[..(MaxErrorLength - 1)] + "…";
    }
}

/// <summary>When a fan-out stops launching new targets: after a number or a percentage of errors.</summary>
public readonly record struct ErrorLimit
{
    private ErrorLimit(int value, bool isPercent)
    {
        Value = value;
        IsPercent = isPercent;
    }

    public int Value { get; }
    public bool IsPercent { get; }

    /// <summary>Stop after <paramref name="count"/> errors (at least 1).</summary>
    public static ErrorLimit Count(int count) =>
        count >= 1 ? new ErrorLimit(count, false) : throw new ArgumentOutOfRangeException(nameof(count), count, "the error limit must be at least 1");

    /// <summary>Stop once errors reach <paramref name="percent"/> % of all targets (1–100).</summary>
    public static ErrorLimit Percent(int percent) =>
        percent is >= 1 and <= 100 ? new ErrorLimit(percent, true) : throw new ArgumentOutOfRangeException(nameof(percent), percent, "the error percentage must be 1–100");

    /// <summary>Parses "5" or "10%".</summary>
    public static ErrorLimit Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var trimmed = text.Trim();
        var percent = trimmed.EndsWith('%');
        var number = percent ? trimmed[..^1] : trimmed;
        if (!int.TryParse(number, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var value))
        {
            throw new FormatException($"'{text}' is not an error limit; use a count such as 5 or a percentage such as 10%");
        }

        return percent ? Percent(value) : Count(value);
    }

    /// <summary>The number of errors at which launching stops, for a fan-out of <paramref name="total"/> targets.</summary>
    public int Threshold(int total) => IsPercent ? Math.Max(1, (int)Math.Ceiling(total * Value / 100.0)) : Value;

    public override string ToString() => IsPercent ? $"{Value}%" : Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}

/// <summary>How a fan-out runs.</summary>
public sealed record FleetOptions
{
    /// <summary>Targets contacted at once unless the caller says otherwise, on every surface and in every fan-out.</summary>
    public const int DefaultThrottleLimit = 32;

    /// <summary>The smallest throttle limit any surface accepts.</summary>
    public const int MinThrottleLimit = 1;

    /// <summary>The largest throttle limit any surface accepts (each target in flight holds a tunnel connection).</summary>
    public const int MaxThrottleLimit = 1024;

    /// <summary>Most targets contacted at once (≥ 1).</summary>
    public int ThrottleLimit { get; init; } = DefaultThrottleLimit;

    /// <summary>
    /// Longest wait for one target, tunnel included; null leaves it to the transport (the command's own
    /// timeout plus a grace period). Exceeding it gives <see cref="CommandStatus.TimedOut"/>.
    /// </summary>
    public TimeSpan? PerTargetTimeout { get; init; }

    /// <summary>
    /// Stop launching new targets once this many results are errors (every status except Succeeded and
    /// Skipped counts, Offline and Denied included); the rest are reported as Skipped. Null = never stop.
    /// </summary>
    public ErrorLimit? MaxErrors { get; init; }
}

/// <summary>Counts of a fan-out's results by status.</summary>
public sealed class FleetSummary
{
    private readonly int[] _counts = new int[Enum.GetValues<CommandStatus>().Length];

    public int Total { get; private set; }

    public int this[CommandStatus status] => _counts[(int)status];

    /// <summary>Results that are not Succeeded.</summary>
    public int NotSucceeded => Total - this[CommandStatus.Succeeded];

    public bool AllSucceeded => NotSucceeded == 0;

    public void Add(FleetCommandResult result)
    {
        ArgumentNullException.ThrowIfNull(result);
        _counts[(int)result.Status]++;
        Total++;
    }

    public static FleetSummary Of(IEnumerable<FleetCommandResult> results)
    {
        ArgumentNullException.ThrowIfNull(results);
        var summary = new FleetSummary();
        foreach (var result in results)
        {
            summary.Add(result);
        }

        return summary;
    }

    /// <summary>"5 targets: 3 succeeded, 1 failed, 1 offline" (statuses with a zero count are left out).</summary>
    public override string ToString()
    {
        var parts = Enum.GetValues<CommandStatus>()
            .Where(s => this[s] > 0)
            .Select(s => $"{this[s]} {StatusWord(s)}");
        var noun = Total == 1 ? "target" : "targets";
        return Total == 0 ? "0 targets" : $"{Total} {noun}: {string.Join(", ", parts)}";
    }

    private static string StatusWord(CommandStatus status) => status switch
    {
        CommandStatus.TimedOut => "timed out",
        CommandStatus.RateLimited => "rate limited",
        CommandStatus.Error => "error",
        _ => status.ToString().ToLowerInvariant(),
    };
}
