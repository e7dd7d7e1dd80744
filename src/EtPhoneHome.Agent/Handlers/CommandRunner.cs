using System.Diagnostics;
using System.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// Runs one shell command with a timeout, capped output capture and whole-tree cleanup. On Linux the
/// command starts in its own session (<see cref="ChildProcess"/>), so a timeout or cancellation kills its process
/// group, including children it left in the background; a tree kill is the fallback elsewhere.
/// </summary>
public static class CommandRunner
{
    /// <summary>Exit code reported when the command was killed for running out of time.</summary>
    public const int TimedOutExitCode = -1;

    /// <summary>How long the output pipes may stay open after the command itself exited (background children).</summary>
    private static readonly TimeSpan DrainGrace = TimeSpan.FromSeconds(1);

    private static readonly UTF8Encoding LenientUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    public static async Task<RunCommandResult> RunAsync(CommandSpec spec, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(spec.Command);
        if (spec.WorkingDirectory is { } cwd && !Directory.Exists(cwd))
        {
            throw new RpcFault(RpcErrorCodes.NotFound, $"working directory does not exist: {cwd}");
        }

        var shell = spec.Shell ?? ShellResolver.Resolve(null);
        var overrides = new List<KeyValuePair<string, string?>>();
        if (spec.Environment is { } env)
        {
            overrides.AddRange(env.Select(kv => new KeyValuePair<string, string?>(kv.Key, kv.Value)));
        }

        if (shell.CommandFromEnvironment)
        {
            // After the caller's variables: never replaced.
            overrides.Add(new KeyValuePair<string, string?>(ShellResolver.CommandVariable, spec.Command));
        }

        var stopwatch = Stopwatch.StartNew();
        using var process = ChildProcess.Start(shell.Program, [.. shell.Arguments, shell.CommandFromEnvironment ? ShellResolver.PosixLauncher : spec.Command],
            spec.WorkingDirectory ?? Environment.CurrentDirectory, ChildProcess.Environment(overrides));

        var stdout = CaptureAsync(process.StandardOutput, spec.MaxOutputBytes);
        var stderr = CaptureAsync(process.StandardError, spec.MaxOutputBytes);
        var stdinTask = FeedStdinAsync(process.StandardInput, spec.Stdin);

        var timedOut = false;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(spec.Timeout);
            try
            {
                await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.KillTree();
                if (ct.IsCancellationRequested)
                {
                    await AbandonAsync(process, stdout, stderr).ConfigureAwait(false);
                    throw;
                }

                timedOut = true;
            }
        }

        if (timedOut)
        {
            await WaitQuietlyAsync(process.WaitForExitAsync(), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }

        // The command exited; children it left behind may still hold the pipes. Give them a moment,
        // then stop reading rather than wait for them.
        var drained = await WaitQuietlyAsync(Task.WhenAll(stdout.Task, stderr.Task), DrainGrace).ConfigureAwait(false);
        if (!drained)
        {
            CloseQuietly(process.StandardOutput);
            CloseQuietly(process.StandardError);
            await WaitQuietlyAsync(Task.WhenAll(stdout.Task, stderr.Task), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }

        await WaitQuietlyAsync(stdinTask, TimeSpan.FromMilliseconds(100)).ConfigureAwait(false);
        stopwatch.Stop();

        return new RunCommandResult
        {
            ExitCode = timedOut ? TimedOutExitCode : process.ExitCode,
            Stdout = stdout.Text(),
            Stderr = stderr.Text(),
            DurationMs = stopwatch.ElapsedMilliseconds,
            TimedOut = timedOut,
            Truncated = stdout.Truncated || stderr.Truncated,
            StdoutBytes = stdout.TotalBytes,
            StderrBytes = stderr.TotalBytes,
        };
    }

    private static async Task AbandonAsync(IChildProcess process, OutputCapture stdout, OutputCapture stderr)
    {
        await WaitQuietlyAsync(process.WaitForExitAsync(), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        CloseQuietly(process.StandardOutput);
        CloseQuietly(process.StandardError);
        await WaitQuietlyAsync(Task.WhenAll(stdout.Task, stderr.Task), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
    }

    private static async Task FeedStdinAsync(Stream stdin, string? text)
    {
        try
        {
            if (text is not null)
            {
                await stdin.WriteAsync(LenientUtf8.GetBytes(text)).ConfigureAwait(false);
            }
        }
        catch (IOException)
        {
            // The command exited without reading everything.
        }
        finally
        {
            CloseQuietly(stdin);
        }
    }

    private static OutputCapture CaptureAsync(Stream stream, long cap) => new(stream, cap);

    /// <summary>True when <paramref name="task"/> finished within <paramref name="limit"/>; never throws.</summary>
    private static async Task<bool> WaitQuietlyAsync(Task task, TimeSpan limit)
    {
        try
        {
            await task.WaitAsync(limit).ConfigureAwait(false);
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            return true;
        }
    }

    private static void CloseQuietly(Stream stream)
    {
        try
        {
            stream.Dispose();
        }
        catch (IOException)
        {
        }
    }

    /// <summary>Reads a stream to its end, keeping the first <c>cap</c> bytes and counting the rest.</summary>
    private sealed class OutputCapture
    {
        private readonly MemoryStream _kept = new();
        private readonly long _cap;

        public OutputCapture(Stream stream, long cap)
        {
            _cap = Math.Max(0, cap);
            Task = Task.Run(() => ReadAsync(stream));
        }

        public Task Task { get; }

        public long TotalBytes { get; private set; }

        public bool Truncated => TotalBytes > _cap;

        public string Text()
        {
            lock (_kept)
            {
                return LenientUtf8.GetString(_kept.GetBuffer(), 0, (int)_kept.Length);
            }
        }

        private async Task ReadAsync(Stream stream)
        {
            var buffer = new byte[64 * 1024];
            try
            {
                while (true)
                {
                    var n = await stream.ReadAsync(buffer).ConfigureAwait(false);
                    if (n == 0)
                    {
                        return;
                    }

                    lock (_kept)
                    {
                        var room = _cap - _kept.Length;
                        if (room > 0)
                        {
                            _kept.Write(buffer, 0, (int)Math.Min(room, n));
                        }

                        TotalBytes += n;
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException)
            {
                // Closed by us after the drain grace period.
            }
        }
    }
}
