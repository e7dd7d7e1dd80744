using Microsoft.Extensions.Logging;

namespace EtPhoneHome.Mcp;

/// <summary>
/// Log lines for the MCP server go to stderr (or a given writer), never stdout: on stdio, stdout is the
/// protocol. One line per entry, with the level and the category's last segment.
/// </summary>
public sealed class StderrLoggerProvider(TextWriter writer, LogLevel minimum) : ILoggerProvider
{
    private readonly object _gate = new();

    /// <summary>A logger factory whose only output is this provider (Microsoft.Extensions.Logging itself is not needed).</summary>
    public static ILoggerFactory CreateFactory(LogLevel minimum = LogLevel.Warning, TextWriter? writer = null)
        => new Factory(new StderrLoggerProvider(writer ?? Console.Error, minimum));

    private sealed class Factory(StderrLoggerProvider provider) : ILoggerFactory
    {
        public void AddProvider(ILoggerProvider provider)
        {
            // One sink only: stderr.
        }

        public ILogger CreateLogger(string categoryName) => provider.CreateLogger(categoryName);

        public void Dispose() => provider.Dispose();
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName[(categoryName.LastIndexOf('.') + 1)..]);

    public void Dispose()
    {
    }

    private void Write(string line)
    {
        lock (_gate)
        {
            writer.WriteLine(line);
            writer.Flush();
        }
    }

    private sealed class Logger(StderrLoggerProvider owner, string category) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= owner._minimum && logLevel != LogLevel.None;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (!IsEnabled(logLevel))
            {
                return;
            }

            var text = $"{DateTime.UtcNow:yyyy-MM-dd'T'HH:mm:ss'Z'} eph-mcp {logLevel.ToString().ToLowerInvariant()} [{category}] {formatter(state, exception)}";
            owner.Write(exception is null ? text : $"{text}: {exception}");
        }
    }

    private readonly LogLevel _minimum = minimum;
}
