using System.Globalization;

namespace EtPhoneHome.Core.Webhooks;

/// <summary>Retry schedule and limits of webhook delivery.</summary>
public sealed record WebhookOptions
{
    public const string MaxAttemptsVariable = "ETPHONEHOME_WEBHOOK_MAX_ATTEMPTS";
    public const string BackoffVariable = "ETPHONEHOME_WEBHOOK_BACKOFF_S";
    public const string MaxBackoffVariable = "ETPHONEHOME_WEBHOOK_BACKOFF_MAX_S";
    public const string TimeoutVariable = "ETPHONEHOME_WEBHOOK_TIMEOUT_S";
    public const string AllowLinkLocalVariable = "ETPHONEHOME_WEBHOOK_ALLOW_LINK_LOCAL";

    /// <summary>Deliver to link-local and cloud metadata addresses too (off unless the variable is 1 or true).</summary>
    public bool AllowLinkLocal { get; init; }

    /// <summary>Attempts per event before it is marked failed (1–100).</summary>
    public int MaxAttempts { get; init; } = 10;

    /// <summary>Wait after the first failed attempt; doubles after each further one.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Longest wait between attempts.</summary>
    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Longest time one POST may take, connection included.</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How often the outbox is read when nothing was sent (events come from other processes too).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>Life of the dispatcher lease; renewed on every pass.</summary>
    public TimeSpan LeaseDuration { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>Destinations served at once (each destination gets its events one at a time, in order).</summary>
    public int MaxParallelDestinations { get; init; } = 8;

    /// <summary>Pending events read per pass.</summary>
    public int BatchSize { get; init; } = 1000;

    /// <summary>
    /// Wait before the attempt after <paramref name="failedAttempts"/> failures: InitialBackoff × 2^(n−1), at most
    /// MaxBackoff; null once MaxAttempts have failed (the event is then marked failed).
    /// </summary>
    public TimeSpan? RetryDelay(int failedAttempts)
    {
        if (failedAttempts >= MaxAttempts)
        {
            return null;
        }

        var exponent = Math.Clamp(failedAttempts - 1, 0, 30);
        var ms = InitialBackoff.TotalMilliseconds * Math.Pow(2, exponent);
        return TimeSpan.FromMilliseconds(Math.Min(ms, MaxBackoff.TotalMilliseconds));
    }

    /// <summary>True when $ETPHONEHOME_WEBHOOK_ALLOW_LINK_LOCAL is 1, true or yes.</summary>
    public static bool AllowLinkLocalFrom(Func<string, string?>? environment = null) =>
        (environment ?? Environment.GetEnvironmentVariable)(AllowLinkLocalVariable)?.Trim().ToLowerInvariant() is "1" or "true" or "yes";

    /// <summary>Defaults overridden by the ETPHONEHOME_WEBHOOK_* variables; a bad value names the variable and its range.</summary>
    public static WebhookOptions FromEnvironment(Func<string, string?>? environment = null)
    {
        environment ??= Environment.GetEnvironmentVariable;
        var options = new WebhookOptions
        {
            AllowLinkLocal = AllowLinkLocalFrom(environment),
        };
        if (Read(environment, MaxAttemptsVariable, 1, 100) is { } attempts)
        {
            options = options with { MaxAttempts = (int)attempts };
        }

        if (Read(environment, BackoffVariable, 0.01, 3600) is { } backoff)
        {
            options = options with { InitialBackoff = TimeSpan.FromSeconds(backoff) };
        }

        if (Read(environment, MaxBackoffVariable, 0.01, 86_400) is { } max)
        {
            options = options with { MaxBackoff = TimeSpan.FromSeconds(max) };
        }

        if (Read(environment, TimeoutVariable, 0.1, 300) is { } timeout)
        {
            options = options with { RequestTimeout = TimeSpan.FromSeconds(timeout) };
        }

        return options;
    }

    private static double? Read(Func<string, string?> environment, string name, double min, double max)
    {
        var text = environment(name);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }

        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < min || value > max)
        {
            throw new ArgumentException($"{name} must be a number between {min.ToString(CultureInfo.InvariantCulture)} and {max.ToString(CultureInfo.InvariantCulture)}, got '{text}'", name);
        }

        return value;
    }
}
