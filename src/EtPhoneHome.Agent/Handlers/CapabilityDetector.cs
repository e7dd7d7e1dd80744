using System.Diagnostics;
using System.Text.RegularExpressions;

namespace EtPhoneHome.Agent;

/// <summary>
/// What this machine offers (docker, python3.11, nvidia-gpu, …), reported in every hello. Tools are found by
/// looking through PATH without running them; only the Python version needs one short process.
/// </summary>
public static partial class CapabilityDetector
{
    /// <summary>Capability name → executables, any of which proves it.</summary>
    private static readonly (string Capability, string[] Executables)[] Tools =
    [
        ("docker", ["docker"]),
        ("podman", ["podman"]),
        ("apt", ["apt-get", "apt"]),
        ("dnf", ["dnf"]),
        ("pacman", ["pacman"]),
        ("homebrew", ["brew"]),
        ("chocolatey", ["choco"]),
        ("git", ["git"]),
        ("node", ["node"]),
        ("npm", ["npm"]),
        ("rust", ["rustc", "cargo"]),
        ("go", ["go"]),
        ("java", ["java"]),
        ("make", ["make"]),
        ("cmake", ["cmake"]),
        ("c-compiler", ["gcc", "cc", "clang"]),
        ("kubectl", ["kubectl"]),
        ("helm", ["helm"]),
        ("aws-cli", ["aws"]),
        ("gcloud", ["gcloud"]),
        ("azure-cli", ["az"]),
        ("ssh", ["ssh"]),
    ];

    [GeneratedRegex(@"Python (3)\.(\d+)", RegexOptions.CultureInvariant)]
    private static partial Regex PythonVersion();

    /// <summary>Detects the capabilities, sorted by name.</summary>
    public static string[] Detect()
    {
        var path = ExecutableSearch.FromEnvironment();
        var found = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (capability, executables) in Tools)
        {
            if (executables.Any(e => path.Find(e) is not null))
            {
                found.Add(capability);
            }
        }

        if (path.Find("nvidia-smi") is not null || Directory.Exists("/proc/driver/nvidia"))
        {
            found.Add("nvidia-gpu");
        }

        if (path.Find("rocm-smi") is not null || File.Exists("/dev/kfd"))
        {
            found.Add("amd-gpu");
        }

        if (Directory.Exists("/run/systemd/system"))
        {
            found.Add("systemd");
        }

        if (path.Find("python3") is { } python && PythonCapability(python) is { } py)
        {
            found.Add(py);
        }

        return [.. found];
    }

    /// <summary>"python3.11" from the output of <c>python3 --version</c>, or null.</summary>
    public static string? ParsePythonVersion(string versionOutput)
    {
        var match = PythonVersion().Match(versionOutput);
        return match.Success ? $"python{match.Groups[1].Value}.{match.Groups[2].Value}" : null;
    }

    private static string? PythonCapability(string python)
    {
        try
        {
            var psi = new ProcessStartInfo(python, "--version")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
                CreateNoWindow = true,
            };
            using var process = Process.Start(psi);
            if (process is null)
            {
                return null;
            }

            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(2000))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }

            return ParsePythonVersion(stdout.Result + " " + stderr.Result);
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or InvalidOperationException or IOException)
        {
            return null;
        }
    }
}
