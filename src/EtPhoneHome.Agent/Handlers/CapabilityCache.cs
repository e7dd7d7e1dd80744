namespace EtPhoneHome.Agent;

/// <summary>
/// The capabilities every hello reports, detected off the connection path: once when the agent starts (while its
/// first ssh connection is being made) and again in the background every <see cref="DefaultRefreshAfter"/> (and by a
/// hello that finds the last result older than that), so a reconnect hours later reports what is installed now, give or
/// take one period. A hello waits only for the very first detection; every later one sends the last result at once. Detection can be slow — it runs <c>python3 --version</c>, which through a version manager's shim took
/// 0.9 s on an idle machine and 9–10 s on a loaded one — and a reconnect (after a server restart, every agent of the
/// fleet at once) should not wait for it.
/// </summary>
public sealed class CapabilityCache : IDisposable
{
    /// <summary>How old a detection may be before the next hello starts a new one in the background.</summary>
    public static readonly TimeSpan DefaultRefreshAfter = TimeSpan.FromMinutes(10);

    private readonly Func<string[]> _detect;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private Task<string[]> _current;
    private DateTimeOffset _startedAt;
    private readonly ITimer _timer;
    private Task<string[]>? _refresh;

    /// <param name="detect">The detection (<see cref="CapabilityDetector.Detect"/>); it runs on the thread pool.</param>
    /// <param name="time">Clock and timer (tests).</param>
    /// <param name="refreshAfter">How old a result may get (default <see cref="DefaultRefreshAfter"/>).</param>
    public CapabilityCache(Func<string[]>? detect = null, TimeProvider? time = null, TimeSpan? refreshAfter = null)
    {
        _detect = detect ?? CapabilityDetector.Detect;
        _time = time ?? TimeProvider.System;
        RefreshAfter = refreshAfter ?? DefaultRefreshAfter;
        _startedAt = _time.GetUtcNow();
        _current = Task.Run(Detect);
        _timer = _time.CreateTimer(_ => RefreshIfStale(), null, RefreshAfter, RefreshAfter);
    }

    public TimeSpan RefreshAfter { get; }

    public void Dispose() => _timer.Dispose();

    /// <summary>
    /// The capabilities for a hello: the first detection's result (awaited once), else the latest finished one; a stale
    /// result starts a refresh in the background. A detection that fails gives no capabilities (and says so in the log), never an exception.
    /// </summary>
    public async Task<string[]> GetAsync(CancellationToken ct) =>
        await RefreshIfStale().WaitAsync(ct).ConfigureAwait(false);

    /// <summary>Takes a finished refresh as the current result; starts a new one when the current result is stale. Returns the current result.</summary>
    private Task<string[]> RefreshIfStale()
    {
        lock (_lock)
        {
            if (_refresh is { IsCompleted: true } done)
            {
                _current = done;
                _refresh = null;
            }

            if (_current.IsCompleted && _refresh is null && _time.GetUtcNow() - _startedAt >= RefreshAfter)
            {
                _startedAt = _time.GetUtcNow();
                _refresh = Task.Run(Detect);
            }

            return _current;
        }
    }

    private string[] Detect()
    {
        try
        {
            return _detect();
        }
        catch (Exception ex)
        {
            AgentLog.Warn($"capability detection failed: {ex.Message}");
            return [];
        }
    }
}
