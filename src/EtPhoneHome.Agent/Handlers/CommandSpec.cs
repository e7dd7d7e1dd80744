namespace EtPhoneHome.Agent;

/// <summary>One command for <see cref="CommandRunner"/>.</summary>
public sealed record CommandSpec
{
    /// <summary>Shell command line (<c>/bin/sh -c</c> on Unix, <c>cmd.exe /c</c> on Windows).</summary>
    public required string Command { get; init; }
    /// <summary>Working directory; must exist. Null = the agent's current directory.</summary>
    public string? WorkingDirectory { get; init; }
    public IReadOnlyDictionary<string, string>? Environment { get; init; }
    /// <summary>Text written to the command's stdin; null closes stdin at once.</summary>
    public string? Stdin { get; init; }
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(300);
    /// <summary>Per-stream cap of captured bytes; the rest is read and discarded.</summary>
    public long MaxOutputBytes { get; init; } = 1024 * 1024;
    /// <summary>The shell that runs <see cref="Command"/>; null = the platform default (sh, cmd).</summary>
    public ShellResolver.Shell? Shell { get; init; }
}
