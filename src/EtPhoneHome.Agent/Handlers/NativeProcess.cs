using System.Runtime.InteropServices;

namespace EtPhoneHome.Agent;

/// <summary>The one libc call the agent needs: signalling a whole process group.</summary>
internal static class NativeProcess
{
    private const int SigKill = 9;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>Sends SIGKILL to every process in group <paramref name="processGroupId"/>; false when nothing was signalled.</summary>
    public static bool KillProcessGroup(int processGroupId)
    {
        if (OperatingSystem.IsWindows() || processGroupId <= 1)
        {
            return false;
        }

        try
        {
            return Kill(-processGroupId, SigKill) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }
}
