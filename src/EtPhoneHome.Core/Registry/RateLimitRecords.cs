namespace EtPhoneHome.Core.Registry;

/// <summary>What happens to a request over a client's rate limit.</summary>
public enum RateLimitMode
{
    /// <summary>The request runs; a warning is logged and counted (the default).</summary>
    Warn,
    /// <summary>The request is refused with a RATE_LIMITED error.</summary>
    Enforce,
}

/// <summary>Defaults and mode applied when a client has no override.</summary>
public sealed record RateLimitPolicy
{
    public const int DefaultRpm = 60;
    public const int DefaultConcurrent = 10;

    /// <summary>Setting (registry settings table) that selects warn or enforce; it wins over the environment.</summary>
    public const string ModeSetting = "rate_limit_mode";

    /// <summary>Environment variable read when the setting is absent.</summary>
    public const string ModeEnvironmentVariable = "ETPHONEHOME_RATE_LIMIT_MODE";

    /// <summary>Length of the rolling window.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromSeconds(60);

    public int Rpm { get; init; } = DefaultRpm;
    public int Concurrent { get; init; } = DefaultConcurrent;

    /// <summary>Mode when the registry setting is absent (null: the environment variable, else warn).</summary>
    public RateLimitMode? FallbackMode { get; init; }

    /// <summary>How long an in-flight row may live before it is treated as leaked (its process is also checked).</summary>
    public TimeSpan InflightExpiry { get; init; } = TimeSpan.FromHours(2);

    /// <summary>Parses "warn" or "enforce" (case-insensitive); null for anything else.</summary>
    public static RateLimitMode? ParseMode(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "warn" => RateLimitMode.Warn,
        "enforce" => RateLimitMode.Enforce,
        _ => null,
    };

    internal RateLimitMode ModeFallback()
        => FallbackMode ?? ParseMode(Environment.GetEnvironmentVariable(ModeEnvironmentVariable)) ?? RateLimitMode.Warn;
}

/// <summary>A client's counters, as <c>Get-EphRateLimitStats</c> shows them (the reference's field names).</summary>
public sealed record RateLimitStats
{
    public required string Uuid { get; init; }
    /// <summary>Requests in the last 60 s (a request exactly 60 s old no longer counts).</summary>
    public required int RequestsPerMinute { get; init; }
    public required int CurrentConcurrent { get; init; }
    public required int RpmLimit { get; init; }
    public required int ConcurrentLimit { get; init; }
    /// <summary>Requests that went over the RPM limit (warned or refused), since the registry was created.</summary>
    public required long RpmWarnings { get; init; }
    /// <summary>Requests that went over the concurrency limit (warned or refused).</summary>
    public required long ConcurrentWarnings { get; init; }
    public required RateLimitMode Mode { get; init; }
}

/// <summary>The registry's answer to a request that wants to start.</summary>
public sealed record RateLimitAdmission
{
    /// <summary>False when an enforced limit refused the request (nothing was counted in the window or in flight).</summary>
    public required bool Allowed { get; init; }
    /// <summary>Row to release when the request ends; 0 when refused.</summary>
    public required long InflightId { get; init; }
    public required bool OverRpm { get; init; }
    public required bool OverConcurrent { get; init; }
    /// <summary>Counters after this request was counted (or refused).</summary>
    public required RateLimitStats Stats { get; init; }
}
