using System.Diagnostics;

namespace EtPhoneHome.Core.Registry;

/// <summary>Whether a process recorded in the registry still runs (rows are only judged on their own host).</summary>
internal static class ProcessLiveness
{
    public static string Host { get; } = Environment.MachineName;

    public static int CurrentPid { get; } = Environment.ProcessId;

    public static bool IsAlive(int pid)
    {
        if (pid == CurrentPid)
        {
            return true;
        }

        if (OperatingSystem.IsLinux())
        {
            // One stat call; far cheaper than Process.GetProcessById, which reads the whole process entry.
            return Directory.Exists($"/proc/{pid}");
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
