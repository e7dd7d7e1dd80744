namespace EtPhoneHome.Agent;

/// <summary>Concise timestamped log lines on stderr. Never given secrets.</summary>
internal static class AgentLog
{
    private static readonly object Sync = new();

    public static void Info(string message) => Write("info", message);

    public static void Warn(string message) => Write("warn", message);

    public static void Error(string message) => Write("error", message);

    private static void Write(string level, string message)
    {
        var line = $"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ss.fffZ} eph-agent {level}: {message}";
        lock (Sync)
        {
            Console.Error.WriteLine(line);
        }
    }
}
