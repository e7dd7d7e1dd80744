using System.Diagnostics;
using EtPhoneHome.Agent;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class CommandRunnerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-agent-cmd-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static Task<RunCommandResult> Run(string command, string? cwd = null, IReadOnlyDictionary<string, string>? env = null,
        double timeoutS = 30, long cap = 1024 * 1024, string? stdin = null, CancellationToken ct = default) =>
        CommandRunner.RunAsync(new CommandSpec
        {
            Command = command,
            WorkingDirectory = cwd,
            Environment = env,
            Timeout = TimeSpan.FromSeconds(timeoutS),
            MaxOutputBytes = cap,
            Stdin = stdin,
        }, ct);

    [Fact]
    public async Task RunCommand_ZeroExit_CapturesStdoutAndStderr()
    {
        var result = await Run("echo out; echo err >&2");
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("out\n", result.Stdout);
        Assert.Equal("err\n", result.Stderr);
        Assert.False(result.TimedOut);
        Assert.False(result.Truncated);
        Assert.Equal(4, result.StdoutBytes);
    }

    [Fact]
    public async Task RunCommand_TheCommandLine_IsNotInTheShellsArguments_NorInheritedByWhatItStarts()
    {
        // Every local user of a client can read any process's arguments (/proc/PID/cmdline, ps); only its own user and
        // root can read its environment.
        var result = await Run("echo MARKER-5f1c >/dev/null; tr '\\0' ' ' < /proc/$$/cmdline; echo; env | grep -c '^ETPHONEHOME_COMMAND=' || true; set | grep -c '^eph_c=' || true");
        Assert.Equal(0, result.ExitCode);
        var lines = result.Stdout.Split('\n');
        Assert.DoesNotContain("MARKER-5f1c", lines[0], StringComparison.Ordinal);
        Assert.Contains("/bin/sh", lines[0], StringComparison.Ordinal);
        Assert.Equal("0", lines[1]); // not exported to the commands it runs
        Assert.Equal("0", lines[2]); // nor left as a shell variable
    }

    [Theory]
    [InlineData("exit 7", 7, "")]
    [InlineData("echo \"$0\"; printf '%s|' a 'b c'", 0, "/bin/sh\na|b c|")]
    [InlineData("if true; then\n  echo multi\nfi", 0, "multi\n")]
    [InlineData("cat <<EOF\nhere $((1+2))\nEOF", 0, "here 3\n")]
    public async Task RunCommand_ThroughTheEnvironment_KeepsTheShellsMeaning(string command, int exit, string stdout)
    {
        var result = await Run(command);
        Assert.Equal(exit, result.ExitCode);
        Assert.Equal(stdout, result.Stdout);
    }

    [Fact]
    public async Task RunCommand_ACallersVariableNamedLikeTheCarrier_DoesNotReplaceTheCommand()
    {
        var result = await Run("echo real", env: new Dictionary<string, string> { ["ETPHONEHOME_COMMAND"] = "echo forged" });
        Assert.Equal("real\n", result.Stdout);
    }

    [Fact]
    public async Task RunCommand_NonZeroExit_IsAResultWithThatCode()
    {
        var result = await Run("echo partial; exit 42");
        Assert.Equal(42, result.ExitCode);
        Assert.Equal("partial\n", result.Stdout);
        Assert.False(result.TimedOut);
    }

    [Fact]
    public async Task RunCommand_WorkingDirectory_IsHonoured()
    {
        var result = await Run("pwd", cwd: _dir);
        Assert.Equal(PathPolicy.Canonicalize(_dir), PathPolicy.Canonicalize(result.Stdout.Trim()));
    }

    [Fact]
    public async Task RunCommand_MissingWorkingDirectory_IsNotFound()
    {
        var fault = await Assert.ThrowsAsync<RpcFault>(() => Run("true", cwd: Path.Combine(_dir, "absent")));
        Assert.Equal(RpcErrorCodes.NotFound, fault.Code);
        Assert.Contains("absent", fault.Message);
    }

    [Fact]
    public async Task RunCommand_Environment_IsHonoured()
    {
        var result = await Run("printf %s \"$EPH_TEST_VALUE\"", env: new Dictionary<string, string> { ["EPH_TEST_VALUE"] = "hello world" });
        Assert.Equal("hello world", result.Stdout);
    }

    [Fact]
    public async Task RunCommand_Stdin_IsDeliveredThenClosed()
    {
        var result = await Run("cat; echo done", stdin: "line one\n");
        Assert.Equal("line one\ndone\n", result.Stdout);
    }

    [Fact]
    public async Task RunCommand_NoStdin_ReadersSeeEndOfFileAtOnce()
    {
        var result = await Run("cat; echo eof", timeoutS: 10);
        Assert.False(result.TimedOut);
        Assert.Equal("eof\n", result.Stdout);
    }

    [Fact]
    public async Task RunCommand_Timeout_KillsProcessTree()
    {
        var pidFile = Path.Combine(_dir, "bg.pid");
        var stopwatch = Stopwatch.StartNew();
        var result = await Run($"sleep 300 & echo $! > '{pidFile}'; sleep 300", timeoutS: 1);
        stopwatch.Stop();

        Assert.True(result.TimedOut);
        Assert.Equal(CommandRunner.TimedOutExitCode, result.ExitCode);
        Assert.True(stopwatch.Elapsed < TimeSpan.FromSeconds(20), $"took {stopwatch.Elapsed}");
        var backgroundPid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(await ProcessGoneAsync(backgroundPid, TimeSpan.FromSeconds(5)), $"background process {backgroundPid} survived the timeout");
    }

    [Fact]
    public async Task RunCommand_Cancellation_KillsProcessTreeAndThrows()
    {
        var pidFile = Path.Combine(_dir, "bg.pid");
        using var cts = new CancellationTokenSource();
        var run = Run($"sleep 300 & echo $! > '{pidFile}'; sleep 300", timeoutS: 600, ct: cts.Token);
        Assert.True(await WaitForAsync(() => File.Exists(pidFile) && File.ReadAllText(pidFile).Trim().Length > 0, TimeSpan.FromSeconds(10)));
        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run);
        var backgroundPid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(await ProcessGoneAsync(backgroundPid, TimeSpan.FromSeconds(5)), $"background process {backgroundPid} survived cancellation");
    }

    [Fact]
    public async Task RunCommand_OutputOverCap_IsTruncatedWithTotalBytes()
    {
        const long cap = 1024 * 1024;
        var result = await Run("head -c 3000000 /dev/zero | tr '\\0' a; echo tail >&2", cap: cap);
        Assert.Equal(0, result.ExitCode);
        Assert.True(result.Truncated);
        Assert.Equal(3_000_000, result.StdoutBytes);
        Assert.Equal(cap, result.Stdout.Length);
        Assert.All(result.Stdout, c => Assert.Equal('a', c));
        Assert.Equal("tail\n", result.Stderr);
    }

    [Fact]
    public async Task RunCommand_OutputUnderCap_IsNotTruncated()
    {
        var result = await Run("head -c 1000 /dev/zero | tr '\\0' b", cap: 1000);
        Assert.False(result.Truncated);
        Assert.Equal(1000, result.Stdout.Length);
    }

    [Fact]
    public async Task RunCommand_InvalidUtf8_IsDecodedLeniently()
    {
        var result = await Run("printf 'ok\\377\\376end'");
        Assert.StartsWith("ok", result.Stdout);
        Assert.EndsWith("end", result.Stdout);
        Assert.Contains('\uFFFD', result.Stdout);
    }

    private static async Task<bool> ProcessGoneAsync(int pid, TimeSpan limit) =>
        await WaitForAsync(() => !IsAliveAndNotZombie(pid), limit);

    private static bool IsAliveAndNotZombie(int pid)
    {
        var stat = $"/proc/{pid}/stat";
        try
        {
            var text = File.ReadAllText(stat);
            var state = text[(text.LastIndexOf(')') + 2)..].Split(' ')[0];
            return state != "Z" && state != "X";
        }
        catch (IOException)
        {
            return false;
        }
    }

    internal static async Task<bool> WaitForAsync(Func<bool> condition, TimeSpan limit)
    {
        var stopwatch = Stopwatch.StartNew();
        while (stopwatch.Elapsed < limit)
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(25);
        }

        return condition();
    }
}
