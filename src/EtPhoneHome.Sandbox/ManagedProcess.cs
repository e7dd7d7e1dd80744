using System.Diagnostics;
using System.Runtime.InteropServices;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// A child process started by the sandbox, with its output appended to a log file. It is stopped by its
/// PID: SIGTERM first, SIGKILL when it does not exit in time.
/// </summary>
public sealed partial class ManagedProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private const int SigKill = 9;
    private readonly Process _process;

    private ManagedProcess(Process process, string name, string logFile)
    {
        _process = process;
        Name = name;
        LogFile = logFile;
    }

    public string Name { get; }
    public string LogFile { get; }
    public int Pid => _process.Id;
    public bool HasExited => _process.HasExited;
    public int? ExitCode => _process.HasExited ? _process.ExitCode : null;

    /// <summary>Starts <paramref name="fileName"/> with output appended to <paramref name="logFile"/>.</summary>
    public static ManagedProcess Start(string name, string fileName, IEnumerable<string> arguments, string logFile, IDictionary<string, string>? environment = null)
    {
        // `exec` keeps the PID of the real program, so stopping by PID stops it and not a wrapper shell.
        var psi = new ProcessStartInfo("/bin/sh") { UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$0\" \"$@\" >>\"$EPH_SANDBOX_LOG\" 2>&1 </dev/null");
        psi.ArgumentList.Add(fileName);
        foreach (var argument in arguments)
        {
            psi.ArgumentList.Add(argument);
        }

        psi.Environment["EPH_SANDBOX_LOG"] = logFile;
        if (environment is not null)
        {
            foreach (var (key, value) in environment)
            {
                psi.Environment[key] = value;
            }
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start {fileName}");
        return new ManagedProcess(process, name, logFile);
    }

    /// <summary>Sends SIGTERM, waits up to <paramref name="grace"/>, then SIGKILL.</summary>
    public async Task StopAsync(TimeSpan? grace = null, bool includeDescendants = false)
    {
        if (_process.HasExited)
        {
            return;
        }

        var descendants = includeDescendants ? Descendants(_process.Id) : [];
        _ = Kill(_process.Id, SigTerm);
        foreach (var pid in descendants)
        {
            _ = Kill(pid, SigTerm);
        }

        using var cts = new CancellationTokenSource(grace ?? TimeSpan.FromSeconds(5));
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Too slow (a loaded machine): SIGKILL it and what it started, so no orphan outlives the sandbox.
            _ = Kill(_process.Id, SigKill);
            foreach (var pid in descendants)
            {
                _ = Kill(pid, SigKill);
            }

            await _process.WaitForExitAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Kills at once (SIGKILL), as a crash would; with <paramref name="includeDescendants"/> what it started too.</summary>
    public async Task KillAsync(bool includeDescendants = false)
    {
        if (_process.HasExited)
        {
            return;
        }

        var descendants = includeDescendants ? Descendants(_process.Id) : [];
        _ = Kill(_process.Id, SigKill);
        foreach (var pid in descendants)
        {
            _ = Kill(pid, SigKill);
        }

        await _process.WaitForExitAsync().ConfigureAwait(false);
    }

    /// <summary>The tail of the log, for error messages.</summary>
    public string LogTail(int lines = 20)
    {
        try
        {
            var all = File.ReadAllLines(LogFile);
            return string.Join(Environment.NewLine, all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException)
        {
            return "(no log)";
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _process.Dispose();
    }

    /// <summary>All processes below <paramref name="root"/>, from /proc (Linux).</summary>
    public static IReadOnlyList<int> Descendants(int root)
    {
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                // Field 4 of /proc/PID/stat is the parent; the command name (field 2) may hold spaces, so split after ')'.
                var stat = File.ReadAllText(Path.Combine(dir, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                parents[pid] = int.Parse(fields[1], System.Globalization.CultureInfo.InvariantCulture);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
            {
                // The process ended while we looked.
            }
        }

        var result = new List<int>();
        var frontier = new Queue<int>([root]);
        while (frontier.Count > 0)
        {
            var parent = frontier.Dequeue();
            foreach (var (pid, ppid) in parents)
            {
                if (ppid == parent && !result.Contains(pid))
                {
                    result.Add(pid);
                    frontier.Enqueue(pid);
                }
            }
        }

        return result;
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
