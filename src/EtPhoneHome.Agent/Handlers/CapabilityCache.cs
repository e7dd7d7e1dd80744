namespace EtPhoneHome.Agent;

/// <summary>
/// The capabilities every hello reports, detected off the connection path: once when the agent starts (while its
/// first ssh connection is being made) and again in the background when the last result is older than
/// <see cref="RefreshAfter"/>. A hello waits only for the very first detection; every later one sends the last result
/// at once. Detection can be slow — it runs <c>python3 --version</c>, which through a version manager's shim took
/// 0.9 s on an idle machine and 9–10 s on a loaded one — and a reconnect (after a server restart, every agent of the
/// fleet at once) should not wait for it.
/// </summary>
public sealed class CapabilityCache
{
    /// <summary>How old a detection may be before the next hello starts a new one in the background.</summary>
    public static readonly TimeSpan DefaultRefreshAfter = TimeSpan.FromMinutes(10);

    private readonly Func<string[]> _detect;
    private readonly TimeProvider _time;
    private readonly object _lock = new();
    private Task<string[]> _current;
    private DateTimeOffset _startedAt;
    private Task<string[]>? _refresh;

    /// <param name="detect">The detection (<see cref="CapabilityDetector.Detect"/>); it runs on the thread pool.</param>
    /// <param name="time">Clock (tests).</param>
    public CapabilityCache(Func<string[]>? detect = null, TimeProvider? time = null)
    {
        _detect = detect ?? CapabilityDetector.Detect;
        _time = time ?? TimeProvider.System;
        _startedAt = _time.GetUtcNow();
        _current = Task.Run(Detect);
    }

    public TimeSpan RefreshAfter { get; init; } = DefaultRefreshAfter;

    /// <summary>
    /// The capabilities for a hello: the first detection's result (awaited once), else the latest finished one; a stale
    /// result starts a refresh in the background. A detection that fails gives no capabilities (and says so in the log), never an exception.
    /// </summary>
    public async Task<string[]> GetAsync(CancellationToken ct)
    {
        Task<string[]> current;
        lock (_lock)
        {
            if (_refresh is { IsCompleted: true } done)
            {
                _current = done;
                _refresh = null;
            }

            current = _current;
            if (current.IsCompleted && _refresh is null && _time.GetUtcNow() - _startedAt >= RefreshAfter)
            {
                _startedAt = _time.GetUtcNow();
                _refresh = Task.Run(Detect);
            }
        }

        return await current.WaitAsync(ct).ConfigureAwait(false);
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
