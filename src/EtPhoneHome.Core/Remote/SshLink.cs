using System.Diagnostics;
using System.Globalization;
using System.Text;
using EtPhoneHome.Core.Text;

using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The operator's end of one SSH connection to the server, made by the system <c>ssh</c> client: ssh's stdin and stdout
/// are the byte streams a protocol runs over. ssh accepts the pinned host key only (a private known_hosts file holding
/// just that key under <see cref="SshLinkOptions.HostKeyAlias"/>), never prompts, and forwards nothing.
/// </summary>
/// <remarks>
/// ssh runs with <c>LogLevel=VERBOSE</c> so that its "Authenticated to …" line tells when the connection is up:
/// <see cref="OpenAsync"/> returns only then, so a refused host key, a refused user key or an unreachable server is an
/// exception from it and never a stream that ends later. That line and ssh's other VERBOSE chatter are not kept in
/// <see cref="ErrorOutput"/>.
/// </remarks>
public sealed class SshLink : IAsyncDisposable
{
    /// <summary>How much of ssh's stderr is kept (the last characters).</summary>
    public const int ErrorOutputCapacity = 8 * 1024;

    private const int MaxLineLength = 1024;

    private static readonly string[] s_chatter = ["Authenticated to ", "Transferred: ", "Bytes per second"];

    private readonly Process _process;
    private readonly string _privateDirectory;
    private readonly SshLinkOptions _options;
    private readonly TaskCompletionSource _authenticated = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly LinkedList<string> _errorLines = new();
    private readonly Task _stderrPump;
    private int _errorChars;
    private int _disposed;

    private SshLink(Process process, string privateDirectory, ServerAddress address, HostKey pinned, SshLinkOptions options)
    {
        _process = process;
        _privateDirectory = privateDirectory;
        _options = options;
        Address = address;
        PinnedKey = pinned;
        Input = process.StandardInput.BaseStream;
        Output = process.StandardOutput.BaseStream;
        // File bytes cross these pipes to and from ssh: larger pipes, fewer reads, writes and wake-ups per mebibyte.
        PipeCapacity.TryGrow(HandleOf(Input));
        PipeCapacity.TryGrow(HandleOf(Output));
        Exited = WaitExitAsync(process);
        _stderrPump = Task.Run(() => PumpStderrAsync(process.StandardError.BaseStream));
    }

    private static System.Runtime.InteropServices.SafeHandle? HandleOf(Stream stream) => stream switch
    {
        System.IO.Pipes.PipeStream pipe => pipe.SafePipeHandle,
        FileStream file => file.SafeFileHandle,
        _ => null,
    };

    public ServerAddress Address { get; }

    public HostKey PinnedKey { get; }

    /// <summary>ssh's stdin: what is written here reaches the server's command.</summary>
    public Stream Input { get; }

    /// <summary>ssh's stdout: what the server's command writes.</summary>
    public Stream Output { get; }

    /// <summary>Completes with ssh's exit code when ssh ends.</summary>
    public Task<int> Exited { get; }

    /// <summary>The private folder holding the known_hosts file (removed on dispose).</summary>
    internal string PrivateDirectory => _privateDirectory;

    /// <summary>ssh's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>The last <see cref="ErrorOutputCapacity"/> characters ssh (or the server's command) wrote to stderr, escaped for a terminal.</summary>
    public string ErrorOutput
    {
        get
        {
            lock (_errorLines)
            {
                return string.Join('\n', _errorLines);
            }
        }
    }

    /// <summary>
    /// Starts ssh to <paramref name="address"/>, accepting <paramref name="pinned"/> as the server's host key only, and returns
    /// once ssh has authenticated. Throws <see cref="HostKeyChangedException"/> (naming the pinned and the offered fingerprints),
    /// <see cref="SshAuthenticationException"/>, <see cref="SshConnectionException"/> or <see cref="RemoteConnectionException"/>.
    /// </summary>
    public static async Task<SshLink> OpenAsync(ServerAddress address, HostKey pinned, SshLinkOptions? options, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(pinned);
        options ??= new SshLinkOptions();
        var directory = System.IO.Directory.CreateTempSubdirectory("eph-ssh-").FullName; // 0700 on Unix
        SshLink link;
        try
        {
            var knownHosts = Path.Combine(directory, "known_hosts");
            ConnectionProfile.WritePrivateFile(knownHosts, KnownHostsLine(pinned) + "\n");
            var ssh = options.ResolveSshPath();
            var psi = new ProcessStartInfo(ssh)
            {
                UseShellExecute = false,
                RedirectStandardInput = true,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
            };
            foreach (var arg in BuildArguments(address, pinned, knownHosts, options))
            {
                psi.ArgumentList.Add(arg);
            }

            var process = new Process { StartInfo = psi };
            try
            {
                process.Start();
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                process.Dispose();
                throw new SshConnectionException($"cannot run the ssh client '{UntrustedText.ForTerminal(ssh)}' ({ex.Message}); install OpenSSH's client or set {SshLinkOptions.SshVariable}", ex);
            }

            link = new SshLink(process, directory, address, pinned, options);
        }
        catch
        {
            DeleteDirectory(directory);
            throw;
        }

        try
        {
            await link.WaitAuthenticatedAsync(ct).ConfigureAwait(false);
            return link;
        }
        catch
        {
            await link.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The one line of the private known_hosts file: the pinned key under the alias.</summary>
    public static string KnownHostsLine(HostKey pinned) => SshLinkOptions.HostKeyAlias + " " + pinned.PublicKeyLine;

    /// <summary>
    /// ssh's arguments. Only the validated address parts and our own values appear, the host after <c>--</c>; every option that
    /// could weaken the host key check or open a channel besides the session is fixed here.
    /// </summary>
    public static IReadOnlyList<string> BuildArguments(ServerAddress address, HostKey pinned, string knownHostsFile, SshLinkOptions options)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(pinned);
        ArgumentNullException.ThrowIfNull(knownHostsFile);
        ArgumentNullException.ThrowIfNull(options);
        var inv = CultureInfo.InvariantCulture;
        var args = new List<string>();
        if (options.ConfigFile is { } config)
        {
            args.AddRange(["-F", config]);
        }

        args.AddRange(
        [
            "-T",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=" + OptionPath(knownHostsFile),
            "-o", "GlobalKnownHostsFile=" + (OperatingSystem.IsWindows() ? "NUL" : "/dev/null"),
            "-o", "HostKeyAlias=" + SshLinkOptions.HostKeyAlias,
            "-o", "HostKeyAlgorithms=" + pinned.HostKeyAlgorithms,
            "-o", "UpdateHostKeys=no",
            "-o", "CheckHostIP=no",
            "-o", "VerifyHostKeyDNS=no",
            "-o", "ControlMaster=no", // a shared master connection would skip this connection's host key check
            "-o", "ControlPath=none",
            "-o", "ClearAllForwardings=yes",
            "-o", "Tunnel=no",
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no",
            "-o", "PermitLocalCommand=no",
            "-o", "EscapeChar=none", // the streams carry binary frames: no byte sequence may mean '~.'
            "-o", "ServerAliveInterval=" + Math.Max(1, (int)options.ServerAliveInterval.TotalSeconds).ToString(inv),
            "-o", "ServerAliveCountMax=3",
            "-o", "ConnectTimeout=" + Math.Max(1, (int)options.ConnectTimeout.TotalSeconds).ToString(inv),
            "-o", "LogLevel=VERBOSE",
            "-p", address.Port.ToString(inv),
        ]);
        if (address.User is { } user)
        {
            args.AddRange(["-l", user]);
        }

        if (address.KeyFile is { } key)
        {
            args.AddRange(["-i", key, "-o", "IdentitiesOnly=yes"]); // a path ServerAddress checked: no %, $ or quotes
        }

        args.AddRange(["--", address.HostName, options.RemoteCommand]);
        return args;
    }

    /// <summary>What ssh's exit says, as the exception to throw (after a failed open or a dropped connection).</summary>
    public async Task<RemoteConnectionException> DescribeFailureAsync(CancellationToken ct)
    {
        await DrainStderrAsync().ConfigureAwait(false);
        var stderr = ErrorOutput;
        var kind = SshErrors.Classify(stderr);
        IReadOnlyList<HostKey>? offered = null;
        if (kind == SshFailureKind.HostKeyChanged)
        {
            try
            {
                offered = await HostKeyPins.ScanAsync(_options.KeyscanPath ?? HostKeyPins.DefaultKeyscanPath(), Address, ct).ConfigureAwait(false);
            }
            catch (SshConnectionException)
            {
                // The server may refuse a second connection; the error still names the pinned key.
            }
        }

        var exitCode = Exited.IsCompleted ? await Exited.ConfigureAwait(false) : (int?)null;
        return Describe(Address, PinnedKey, kind, stderr, exitCode, offered);
    }

    /// <summary>The exception for an ssh failure of <paramref name="kind"/>; <paramref name="offered"/> is what a scan found.</summary>
    public static RemoteConnectionException Describe(ServerAddress address, HostKey pinned, SshFailureKind kind, string stderr, int? exitCode, IReadOnlyList<HostKey>? offered)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(pinned);
        var detail = LastLine(stderr);
        switch (kind)
        {
            case SshFailureKind.HostKeyChanged:
                var now = offered?.FirstOrDefault(k => k.Type == pinned.Type) ?? offered?.FirstOrDefault();
                if (offered is not null && offered.Any(k => k.Fingerprint == pinned.Fingerprint))
                {
                    break; // it still offers the pinned key: not a change
                }

                var offeredText = now is null ? "a host key that could not be read" : $"host key {now.Fingerprint}";
                return new HostKeyChangedException(
                    $"the server at {address.PinKey} offered {offeredText} but {pinned.Fingerprint} ({pinned.Type}) is pinned: the connection was stopped. " +
                    $"If the server's key was changed on purpose (ask its operator: ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub), {HostKeyPins.ForgetAdvice}; " +
                    "otherwise something else may be answering in the server's place",
                    pinned.Fingerprint, now?.Fingerprint) { SshError = stderr };
            case SshFailureKind.Authentication:
                var key = address.KeyFile is { } file ? $"the key {file}" : "ssh-agent's keys and ssh's default keys (~/.ssh/id_*)";
                var who = address.User is null ? "" : $" as user {address.User}";
                return new SshAuthenticationException(
                    $"the server at {address.PinKey} refused {key}{who}. An operator's key must be added on the server by an admin " +
                    "(eph-server operators add --name NAME --key \"ssh-ed25519 …\" --role reader|operator|admin); " +
                    "a key with a passphrase must be loaded into ssh-agent (ssh-add), since ssh runs without prompting" +
                    (detail is null ? "" : $" (ssh: {detail})")) { SshError = stderr };
            case SshFailureKind.Connection:
                return new SshConnectionException(
                    $"cannot reach the server at {address.PinKey}" + (detail is null ? "" : $": {detail}")) { SshError = stderr };
        }

        var code = exitCode is null ? "" : $" (exit code {exitCode.Value.ToString(CultureInfo.InvariantCulture)})";
        return new RemoteConnectionException(
            $"ssh to {address.PinKey} ended{code}" + (detail is null ? " without saying why" : $": {detail}")) { SshError = stderr };
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        try
        {
            Input.Dispose(); // EOF: the server's command ends, then ssh
        }
        catch (IOException)
        {
            // ssh already gone
        }

        try
        {
            if (!await WaitAsync(Exited, _options.ExitGrace).ConfigureAwait(false))
            {
                try
                {
                    _process.Kill(entireProcessTree: true);
                }
                catch (InvalidOperationException)
                {
                    // ended meanwhile
                }

                await WaitAsync(Exited, TimeSpan.FromSeconds(5)).ConfigureAwait(false);
            }

            await WaitAsync(_stderrPump, TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
        finally
        {
            Output.Dispose();
            _process.Dispose();
            DeleteDirectory(_privateDirectory);
        }
    }

    private async Task WaitAuthenticatedAsync(CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.OpenTimeout);
        var gaveUp = Task.Delay(Timeout.Infinite, timeout.Token);
        var first = await Task.WhenAny(_authenticated.Task, Exited, gaveUp).ConfigureAwait(false);
        if (first == _authenticated.Task)
        {
            return;
        }

        if (first == Exited)
        {
            await DrainStderrAsync().ConfigureAwait(false);
            if (_authenticated.Task.IsCompleted)
            {
                return; // authenticated, then ended at once: the caller sees Exited
            }

            throw await DescribeFailureAsync(ct).ConfigureAwait(false);
        }

        ct.ThrowIfCancellationRequested();
        var detail = LastLine(ErrorOutput);
        throw new SshConnectionException(
            $"ssh to {Address.PinKey} did not connect and authenticate within {_options.OpenTimeout.TotalSeconds.ToString("0", CultureInfo.InvariantCulture)} s" +
            (detail is null ? "" : $": {detail}")) { SshError = ErrorOutput };
    }

    private Task DrainStderrAsync() => WaitAsync(_stderrPump, TimeSpan.FromSeconds(2));

    private async Task PumpStderrAsync(Stream stderr)
    {
        var decoder = new UTF8Encoding(false, false).GetDecoder();
        var bytes = new byte[4096];
        var chars = new char[4096 + 8];
        var line = new StringBuilder();
        try
        {
            int n;
            while ((n = await stderr.ReadAsync(bytes).ConfigureAwait(false)) > 0)
            {
                var count = decoder.GetChars(bytes, 0, n, chars, 0);
                for (var i = 0; i < count; i++)
                {
                    if (chars[i] == '\n')
                    {
                        Take(line.ToString());
                        line.Clear();
                    }
                    else if (line.Length < MaxLineLength)
                    {
                        line.Append(chars[i]);
                    }
                }
            }
        }
        catch (IOException)
        {
            // the pipe broke as ssh was killed
        }
        catch (ObjectDisposedException)
        {
        }

        if (line.Length > 0)
        {
            Take(line.ToString());
        }
    }

    private void Take(string raw)
    {
        var text = raw.TrimEnd('\r');
        // Only the server that proved it holds the pinned key can write to stderr before this line (its banner follows the
        // key exchange), so a banner that imitates it fools no one but that server's own operator.
        if (text.StartsWith("Authenticated to ", StringComparison.Ordinal))
        {
            _authenticated.TrySetResult();
        }

        if (text.Length == 0 || Array.Exists(s_chatter, c => text.StartsWith(c, StringComparison.Ordinal)))
        {
            return;
        }

        var safe = UntrustedText.ForTerminal(text, MaxLineLength);
        lock (_errorLines)
        {
            _errorLines.AddLast(safe);
            _errorChars += safe.Length + 1;
            while (_errorChars > ErrorOutputCapacity && _errorLines.First is { } oldest)
            {
                _errorChars -= oldest.Value.Length + 1;
                _errorLines.RemoveFirst();
            }
        }
    }

    internal static string? LastLine(string stderr)
    {
        var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("@@@", StringComparison.Ordinal)).ToList();
        return lines.Count == 0 ? null : UntrustedText.ForTerminal(lines[^1], 300);
    }

    private static string OptionPath(string path)
    {
        // ssh splits an -o value on whitespace unless quoted; the paths here are ours (a temp folder) or validated key files.
        if (path.Contains('"', StringComparison.Ordinal))
        {
            throw new ArgumentException($"the path '{UntrustedText.ForTerminal(path)}' holds a double quote, which ssh cannot read in an option");
        }

        path = path.Replace("%", "%%", StringComparison.Ordinal); // ssh expands %tokens in file options
        if (OperatingSystem.IsWindows())
        {
            path = path.Replace('\\', '/'); // ssh's option reader treats backslashes as escapes; Windows' ssh takes '/' too
        }

        return path.Any(char.IsWhiteSpace) ? "\"" + path + "\"" : path;
    }

    private static async Task<int> WaitExitAsync(Process process)
    {
        await process.WaitForExitAsync().ConfigureAwait(false);
        return process.ExitCode;
    }

    private static async Task<bool> WaitAsync(Task task, TimeSpan limit)
    {
        if (task.IsCompleted)
        {
            return true;
        }

        return await Task.WhenAny(task, Task.Delay(limit)).ConfigureAwait(false) == task;
    }

    private static void DeleteDirectory(string directory)
    {
        try
        {
            System.IO.Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
