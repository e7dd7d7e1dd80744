using System.Runtime.InteropServices;

namespace EtPhoneHome.Agent;

/// <summary>Agent-owned facts about this machine sent in every hello.</summary>
public static class HostIdentity
{
    public static string Hostname()
    {
        try
        {
            return System.Net.Dns.GetHostName();
        }
        catch (System.Net.Sockets.SocketException)
        {
            return Environment.MachineName;
        }
    }

    public static string Username() => Environment.UserName;

    /// <summary>"Linux 6.1.0-18-amd64 x86_64" style: OS name, kernel release, machine architecture.</summary>
    public static string Platform()
    {
        var arch = RuntimeInformation.OSArchitecture switch
        {
            Architecture.X64 => "x86_64",
            Architecture.Arm64 => "aarch64",
            Architecture.X86 => "i686",
            Architecture.Arm => "armv7l",
            var other => other.ToString().ToLowerInvariant(),
        };

        if (OperatingSystem.IsLinux())
        {
            var release = ReadFirstLine("/proc/sys/kernel/osrelease") ?? Environment.OSVersion.Version.ToString();
            return $"Linux {release} {arch}";
        }

        if (OperatingSystem.IsMacOS())
        {
            return $"Darwin {Environment.OSVersion.Version} {arch}";
        }

        if (OperatingSystem.IsWindows())
        {
            return $"Windows {Environment.OSVersion.Version} {arch}";
        }

        return $"{RuntimeInformation.OSDescription} {arch}";
    }

    private static string? ReadFirstLine(string path)
    {
        try
        {
            return File.Exists(path) ? File.ReadLines(path).FirstOrDefault()?.Trim() : null;
        }
        catch (IOException)
        {
            return null;
        }
    }
}
