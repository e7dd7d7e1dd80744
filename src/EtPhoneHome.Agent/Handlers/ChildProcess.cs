using System.ComponentModel;
using System.Diagnostics;
using System.IO.Pipes;
using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace EtPhoneHome.Agent;

/// <summary>A command's process as <see cref="CommandRunner"/> uses it: three pipes, its exit, and killing it with
/// everything it started.</summary>
internal interface IChildProcess : IDisposable
{
    int Id { get; }

    Stream StandardInput { get; }

    Stream StandardOutput { get; }

    Stream StandardError { get; }

    /// <summary>The exit code (128 + N for a process ended by signal N); valid once <see cref="WaitForExitAsync"/> ended.</summary>
    int ExitCode { get; }

    Task WaitForExitAsync(CancellationToken ct = default);

    /// <summary>Kills the process and what it started (its process group when it leads one, else the tree).</summary>
    void KillTree();
}

/// <summary>Starts a command's process: in a session of its own wherever the platform allows.</summary>
internal static class ChildProcess
{
    private const string SetsidPath = "/usr/bin/setsid";

    /// <summary>
    /// Starts <paramref name="program"/> with <paramref name="arguments"/> in <paramref name="workingDirectory"/>, with
    /// exactly <paramref name="environment"/>. On Linux it leads a new session, so a timeout kills its whole process
    /// group: through posix_spawn with POSIX_SPAWN_SETSID (one exec), else through setsid(1) (two execs: the setsid
    /// program's costs as much again as the shell's), else with no group (tree kill only).
    /// </summary>
    public static IChildProcess Start(string program, IReadOnlyList<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string?> environment,
        bool allowSpawn = true)
    {
        if (allowSpawn && OperatingSystem.IsLinux() && SpawnedProcess.IsSupported)
        {
            return SpawnedProcess.Start(program, arguments, workingDirectory, environment);
        }

        var ownGroup = OperatingSystem.IsLinux() && File.Exists(SetsidPath);
        var psi = new ProcessStartInfo(ownGroup ? SetsidPath : program)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
            WorkingDirectory = workingDirectory,
        };

        // Our child is not a group leader, so setsid(1) calls setsid(2) and execs in place: the program's pid is the
        // new process group id.
        if (ownGroup)
        {
            psi.ArgumentList.Add(program);
        }

        foreach (var argument in arguments)
        {
            psi.ArgumentList.Add(argument);
        }

        psi.Environment.Clear();
        foreach (var (name, value) in environment)
        {
            psi.Environment[name] = value;
        }

        var process = new Process { StartInfo = psi };
        process.Start();
        return new DotnetProcess(process, ownGroup);
    }

    /// <summary>The agent's environment with <paramref name="overrides"/> applied (a null value removes a variable).</summary>
    public static Dictionary<string, string?> Environment(IEnumerable<KeyValuePair<string, string?>> overrides)
    {
        var result = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (System.Collections.DictionaryEntry entry in System.Environment.GetEnvironmentVariables())
        {
            result[(string)entry.Key] = (string?)entry.Value;
        }

        foreach (var (name, value) in overrides)
        {
            result[name] = value;
        }

        return result;
    }

    private sealed class DotnetProcess(Process process, bool ownGroup) : IChildProcess
    {
        public int Id => process.Id;

        public Stream StandardInput => process.StandardInput.BaseStream;

        public Stream StandardOutput => process.StandardOutput.BaseStream;

        public Stream StandardError => process.StandardError.BaseStream;

        public int ExitCode => process.ExitCode;

        public Task WaitForExitAsync(CancellationToken ct = default) => process.WaitForExitAsync(ct);

        public void KillTree()
        {
            if (ownGroup)
            {
                NativeProcess.KillProcessGroup(process.Id);
            }

            try
            {
                process.Kill(entireProcessTree: true);
            }
            catch (Exception ex) when (ex is InvalidOperationException or Win32Exception or NotSupportedException)
            {
                // Already gone.
            }
        }

        public void Dispose() => process.Dispose();
    }
}

/// <summary>
/// A child started by glibc's posix_spawn (vfork-like, one exec) as the leader of a new session, its standard streams on
/// close-on-exec pipes, every signal at its default disposition and none blocked (the runtime ignores SIGPIPE; a
/// command must not inherit that). Its exit is awaited by a small thread blocked in waitpid for that one pid, so the
/// runtime's own child reaping is not disturbed.
/// </summary>
internal sealed class SpawnedProcess : IChildProcess
{
    private const int OCloexec = 0x80000;
    private const short PosixSpawnSetSigDef = 0x04;
    private const short PosixSpawnSetSigMask = 0x08;
    private const short PosixSpawnSetSid = 0x80;
    private const int EIntr = 4;

    // Opaque glibc/musl structures, allocated larger than any libc's (x86-64 glibc: 80, 336 and 128 bytes).
    private const int OpaqueBytes = 1024;

    private static readonly Lazy<bool> Supported = new(Probe);

    private readonly TaskCompletionSource<int> _exit = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private SpawnedProcess(int pid, int stdin, int stdout, int stderr)
    {
        Id = pid;
        StandardInput = new AnonymousPipeClientStream(PipeDirection.Out, new SafePipeHandle(stdin, ownsHandle: true));
        StandardOutput = new AnonymousPipeClientStream(PipeDirection.In, new SafePipeHandle(stdout, ownsHandle: true));
        StandardError = new AnonymousPipeClientStream(PipeDirection.In, new SafePipeHandle(stderr, ownsHandle: true));
        var waiter = new Thread(WaitForExit, maxStackSize: 128 * 1024) { IsBackground = true, Name = "eph-child-wait" };
        waiter.Start();
    }

    /// <summary>True when this libc has posix_spawn with POSIX_SPAWN_SETSID and addchdir_np (glibc 2.29+, musl 1.1.24+).</summary>
    public static bool IsSupported => Supported.Value;

    public int Id { get; }

    public Stream StandardInput { get; }

    public Stream StandardOutput { get; }

    public Stream StandardError { get; }

    public int ExitCode => _exit.Task.IsCompletedSuccessfully ? _exit.Task.Result : throw new InvalidOperationException("the process has not exited");

    public Task WaitForExitAsync(CancellationToken ct = default) => _exit.Task.WaitAsync(ct);

    public void KillTree()
    {
        // A session leader's pid is its process group id: the group holds everything it started that did not leave it.
        NativeProcess.KillProcessGroup(Id);
    }

    public void Dispose()
    {
        StandardInput.Dispose();
        StandardOutput.Dispose();
        StandardError.Dispose();
    }

    public static SpawnedProcess Start(string program, IReadOnlyList<string> arguments, string workingDirectory, IReadOnlyDictionary<string, string?> environment)
    {
        var strings = new List<IntPtr>();
        var fileActions = IntPtr.Zero;
        var attributes = IntPtr.Zero;
        var signals = IntPtr.Zero;
        var argv = IntPtr.Zero;
        var envp = IntPtr.Zero;
        int[] input = [-1, -1], output = [-1, -1], error = [-1, -1];
        var fileActionsReady = false;
        var attributesReady = false;
        try
        {
            Pipe(input);
            Pipe(output);
            Pipe(error);

            fileActions = Marshal.AllocHGlobal(OpaqueBytes);
            attributes = Marshal.AllocHGlobal(OpaqueBytes);
            signals = Marshal.AllocHGlobal(OpaqueBytes);
            Check(posix_spawn_file_actions_init(fileActions), "posix_spawn_file_actions_init");
            fileActionsReady = true;
            Check(posix_spawn_file_actions_adddup2(fileActions, input[0], 0), "posix_spawn_file_actions_adddup2");
            Check(posix_spawn_file_actions_adddup2(fileActions, output[1], 1), "posix_spawn_file_actions_adddup2");
            Check(posix_spawn_file_actions_adddup2(fileActions, error[1], 2), "posix_spawn_file_actions_adddup2");
            Check(posix_spawn_file_actions_addchdir_np(fileActions, Utf8(strings, workingDirectory)), "posix_spawn_file_actions_addchdir_np");

            Check(posix_spawnattr_init(attributes), "posix_spawnattr_init");
            attributesReady = true;
            Check(sigfillset(signals) == 0 ? 0 : Marshal.GetLastPInvokeError(), "sigfillset");
            Check(posix_spawnattr_setsigdefault(attributes, signals), "posix_spawnattr_setsigdefault");
            Check(sigemptyset(signals) == 0 ? 0 : Marshal.GetLastPInvokeError(), "sigemptyset");
            Check(posix_spawnattr_setsigmask(attributes, signals), "posix_spawnattr_setsigmask");
            Check(posix_spawnattr_setflags(attributes, PosixSpawnSetSid | PosixSpawnSetSigDef | PosixSpawnSetSigMask), "posix_spawnattr_setflags");

            argv = NullTerminated(strings, [program, .. arguments]);
            envp = NullTerminated(strings, environment.Where(kv => kv.Value is not null).Select(kv => $"{kv.Key}={kv.Value}").ToList());

            var failure = posix_spawn(out var pid, Marshal.ReadIntPtr(argv), fileActions, attributes, argv, envp);
            if (failure != 0)
            {
                throw new Win32Exception(failure, $"could not start {program}: {new Win32Exception(failure).Message}");
            }

            // The child has its copies; ours of its ends must go, or its readers never see end of file.
            CloseAll(input[0], output[1], error[1]);
            input[0] = output[1] = error[1] = -1;
            var child = new SpawnedProcess(pid, input[1], output[0], error[0]);
            input[1] = output[0] = error[0] = -1;
            return child;
        }
        finally
        {
            CloseAll(input[0], input[1], output[0], output[1], error[0], error[1]);
            if (fileActionsReady)
            {
                posix_spawn_file_actions_destroy(fileActions);
            }

            if (attributesReady)
            {
                posix_spawnattr_destroy(attributes);
            }

            strings.ForEach(Marshal.FreeCoTaskMem);
            foreach (var p in new[] { fileActions, attributes, signals, argv, envp })
            {
                Marshal.FreeHGlobal(p);
            }
        }
    }

    private void WaitForExit()
    {
        while (true)
        {
            if (waitpid(Id, out var status, 0) == Id)
            {
                // WIFEXITED: the low 7 bits are 0 and the code is in the next 8; otherwise the low 7 bits are the signal.
                var signal = status & 0x7f;
                _exit.TrySetResult(signal == 0 ? (status >> 8) & 0xff : 128 + signal);
                return;
            }

            if (Marshal.GetLastPInvokeError() != EIntr)
            {
                _exit.TrySetException(new Win32Exception(Marshal.GetLastPInvokeError(), $"waiting for process {Id} failed"));
                return;
            }
        }
    }

    private static bool Probe()
    {
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }

        try
        {
            // Resolves every entry point this class calls (DllImport binds on first call): a libc without one of them
            // (an older glibc has no addchdir_np) falls back to the runtime's process start.
            using var probe = Start("/bin/sh", ["-c", "exit 7"], "/", ChildProcess.Environment([]));
            return probe.WaitForExitAsync().Wait(TimeSpan.FromSeconds(10)) && probe.ExitCode == 7;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or DllNotFoundException or Win32Exception or AggregateException)
        {
            return false;
        }
    }

    private static void Pipe(int[] ends)
    {
        if (pipe2(ends, OCloexec) != 0)
        {
            throw new Win32Exception(Marshal.GetLastPInvokeError(), "could not create a pipe for the command");
        }
    }

    private static void Check(int result, string call)
    {
        if (result != 0)
        {
            throw new Win32Exception(result, $"{call} failed: {new Win32Exception(result).Message}");
        }
    }

    private static void CloseAll(params int[] fds)
    {
        foreach (var fd in fds.Where(fd => fd >= 0))
        {
            close(fd);
        }
    }

    private static IntPtr Utf8(List<IntPtr> owned, string value)
    {
        var p = Marshal.StringToCoTaskMemUTF8(value);
        owned.Add(p);
        return p;
    }

    private static IntPtr NullTerminated(List<IntPtr> owned, IReadOnlyList<string> values)
    {
        var array = Marshal.AllocHGlobal(IntPtr.Size * (values.Count + 1));
        for (var i = 0; i < values.Count; i++)
        {
            Marshal.WriteIntPtr(array, i * IntPtr.Size, Utf8(owned, values[i]));
        }

        Marshal.WriteIntPtr(array, values.Count * IntPtr.Size, IntPtr.Zero);
        return array;
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int pipe2(int[] fds, int flags);

    [DllImport("libc", SetLastError = true)]
    private static extern int close(int fd);

    [DllImport("libc", SetLastError = true)]
    private static extern int waitpid(int pid, out int status, int options);

    [DllImport("libc", SetLastError = true)]
    private static extern int sigfillset(IntPtr set);

    [DllImport("libc", SetLastError = true)]
    private static extern int sigemptyset(IntPtr set);

    [DllImport("libc")]
    private static extern int posix_spawn(out int pid, IntPtr path, IntPtr fileActions, IntPtr attributes, IntPtr argv, IntPtr envp);

    [DllImport("libc")]
    private static extern int posix_spawn_file_actions_init(IntPtr fileActions);

    [DllImport("libc")]
    private static extern int posix_spawn_file_actions_destroy(IntPtr fileActions);

    [DllImport("libc")]
    private static extern int posix_spawn_file_actions_adddup2(IntPtr fileActions, int fd, int newFd);

    [DllImport("libc")]
    private static extern int posix_spawn_file_actions_addchdir_np(IntPtr fileActions, IntPtr path);

    [DllImport("libc")]
    private static extern int posix_spawnattr_init(IntPtr attributes);

    [DllImport("libc")]
    private static extern int posix_spawnattr_destroy(IntPtr attributes);

    [DllImport("libc")]
    private static extern int posix_spawnattr_setflags(IntPtr attributes, short flags);

    [DllImport("libc")]
    private static extern int posix_spawnattr_setsigmask(IntPtr attributes, IntPtr signals);

    [DllImport("libc")]
    private static extern int posix_spawnattr_setsigdefault(IntPtr attributes, IntPtr signals);
}
