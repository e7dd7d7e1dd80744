namespace EtPhoneHome.Mcp;

/// <summary>Settings of one MCP server process (all sessions share them).</summary>
public sealed record McpServerSettings
{
    /// <summary>Default of <see cref="MaxOutputBytes"/>: enough for a log tail, small enough for a model's context.</summary>
    public const int DefaultMaxOutputBytes = 16 * 1024;

    /// <summary>Per stream (stdout, stderr) of one command, and later per file content, in UTF-8 bytes.</summary>
    public int MaxOutputBytes { get; init; } = DefaultMaxOutputBytes;

    /// <summary>Per target of a fleet command (stdout and stderr each); a fan-out answers many targets at once.</summary>
    public int MaxFleetOutputBytesPerTarget { get; init; } = 1024;

    /// <summary>How long a finished <c>start_command</c> result stays available to <c>get_command_result</c>.</summary>
    public TimeSpan CommandRetention { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Most background commands kept (running and finished) per server process.</summary>
    public int MaxCommands { get; init; } = 256;

    /// <summary>
    /// Server directories that local paths (upload/download/exchange) may use. Empty = the data
    /// directory's <c>exchange/</c> folder only (see <see cref="LocalPathPolicy"/>).
    /// </summary>
    public IReadOnlyList<string> AllowedLocalDirectories { get; init; } = [];

    /// <summary>Who acts, as written in the history (default: the OS user).</summary>
    public string Actor { get; init; } = Environment.UserName;
}
