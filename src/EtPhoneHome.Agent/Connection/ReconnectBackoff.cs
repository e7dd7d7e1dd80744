namespace EtPhoneHome.Agent;

/// <summary>
/// Jittered exponential backoff between connection attempts: the base delay starts at the initial value,
/// doubles after each failed attempt up to the maximum, and returns to the initial value after a session
/// that reached welcome. Each delay is the base ± the jitter fraction.
/// </summary>
public sealed class ReconnectBackoff
{
    private readonly double _initialSeconds;
    private readonly double _maxSeconds;
    private readonly double _jitter;
    private readonly Func<double> _random;
    private double _currentSeconds;

    /// <summary>Backoff from <paramref name="initialSeconds"/> to <paramref name="maxSeconds"/> with ±<paramref name="jitter"/>; <paramref name="random"/> is a uniform [0,1) source, injectable for tests.</summary>
    public ReconnectBackoff(double initialSeconds, double maxSeconds, double jitter = 0.2, Func<double>? random = null)
    {
        if (initialSeconds <= 0) throw new ArgumentOutOfRangeException(nameof(initialSeconds));
        if (maxSeconds < initialSeconds) throw new ArgumentOutOfRangeException(nameof(maxSeconds));
        if (jitter is < 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(jitter));
        _initialSeconds = initialSeconds;
        _maxSeconds = maxSeconds;
        _jitter = jitter;
        _random = random ?? Random.Shared.NextDouble;
        _currentSeconds = initialSeconds;
    }

    /// <summary>The base delay (without jitter) the next call to <see cref="NextDelay"/> uses.</summary>
    public double CurrentBaseSeconds => _currentSeconds;

    /// <summary>Returns the delay before the next attempt and doubles the base for the one after.</summary>
    public TimeSpan NextDelay()
    {
        var factor = 1 + (((_random() * 2) - 1) * _jitter);
        var delay = _currentSeconds * factor;
        _currentSeconds = Math.Min(_currentSeconds * 2, _maxSeconds);
        return TimeSpan.FromSeconds(delay);
    }

    /// <summary>Back to the initial delay (after a session that reached welcome).</summary>
    public void Reset() => _currentSeconds = _initialSeconds;
}
