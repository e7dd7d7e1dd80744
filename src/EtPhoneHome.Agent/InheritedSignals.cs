using System.Runtime.InteropServices;

namespace EtPhoneHome.Agent;

/// <summary>
/// Undoes what a parent may have passed on that would change how the agent's children end. An ignored SIGCHLD survives
/// exec; the runtime then installs its own handler but, remembering the original disposition, reaps every child of the
/// process itself — including the commands the agent started with posix_spawn, whose exit the agent awaits in waitpid
/// for that one pid, and their exit statuses with them (seen: an agent started under <c>env --ignore-signal=CHLD</c>
/// answered none of its commands). Resetting the disposition to the default before the runtime looks at it keeps the
/// runtime's reaping to its own children; commands get every signal at its default anyway. Must run first in Main.
/// </summary>
internal static class InheritedSignals
{
    private const int SigIgn = 1;
    private const int SigDfl = 0;

    // Big enough for any libc's struct sigaction (x86-64 and arm64 glibc and musl: 152 bytes); the handler comes first.
    private const int SigactionBytes = 256;

    /// <summary>Puts an ignored SIGCHLD back to its default; true when it did (the disposition was SIG_IGN).</summary>
    public static bool ResetIgnoredSigchld()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS())
        {
            return false;
        }

        var sigchld = OperatingSystem.IsLinux() ? 17 : 20;
        var old = Marshal.AllocHGlobal(SigactionBytes);
        try
        {
            if (sigaction(sigchld, IntPtr.Zero, old) != 0 || Marshal.ReadIntPtr(old) != (nint)SigIgn)
            {
                return false;
            }

            return signal(sigchld, (nint)SigDfl) == (nint)SigIgn;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
        finally
        {
            Marshal.FreeHGlobal(old);
        }
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int sigaction(int signal, IntPtr action, IntPtr oldAction);

    [DllImport("libc", SetLastError = true)]
    private static extern IntPtr signal(int signal, IntPtr handler);
}
