using System.Runtime.InteropServices;

namespace EtPhoneHome.Protocol;

/// <summary>
/// Larger kernel buffers for the pipes a byte stream crosses (ssh's stdin and stdout, the gate's): a Linux pipe holds
/// 64 KiB by default, so a mebibyte crosses it in at least 16 writes, 16 reads and as many wake-ups of each side. A
/// larger pipe lets each side move more per system call. Best effort: on other systems, on a descriptor that is not a
/// pipe, or past the user's pipe quota the pipe keeps its size, and nothing else changes.
/// </summary>
public static class PipeCapacity
{
    /// <summary>The size asked for: the default largest an unprivileged process may set (/proc/sys/fs/pipe-max-size).</summary>
    public const int Preferred = 1024 * 1024;

    private const int SetPipeSize = 1031; // F_SETPIPE_SZ
    private const int GetPipeSize = 1032; // F_GETPIPE_SZ

    /// <summary>Asks for <paramref name="bytes"/> of buffer on pipe <paramref name="fd"/>; its size afterwards, or -1 when not a pipe (or not Linux).</summary>
    public static int TryGrow(int fd, int bytes = Preferred)
    {
        if (!OperatingSystem.IsLinux() || fd < 0)
        {
            return -1;
        }

        try
        {
            var now = Fcntl(fd, GetPipeSize, 0);
            if (now < 0 || now >= bytes)
            {
                return now;
            }

            _ = Fcntl(fd, SetPipeSize, bytes);
            return Fcntl(fd, GetPipeSize, 0);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return -1;
        }
    }

    /// <summary>Grows the pipe under <paramref name="handle"/> (a pipe stream's or a file's handle), best effort.</summary>
    public static int TryGrow(SafeHandle? handle, int bytes = Preferred)
    {
        if (handle is null || handle.IsInvalid || handle.IsClosed)
        {
            return -1;
        }

        var added = false;
        try
        {
            handle.DangerousAddRef(ref added);
            return TryGrow((int)handle.DangerousGetHandle(), bytes);
        }
        catch (ObjectDisposedException)
        {
            return -1;
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [DllImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static extern int Fcntl(int fd, int cmd, int arg);
}
