using System.Diagnostics;
using System.Runtime.CompilerServices;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Health;

/// <summary>Outcome of asking one client for its metrics.</summary>
public enum MetricsStatus
{
    /// <summary>The client answered.</summary>
    Succeeded,
    /// <summary>No online session; nothing was sent.</summary>
    Offline,
    /// <summary>Not contacted: its key is revoked or mismatched.</summary>
    Denied,
    /// <summary>No answer within the timeout.</summary>
    TimedOut,
    /// <summary>The tunnel could not be reached or broke (or the agent answered with an error).</summary>
    Unreachable,
    /// <summary>Cancelled before an answer came.</summary>
    Cancelled,
}

/// <summary>One client's metrics, or why there are none. Every target of a fan-out gets exactly one.</summary>
public sealed record ClientMetricsResult
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required MetricsStatus Status { get; init; }
    public MetricsResult? Metrics { get; init; }
    public string? Error { get; init; }
    public long DurationMs { get; init; }

    internal static ClientMetricsResult Unanswered(FleetTarget target, MetricsStatus status, string error, long durationMs = 0) => new()
    {
        Uuid = target.Uuid,
        DisplayName = target.DisplayName,
        Status = status,
        Error = error,
        DurationMs = durationMs,
    };
}

/// <summary>How a metrics fan-out runs.</summary>
public sealed record FleetMetricsOptions
{
    public const int DefaultThrottleLimit = Operations.FleetOptions.DefaultThrottleLimit;

    /// <summary>Most clients asked at once (≥ 1).</summary>
    public int ThrottleLimit { get; init; } = DefaultThrottleLimit;

    /// <summary>Longest wait for one client, tunnel included (the CPU sample alone takes about 200 ms).</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(15);
}

/// <summary>
/// Asks many clients for their metrics at once, with a throttle and a per-client timeout. Results stream as they
/// arrive; offline and denied targets are answered first without contacting them; a client that does not answer
/// is reported TimedOut or Unreachable, and on cancellation every target still unanswered is reported Cancelled —
/// no target is ever dropped.
/// </summary>
public sealed class FleetMetrics(IMetricsSource? source = null)
{
    private readonly IMetricsSource _source = source ?? new MetricsClient();

    public async IAsyncEnumerable<ClientMetricsResult> CollectAsync(
        IReadOnlyList<FleetTarget> targets,
        bool summary,
        FleetMetricsOptions? options = null,
        [EnumeratorCancellation] CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        options ??= new FleetMetricsOptions();
        if (options.ThrottleLimit < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.ThrottleLimit, "ThrottleLimit must be at least 1");
        }

        if (options.Timeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Timeout, "Timeout must be positive");
        }

        const string Unanswered = "cancelled before the client answered";
        var plan = new FanOutPlan<ClientMetricsResult>
        {
            Run = (target, token) => AskAsync(target, summary, options.Timeout, token),
            Denied = (target, reason) => ClientMetricsResult.Unanswered(target, MetricsStatus.Denied, reason),
            Offline = target => ClientMetricsResult.Unanswered(target, MetricsStatus.Offline, "the client is offline"),
            Skipped = (target, _) => ClientMetricsResult.Unanswered(target, MetricsStatus.Cancelled, Unanswered),
            Cancelled = (target, ms) => ClientMetricsResult.Unanswered(target, MetricsStatus.Cancelled, Unanswered, ms),
        };
        await foreach (var result in FleetFanOut.RunAsync(targets, plan, options.ThrottleLimit, ct).ConfigureAwait(false))
        {
            yield return result;
        }
    }

    private async Task<ClientMetricsResult> AskAsync(FleetTarget target, bool summary, TimeSpan timeout, CancellationToken ct)
    {
        var clock = Stopwatch.StartNew();
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(timeout);
        try
        {
            // WaitAsync keeps the timeout even for a source that ignores its token.
            var metrics = await _source.GetAsync(target, summary, limit.Token).WaitAsync(limit.Token).ConfigureAwait(false);
            return new ClientMetricsResult
            {
                Uuid = target.Uuid,
                DisplayName = target.DisplayName,
                Status = MetricsStatus.Succeeded,
                Metrics = metrics,
                DurationMs = clock.ElapsedMilliseconds,
            };
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return ClientMetricsResult.Unanswered(target, MetricsStatus.Cancelled, "cancelled before the client answered", clock.ElapsedMilliseconds);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            return ClientMetricsResult.Unanswered(target, MetricsStatus.TimedOut, $"no answer within {timeout.TotalSeconds:0.#} s", clock.ElapsedMilliseconds);
        }
        catch (Exception ex)
        {
            return ClientMetricsResult.Unanswered(target, MetricsStatus.Unreachable, HealthText.Describe(ex), clock.ElapsedMilliseconds);
        }
    }
}

/// <summary>Short, secret-free descriptions of faults, shared by the fan-out and the health monitor.</summary>
public static class HealthText
{
    public const int MaxLength = 300;

    public static string Describe(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var text = exception switch
        {
            Tunnel.RpcException rpc => $"{rpc.CodeName}: {rpc.Message}",
            ProtocolException protocol => $"tunnel: {protocol.Message}",
            System.Net.Sockets.SocketException socket => $"tunnel unreachable: {socket.Message}",
            IOException io => $"tunnel closed: {io.Message}",
            _ => exception.Message,
        };
        var firstLine = text.Split('\n', 2)[0].TrimEnd('\r');
        return firstLine.Length <= MaxLength ? firstLine : firstLine[..(MaxLength - 1)] + "…";
    }
}
