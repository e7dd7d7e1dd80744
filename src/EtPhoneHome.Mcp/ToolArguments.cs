using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Mcp;

/// <summary>
/// Limits of the tools' parameters. The same numbers appear in the input schemas ([Range], [MaxLength]) and
/// are enforced here, because MCP clients do not have to validate arguments against the schema.
/// </summary>
public static class ToolArguments
{
    public const int MaxCommandLength = CommandLimits.MaxCommandLength;
    public const int MinTimeout = CommandLimits.MinTimeoutSeconds;
    public const int MaxTimeout = CommandLimits.MaxTimeoutSeconds;
    public const int DefaultTimeout = CommandLimits.DefaultTimeoutSeconds;
    public const int MinThrottle = FleetOptions.MinThrottleLimit;
    public const int MaxThrottle = FleetOptions.MaxThrottleLimit;
    public const int MaxPathLength = 4096;
    public const int MaxIdLength = 200;
    public const int MaxQueryLength = 200;
    public const int MaxListLimit = 1000;
    public const int DefaultListLimit = 200;
    public const int MaxHistoryLimit = 500;
    public const int DefaultHistoryLimit = 50;
    public const int MaxFleetTargets = 10_000;
    public const int MaxWebhookUrlLength = 2048;
    public const int MinExpiresHours = 1;
    public const int MaxExpiresHours = 12;

    public static int Range(string parameter, int? value, int min, int max, int fallback)
    {
        var v = value ?? fallback;
        if (v < min || v > max)
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} must be between {min} and {max} (got {v})");
        }

        return v;
    }

    public static string Required(string parameter, string? value, int maxLength)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} is required and must not be empty");
        }

        return MaxLength(parameter, value, maxLength)!;
    }

    public static string? MaxLength(string parameter, string? value, int maxLength)
    {
        if (value is not null && value.Length > maxLength)
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} must be at most {maxLength} characters (got {value.Length})");
        }

        return value;
    }

    /// <summary>An optional id: null or blank means "not given".</summary>
    public static string? OptionalId(string parameter, string? value)
        => string.IsNullOrWhiteSpace(value) ? null : MaxLength(parameter, value.Trim(), MaxIdLength);
}
