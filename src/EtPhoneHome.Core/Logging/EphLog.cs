using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Logging;

/// <summary>How much an entry matters. <see cref="None"/> is only a filter setting: it lets nothing through.</summary>
public enum EphLogLevel
{
    Trace,
    Debug,
    Information,
    Warning,
    Error,
    None,
}

/// <summary>
/// One log entry: a level, the part of the product that speaks (its source, e.g. <c>eph-hub</c>, <c>guard</c>) and a
/// message. The message is made safe by construction: log lines carry text agents and unapproved keys claim (names,
/// hostnames, protocol fields, their error messages), so every control, bidi and format character becomes a visible
/// escape (<see cref="UntrustedText.ForTerminal(string?)"/>) and no entry can forge a second line or send escape
/// sequences to whoever reads the log. An exception is appended to the message the same way, on the same line.
/// </summary>
public sealed class EphLogEntry
{
    public EphLogEntry(EphLogLevel level, string source, string message, Exception? exception = null)
    {
        ArgumentNullException.ThrowIfNull(message);
        if (level is < EphLogLevel.Trace or >= EphLogLevel.None)
        {
            throw new ArgumentOutOfRangeException(nameof(level), level, "an entry has a level from Trace to Error");
        }

        Level = level;
        Source = UntrustedText.ForTerminal(string.IsNullOrEmpty(source) ? "eph" : source);
        Message = UntrustedText.ForTerminal(exception is null ? message : $"{message}: {exception}");
        Exception = exception;
    }

    public EphLogLevel Level { get; }

    /// <summary>Who speaks (escaped like the message).</summary>
    public string Source { get; }

    /// <summary>The message (and the exception, if any), one line, every unsafe character escaped.</summary>
    public string Message { get; }

    /// <summary>The exception the entry is about, for sinks that keep it apart (already part of <see cref="Message"/>).</summary>
    public Exception? Exception { get; }

    public override string ToString() => $"{EphLog.LevelName(Level)} [{Source}] {Message}";
}

/// <summary>
/// Where a part of the product writes what it has to say. Core and the hub only ever talk to this; each front end
/// supplies the sink that reaches its native channel (PowerShell's streams for the cmdlets, stderr for the CLI, the
/// hub daemon and stdio MCP). Sinks may be called from any thread.
/// </summary>
public interface IEphLog
{
    /// <summary>Whether an entry of <paramref name="level"/> would be written (callers may skip building it).</summary>
    bool IsEnabled(EphLogLevel level);

    /// <summary>Writes one entry (filtered sinks drop it when its level is not enabled).</summary>
    void Write(EphLogEntry entry);
}

/// <summary>Writing to an <see cref="IEphLog"/>, level names and filters.</summary>
public static class EphLog
{
    /// <summary>The environment variable every front end reads for its least level (trace, debug, info, warning, error, none).</summary>
    public const string LevelEnvironmentVariable = "ETPHONEHOME_LOG_LEVEL";

    public static void Write(this IEphLog log, EphLogLevel level, string source, string message, Exception? exception = null)
    {
        ArgumentNullException.ThrowIfNull(log);
        if (log.IsEnabled(level))
        {
            log.Write(new EphLogEntry(level, source, message, exception));
        }
    }

    public static void Trace(this IEphLog log, string source, string message) => log.Write(EphLogLevel.Trace, source, message);

    public static void Debug(this IEphLog log, string source, string message) => log.Write(EphLogLevel.Debug, source, message);

    public static void Information(this IEphLog log, string source, string message) => log.Write(EphLogLevel.Information, source, message);

    public static void Warning(this IEphLog log, string source, string message, Exception? exception = null)
        => log.Write(EphLogLevel.Warning, source, message, exception);

    public static void Error(this IEphLog log, string source, string message, Exception? exception = null)
        => log.Write(EphLogLevel.Error, source, message, exception);

    /// <summary>This log, letting through only entries of <paramref name="minimum"/> and above.</summary>
    public static IEphLog AtLeast(this IEphLog log, EphLogLevel minimum) => new LevelFilterLog(log, minimum);

    /// <summary>The lower-case name of a level as log lines and <see cref="LevelEnvironmentVariable"/> spell it.</summary>
    public static string LevelName(EphLogLevel level) => level switch
    {
        EphLogLevel.Trace => "trace",
        EphLogLevel.Debug => "debug",
        EphLogLevel.Information => "info",
        EphLogLevel.Warning => "warning",
        EphLogLevel.Error => "error",
        _ => "none",
    };

    /// <summary>Reads a level name (case-insensitive; <c>information</c> and <c>warn</c> too); null when it is none of them.</summary>
    public static EphLogLevel? ParseLevel(string? text) => text?.Trim().ToLowerInvariant() switch
    {
        "trace" => EphLogLevel.Trace,
        "debug" => EphLogLevel.Debug,
        "info" or "information" => EphLogLevel.Information,
        "warn" or "warning" => EphLogLevel.Warning,
        "error" => EphLogLevel.Error,
        "none" => EphLogLevel.None,
        _ => null,
    };

    /// <summary>
    /// The least level a front end logs: <see cref="LevelEnvironmentVariable"/> when it names a level, else
    /// <paramref name="fallback"/> (the front end's own default).
    /// </summary>
    public static EphLogLevel LevelFromEnvironment(EphLogLevel fallback, Func<string, string?>? environment = null)
        => ParseLevel((environment ?? Environment.GetEnvironmentVariable)(LevelEnvironmentVariable)) ?? fallback;
}

/// <summary>Drops everything: the default of every part that is given no log.</summary>
public sealed class NullLog : IEphLog
{
    public static readonly NullLog Instance = new();

    private NullLog()
    {
    }

    public bool IsEnabled(EphLogLevel level) => false;

    public void Write(EphLogEntry entry)
    {
    }
}

/// <summary>Lets through entries of a least level, and drops the rest before they reach the inner sink.</summary>
public sealed class LevelFilterLog(IEphLog inner, EphLogLevel minimum) : IEphLog
{
    private readonly IEphLog _inner = inner ?? throw new ArgumentNullException(nameof(inner));

    public EphLogLevel Minimum { get; } = minimum;

    public bool IsEnabled(EphLogLevel level) => level >= Minimum && level < EphLogLevel.None && _inner.IsEnabled(level);

    public void Write(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        if (IsEnabled(entry.Level))
        {
            _inner.Write(entry);
        }
    }
}

/// <summary>Hands every entry to a delegate: how a front end adapts its own channel (and how tests collect entries).</summary>
public sealed class DelegateLog(Action<EphLogEntry> write) : IEphLog
{
    private readonly Action<EphLogEntry> _write = write ?? throw new ArgumentNullException(nameof(write));

    public bool IsEnabled(EphLogLevel level) => level < EphLogLevel.None;

    public void Write(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        _write(entry);
    }
}

/// <summary>
/// Writes each entry as one line to a writer the front end names (stderr for the CLI, the hub and stdio MCP: never
/// stdout, which scripts parse and which is the MCP protocol on stdio). Lines are written whole, one at a time.
/// </summary>
public sealed class TextWriterLog(TextWriter writer, Func<EphLogEntry, string> format) : IEphLog
{
    private readonly TextWriter _writer = writer ?? throw new ArgumentNullException(nameof(writer));
    private readonly Func<EphLogEntry, string> _format = format ?? throw new ArgumentNullException(nameof(format));
    private readonly object _gate = new();

    /// <summary>
    /// <c>program: message</c> for information, <c>program: warning: message</c> (error, debug, trace) otherwise: the
    /// Unix tools' convention, which eph-server's verbs already used for their warnings.
    /// </summary>
    public static Func<EphLogEntry, string> Prefixed(string program) => entry => $"{program}: {LevelPrefix(entry.Level)}{entry.Message}";

    /// <summary>
    /// A daemon's line: a UTC timestamp, the entry's source, then as <see cref="Prefixed"/>
    /// (<c>2026-01-01T00:00:00.000Z eph-hub: warning: …</c>).
    /// </summary>
    public static Func<EphLogEntry, string> Timestamped(TimeProvider? time = null)
    {
        var clock = time ?? TimeProvider.System;
        return entry => $"{clock.GetUtcNow():yyyy-MM-ddTHH:mm:ss.fffZ} {entry.Source}: {LevelPrefix(entry.Level)}{entry.Message}";
    }

    /// <summary>Empty for information (the ordinary line), else the level's name and a colon.</summary>
    public static string LevelPrefix(EphLogLevel level) => level == EphLogLevel.Information ? string.Empty : EphLog.LevelName(level) + ": ";

    public bool IsEnabled(EphLogLevel level) => level < EphLogLevel.None;

    public void Write(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        var line = _format(entry);
        lock (_gate)
        {
            _writer.WriteLine(line);
            _writer.Flush();
        }
    }
}
