using EtPhoneHome.Core.Logging;
using Microsoft.Extensions.Logging;

namespace EtPhoneHome.Mcp;

/// <summary>
/// The MCP server's log. On stdio, stdout is the protocol, so log lines go to stderr (or a given writer), one line per
/// entry: <c>2026-01-01T00:00:00Z eph-mcp warning [Mcp] …</c>.
/// </summary>
public static class McpLog
{
    /// <summary>
    /// The stdio server's log: <paramref name="writer"/> (stderr when null), entries of <paramref name="minimum"/> and
    /// above (else <see cref="EphLog.LevelEnvironmentVariable"/>, else warnings and errors).
    /// </summary>
    public static IEphLog ForStdio(TextWriter? writer = null, EphLogLevel? minimum = null)
        => new TextWriterLog(writer ?? Console.Error, Format).AtLeast(minimum ?? EphLog.LevelFromEnvironment(EphLogLevel.Warning));

    /// <summary>One MCP log line: time, program, level, source, message.</summary>
    public static string Format(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return $"{DateTime.UtcNow:yyyy-MM-dd'T'HH:mm:ss'Z'} eph-mcp {EphLog.LevelName(entry.Level)} [{entry.Source}] {entry.Message}";
    }

    /// <summary>The Microsoft.Extensions.Logging level of an entry's level (for the SDK side).</summary>
    public static LogLevel ToMicrosoft(EphLogLevel level) => level switch
    {
        EphLogLevel.Trace => LogLevel.Trace,
        EphLogLevel.Debug => LogLevel.Debug,
        EphLogLevel.Information => LogLevel.Information,
        EphLogLevel.Warning => LogLevel.Warning,
        EphLogLevel.Error => LogLevel.Error,
        _ => LogLevel.None,
    };

    /// <summary>The entry level of a Microsoft.Extensions.Logging level (Critical is an error; None drops).</summary>
    public static EphLogLevel FromMicrosoft(LogLevel level) => level switch
    {
        LogLevel.Trace => EphLogLevel.Trace,
        LogLevel.Debug => EphLogLevel.Debug,
        LogLevel.Information => EphLogLevel.Information,
        LogLevel.Warning => EphLogLevel.Warning,
        LogLevel.Error or LogLevel.Critical => EphLogLevel.Error,
        _ => EphLogLevel.None,
    };
}

/// <summary>
/// Microsoft.Extensions.Logging (what the MCP SDK and ASP.NET Core log through) written to an <see cref="IEphLog"/>:
/// the category's last segment is the entry's source, and the entry escapes what agents could have put in the message.
/// </summary>
public sealed class EphLogLoggerProvider(IEphLog log) : ILoggerProvider
{
    private readonly IEphLog _log = log ?? throw new ArgumentNullException(nameof(log));

    /// <summary>A logger factory whose only output is <paramref name="log"/> (Microsoft.Extensions.Logging itself is not needed).</summary>
    public static ILoggerFactory CreateFactory(IEphLog log) => new Factory(new EphLogLoggerProvider(log));

    public ILogger CreateLogger(string categoryName)
    {
        ArgumentNullException.ThrowIfNull(categoryName);
        return new Logger(_log, categoryName[(categoryName.LastIndexOf('.') + 1)..]);
    }

    public void Dispose()
    {
    }

    private sealed class Factory(ILoggerProvider provider) : ILoggerFactory
    {
        public void AddProvider(ILoggerProvider provider)
        {
            // One sink only.
        }

        public ILogger CreateLogger(string categoryName) => provider.CreateLogger(categoryName);

        public void Dispose() => provider.Dispose();
    }

    private sealed class Logger(IEphLog log, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => McpLog.FromMicrosoft(logLevel) is var level && level != EphLogLevel.None && log.IsEnabled(level);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            ArgumentNullException.ThrowIfNull(formatter);
            if (IsEnabled(logLevel))
            {
                log.Write(new EphLogEntry(McpLog.FromMicrosoft(logLevel), category, formatter(state, exception), exception));
            }
        }
    }
}

/// <summary>An <see cref="IEphLog"/> written to a Microsoft.Extensions.Logging logger (when a host supplies its logger factory).</summary>
public sealed class MicrosoftLoggerLog(ILogger logger) : IEphLog
{
    private readonly ILogger _logger = logger ?? throw new ArgumentNullException(nameof(logger));

    public bool IsEnabled(EphLogLevel level) => level < EphLogLevel.None && _logger.IsEnabled(McpLog.ToMicrosoft(level));

    public void Write(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
#pragma warning disable CA2254 // The entry's message is already made (and escaped); it is no template.
        _logger.Log(McpLog.ToMicrosoft(entry.Level), "[{Source}] {Message}", entry.Source, entry.Message);
#pragma warning restore CA2254
    }
}

/// <summary>
/// The MCP log on a writer (stderr by default) as a Microsoft.Extensions.Logging provider: what hosts that build their
/// own logging (ASP.NET Core for MCP over HTTP) add.
/// </summary>
public sealed class StderrLoggerProvider(TextWriter writer, LogLevel minimum) : ILoggerProvider
{
    private readonly EphLogLoggerProvider _inner = new(McpLog.ForStdio(writer, McpLog.FromMicrosoft(minimum)));

    /// <summary>A logger factory whose only output is this provider.</summary>
    public static ILoggerFactory CreateFactory(LogLevel minimum = LogLevel.Warning, TextWriter? writer = null)
        => EphLogLoggerProvider.CreateFactory(McpLog.ForStdio(writer, McpLog.FromMicrosoft(minimum)));

    public ILogger CreateLogger(string categoryName) => _inner.CreateLogger(categoryName);

    public void Dispose() => _inner.Dispose();
}
