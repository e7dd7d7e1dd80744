using System.Globalization;
using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>Validates <c>run_command</c> parameters and turns them into a <see cref="CommandSpec"/>.</summary>
public static class RunCommandRequest
{
    public static CommandSpec ToSpec(JsonElement? parameters, long defaultMaxOutputBytes, PathPolicy paths)
    {
        if (parameters is not { ValueKind: JsonValueKind.Object } element)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object with at least cmd");
        }

        if (!element.TryGetProperty("cmd", out var cmdElement) || cmdElement.ValueKind != JsonValueKind.String
            || string.IsNullOrWhiteSpace(cmdElement.GetString()))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "cmd is required (a non-empty string)");
        }

        RunCommandParams p;
        try
        {
            p = element.Deserialize(ProtocolJson.Default.RunCommandParams)
                ?? throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object");
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : "params";
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"{field} has the wrong type");
        }

        var timeout = p.TimeoutS ?? CommandLimits.DefaultTimeoutSeconds;
        if (timeout is < CommandLimits.MinTimeoutSeconds or > CommandLimits.MaxTimeoutSeconds)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"timeout_s must be between {CommandLimits.MinTimeoutSeconds} and {CommandLimits.MaxTimeoutSeconds} seconds (got {timeout})"));
        }

        var maxOutput = p.MaxOutputBytes ?? defaultMaxOutputBytes;
        if (maxOutput < 1 || maxOutput > RpcServer.MaxOutputCapLimit)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"max_output_bytes must be between 1 and {RpcServer.MaxOutputCapLimit} (got {maxOutput})"));
        }

        var cwd = p.Cwd;
        if (string.IsNullOrEmpty(cwd))
        {
            cwd = paths.IsUnrestricted ? null : paths.DefaultDirectory
                ?? throw new RpcFault(RpcErrorCodes.PathDenied, "no working directory is allowed on this agent");
        }

        // The same canonical check as every file operation (symlinks resolved, prefix tricks refused). It restricts
        // where the command starts, not what the command may touch afterwards.
        cwd = cwd is null ? null : paths.Resolve(cwd, "cwd");

        if (p.Env is { } env)
        {
            foreach (var name in env.Keys)
            {
                if (name.Length == 0 || name.Contains('=', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal))
                {
                    throw new RpcFault(RpcErrorCodes.InvalidParams, $"env names must be non-empty without '=' or NUL (got '{PathPolicy.Shorten(name)}')");
                }
            }

            if (env.Values.Any(v => v is null || v.Contains('\0', StringComparison.Ordinal)))
            {
                throw new RpcFault(RpcErrorCodes.InvalidParams, "env values must be strings without NUL bytes");
            }
        }

        var shell = ShellResolver.Resolve(p.Shell);

        return new CommandSpec
        {
            Command = p.Cmd,
            WorkingDirectory = cwd,
            Environment = p.Env,
            Stdin = p.Stdin,
            Shell = shell,
            Timeout = TimeSpan.FromSeconds(timeout),
            MaxOutputBytes = maxOutput,
        };
    }
}

/// <summary>Maps the <c>shell</c> parameter to an executable and its arguments on this platform.</summary>
public static class ShellResolver
{
    /// <summary>
    /// The shell program and the arguments that precede the command line. A POSIX shell gets the command through its
    /// environment (<see cref="CommandVariable"/>), which only the agent's user and root can read, instead of as an
    /// argument, which every local user sees in the process list.
    /// </summary>
    public sealed record Shell(string Name, string Program, IReadOnlyList<string> Arguments, bool CommandFromEnvironment = false);

    /// <summary>The variable that carries the command line to a POSIX shell; the shell unsets it before running the command.</summary>
    public const string CommandVariable = "ETPHONEHOME_COMMAND";

    /// <summary>
    /// The POSIX shell's script: take the command from the variable, unset it (so nothing the command starts inherits it)
    /// and the shell variable too (inside the eval, before the command), then run it in this shell.
    /// </summary>
    public const string PosixLauncher = "eph_c=$" + CommandVariable + "; unset " + CommandVariable + "; eval \"unset eph_c; $eph_c\"";

    /// <summary>Resolves a shell name (null = platform default); INVALID_PARAMS for an unknown or unavailable shell.</summary>
    public static Shell Resolve(string? name)
    {
        name ??= CommandShells.Default;
        if (!CommandShells.All.Contains(name, StringComparer.Ordinal))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"shell must be one of {string.Join(", ", CommandShells.All)} (got '{PathPolicy.Shorten(name)}')");
        }

        var windows = OperatingSystem.IsWindows();
        var search = ExecutableSearch.FromEnvironment();
        return name switch
        {
            CommandShells.Sh when !windows => new Shell(name, "/bin/sh", ["-c"], CommandFromEnvironment: true),
            CommandShells.Bash when !windows => new Shell(name, File.Exists("/bin/bash") ? "/bin/bash" : search.Find("bash") ?? throw Unavailable(name), ["-c"], CommandFromEnvironment: true),
            CommandShells.Cmd when windows => new Shell(name, "cmd.exe", ["/d", "/c"]),
            CommandShells.PowerShell when windows => new Shell(name, "powershell.exe", ["-NoProfile", "-NonInteractive", "-Command"]),
            CommandShells.Pwsh => new Shell(name, search.Find("pwsh") ?? throw Unavailable(name), ["-NoProfile", "-NonInteractive", "-Command"]),
            _ => throw new RpcFault(RpcErrorCodes.InvalidParams, $"shell '{name}' is not available on {(windows ? "Windows" : "this Unix system")}"),
        };
    }

    private static RpcFault Unavailable(string name) => new(RpcErrorCodes.InvalidParams, $"shell '{name}' is not installed on this agent");
}
