using System.Globalization;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// What an operator asks to run, whichever surface asked: the one place where a command request is checked and turned
/// into the agent's <see cref="RunCommandParams"/>. Every surface (cmdlets, verbs, MCP tools) builds one from its own
/// parameters and calls <see cref="ToParams"/>, so the same request is accepted or refused with the same words
/// everywhere, before any target is contacted.
/// </summary>
public sealed record CommandRequest
{
    public required string Command { get; init; }

    /// <summary>Seconds, <see cref="CommandLimits.MinTimeoutSeconds"/>–<see cref="CommandLimits.MaxTimeoutSeconds"/>.</summary>
    public int TimeoutSeconds { get; init; } = CommandLimits.DefaultTimeoutSeconds;

    /// <summary>Absolute working directory on the client; the agent's default when null.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>One of <see cref="CommandShells.All"/>; the client platform's default when null.</summary>
    public string? Shell { get; init; }

    public string? Stdin { get; init; }

    public IReadOnlyDictionary<string, string>? Environment { get; init; }

    /// <summary>Checks every limit and returns the agent's parameters.</summary>
    /// <exception cref="InvalidCommandRequestException">A limit is broken; nothing has been sent anywhere.</exception>
    public RunCommandParams ToParams()
    {
        if (string.IsNullOrWhiteSpace(Command))
        {
            throw new InvalidCommandRequestException("command", "the command is empty");
        }

        if (Command.Length > CommandLimits.MaxCommandLength)
        {
            throw new InvalidCommandRequestException("command", Invariant(
                $"the command is {Command.Length} characters; at most {CommandLimits.MaxCommandLength} (put a longer script in a file on the client)"));
        }

        if (Command.Contains('\0', StringComparison.Ordinal))
        {
            throw new InvalidCommandRequestException("command", "the command contains a NUL character");
        }

        if (TimeoutSeconds is < CommandLimits.MinTimeoutSeconds or > CommandLimits.MaxTimeoutSeconds)
        {
            throw new InvalidCommandRequestException("timeout", Invariant(
                $"the timeout must be between {CommandLimits.MinTimeoutSeconds} and {CommandLimits.MaxTimeoutSeconds} seconds (got {TimeoutSeconds})"));
        }

        var cwd = string.IsNullOrWhiteSpace(WorkingDirectory) ? null : WorkingDirectory;
        if (cwd is not null)
        {
            if (cwd.Length > CommandLimits.MaxPathLength)
            {
                throw new InvalidCommandRequestException("cwd", Invariant($"the working directory is longer than {CommandLimits.MaxPathLength} characters"));
            }

            if (cwd.Contains('\0', StringComparison.Ordinal) || !IsAbsolute(cwd))
            {
                throw new InvalidCommandRequestException("cwd", $"the working directory must be an absolute path (got '{Shown(cwd)}')");
            }
        }

        string? shell = null;
        if (!string.IsNullOrWhiteSpace(Shell))
        {
            shell = Shell.Trim().ToLowerInvariant();
            if (!CommandShells.All.Contains(shell, StringComparer.Ordinal))
            {
                throw new InvalidCommandRequestException("shell", $"the shell must be one of {string.Join(", ", CommandShells.All)} (got '{Shown(Shell)}')");
            }
        }

        if (Stdin is { Length: > CommandLimits.MaxStdinLength })
        {
            throw new InvalidCommandRequestException("stdin", Invariant($"the standard input is {Stdin.Length} characters; at most {CommandLimits.MaxStdinLength}"));
        }

        Dictionary<string, string>? env = null;
        if (Environment is { Count: > 0 } variables)
        {
            if (variables.Count > CommandLimits.MaxEnvironmentVariables)
            {
                throw new InvalidCommandRequestException("env", Invariant($"at most {CommandLimits.MaxEnvironmentVariables} environment variables (got {variables.Count})"));
            }

            env = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (var (name, value) in variables)
            {
                if (string.IsNullOrEmpty(name) || name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
                {
                    throw new InvalidCommandRequestException("env", $"environment variable names must be non-empty without '=' or NUL (got '{Shown(name ?? "")}')");
                }

                if (value is null || value.Contains('\0', StringComparison.Ordinal))
                {
                    throw new InvalidCommandRequestException("env", $"the value of environment variable '{Shown(name)}' must be text without NUL");
                }

                env[name] = value;
            }
        }

        return new RunCommandParams
        {
            Cmd = Command,
            TimeoutS = TimeoutSeconds,
            Cwd = cwd,
            Shell = shell,
            Stdin = Stdin,
            Env = env,
        };
    }

    // A client may run another OS than the operator: "/x" is absolute for a Unix agent, "C:\x" for a Windows one.
    private static bool IsAbsolute(string path) =>
        path.StartsWith('/') || (path.Length >= 3 && char.IsAsciiLetter(path[0]) && path[1] == ':' && path[2] is '\\' or '/') || path.StartsWith(@"\\", StringComparison.Ordinal);

    private static string Shown(string value) => UntrustedText.ForTerminal(value, 120)!;

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}

/// <summary>A command request broke a limit; <see cref="Field"/> names the part (command, timeout, cwd, shell, stdin, env).</summary>
public sealed class InvalidCommandRequestException(string field, string message) : ArgumentException(message)
{
    public string Field { get; } = field;
}
