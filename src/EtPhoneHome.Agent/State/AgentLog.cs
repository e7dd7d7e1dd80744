namespace EtPhoneHome.Agent;

/// <summary>
/// Concise timestamped log lines on stderr. Never given secrets. Logging never takes the agent down: a line that cannot
/// be written (a full disk under a redirected stderr, a closed pipe) is dropped and counted, and the next line that can
/// be written says how many were lost.
/// </summary>
internal static class AgentLog
{
    private static readonly object Sync = new();
    private static long _dropped;

    /// <summary>Where lines go; stderr unless a test replaces it.</summary>
    internal static Func<TextWriter> Output { get; set; } = () => Console.Error;

    /// <summary>Lines dropped since the last line that could be written.</summary>
    internal static long Dropped
    {
        get
        {
            lock (Sync)
            {
                return _dropped;
            }
        }
    }

    public static void Info(string message) => Write("info", message);

    public static void Warn(string message) => Write("warn", message);

    public static void Error(string message) => Write("error", message);

    private static void Write(string level, string message)
    {
        var now = DateTimeOffset.UtcNow;
        var line = $"{now:yyyy-MM-ddTHH:mm:ss.fffZ} eph-agent {level}: {message}";
        lock (Sync)
        {
            try
            {
                var output = Output();
                if (_dropped > 0)
                {
                    output.WriteLine($"{now:yyyy-MM-ddTHH:mm:ss.fffZ} eph-agent warn: {_dropped} log line(s) could not be written and were dropped");
                    _dropped = 0;
                }

                output.WriteLine(line);
                output.Flush();
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or UnauthorizedAccessException or NotSupportedException)
            {
                _dropped++;
            }
        }
    }
}
