using System.Diagnostics;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// Finds a PowerShell 7 to open on the sandbox and builds the command that imports the built module and points it at
/// the sandbox's data directory.
/// </summary>
internal static class PowerShellLauncher
{
    /// <summary>How to start pwsh: the program and the arguments that precede pwsh's own.</summary>
    internal sealed record PwshCommand(string FileName, IReadOnlyList<string> Prefix, string? WorkingDirectory);

    /// <summary>
    /// $EPH_PWSH, else the repository's pinned pwsh (.config/dotnet-tools.json, through `dotnet tool run`), else pwsh on
    /// PATH.
    /// </summary>
    public static PwshCommand Find(string binDirectory)
    {
        if (Environment.GetEnvironmentVariable("EPH_PWSH") is { Length: > 0 } explicitPath)
        {
            return new(explicitPath, [explicitPath], null);
        }

        // out/bin → the repository root, where the tool manifest pins PowerShell 7.6.10.
        var root = Path.GetFullPath(Path.Combine(binDirectory, "..", ".."));
        if (File.Exists(Path.Combine(root, ".config", "dotnet-tools.json")))
        {
            return new("dotnet", ["dotnet", "tool", "run", "pwsh", "--"], root);
        }

        return new("pwsh", ["pwsh"], null);
    }

    /// <summary>pwsh's arguments: stay open, import the module from its folder and point it at the data directory.</summary>
    public static IReadOnlyList<string> SandboxShellArguments(string moduleDirectory, string dataDirectory) =>
    [
        "-NoExit", "-Command",
        $"Import-Module {Quote(moduleDirectory)}; Set-EphConfiguration -DataDirectory {Quote(dataDirectory)}; Get-EphClient",
    ];

    /// <summary>The command a person can paste into a shell.</summary>
    public static string CommandLine(PwshCommand pwsh, IReadOnlyList<string> arguments)
    {
        var line = string.Join(' ', pwsh.Prefix.Concat(arguments.Select(ShellQuote)));
        return pwsh.WorkingDirectory is { } dir ? $"(cd {ShellQuote(dir)} && {line})" : line;
    }

    /// <summary>Runs pwsh on this terminal until it exits; returns its exit code.</summary>
    public static async Task<int> RunInteractiveAsync(PwshCommand pwsh, IReadOnlyList<string> arguments, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(pwsh.FileName) { UseShellExecute = false, WorkingDirectory = pwsh.WorkingDirectory ?? "" };
        foreach (var a in pwsh.Prefix.Skip(1).Concat(arguments))
        {
            psi.ArgumentList.Add(a);
        }

        using var process = Process.Start(psi) ?? throw new SandboxException($"could not start {pwsh.FileName}");
        try
        {
            await process.WaitForExitAsync(ct).ConfigureAwait(false);
            return process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
    }

    // A PowerShell single-quoted string: a quote is doubled.
    private static string Quote(string value) => "'" + value.Replace("'", "''", StringComparison.Ordinal) + "'";

    // A POSIX shell single-quoted word.
    private static string ShellQuote(string value) =>
        value.Length > 0 && value.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=".Contains(c, StringComparison.Ordinal))
            ? value
            : "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}
