using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>
/// The two ways a command's process starts on Linux — posix_spawn in a new session (one exec) and the runtime's start
/// through setsid(1) (two) — must give a command the same world: its own session, no signal blocked or ignored, exactly
/// the environment asked for, the working directory, and the same exit codes.
/// </summary>
public sealed class ChildProcessTests
{
    public static TheoryData<bool> Ways => new() { true, false };

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(bool spawn, string script, string? cwd = null,
        IReadOnlyDictionary<string, string?>? environment = null, string? stdin = null)
    {
        using var child = ChildProcess.Start("/bin/sh", ["-c", script], cwd ?? "/", environment ?? ChildProcess.Environment([]), spawn);
        var stdout = new StreamReader(child.StandardOutput).ReadToEndAsync();
        var stderr = new StreamReader(child.StandardError).ReadToEndAsync();
        if (stdin is not null)
        {
            await child.StandardInput.WriteAsync(System.Text.Encoding.UTF8.GetBytes(stdin));
        }

        child.StandardInput.Dispose();
        await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        return (child.ExitCode, await stdout.WaitAsync(TimeSpan.FromSeconds(10)), await stderr.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void OnThisLinux_TheOneExecWayIsAvailable()
    {
        Assert.True(!OperatingSystem.IsLinux() || SpawnedProcess.IsSupported, "posix_spawn with POSIX_SPAWN_SETSID and addchdir_np should be found in glibc 2.29+");
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task TheCommandLeadsItsOwnSession(bool spawn)
    {
        // Fields of /proc/PID/stat: pid (comm) state ppid pgrp session.
        var (exit, stdout, _) = await RunAsync(spawn, "set -- $(cat /proc/$$/stat); echo \"$$ $5 $6\"");
        Assert.Equal(0, exit);
        var ids = stdout.Trim().Split(' ');
        Assert.Equal(ids[0], ids[1]);
        Assert.Equal(ids[0], ids[2]);
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task NoSignalIsBlocked(bool spawn)
    {
        // The reader replaces the shell (exec) and reads its own status: it holds what the command was given. Reading
        // the shell's status from a child raced dash, which blocks every signal between forking and sigsuspend.
        var (exit, stdout, _) = await RunAsync(spawn, "exec grep -E '^SigBlk' /proc/self/status");
        Assert.Equal(0, exit);
        Assert.Equal("SigBlk:\t0000000000000000\n", stdout);
    }

    [Fact]
    public async Task SigpipeIsNotIgnored_SoAPipelineEndsAsInATerminal()
    {
        // The runtime ignores SIGPIPE, and its own process start passes that on (SigIgn 0x1000 through setsid(1)): `yes`
        // then sees write errors instead of being ended by the signal. The one-exec start resets every disposition (glibc
        // itself keeps its two internal signals, 32 and 33, ignored across posix_spawn).
        var (exit, stdout, _) = await RunAsync(spawn: true, "exec grep -E '^SigIgn' /proc/self/status");
        Assert.Equal(0, exit);
        var ignored = Convert.ToUInt64(stdout.Trim().Split('\t')[1], 16);
        Assert.Equal(0UL, ignored & ~0x180000000UL);

        var (pipeline, output, stderr) = await RunAsync(spawn: true, "yes | head -n 1");
        Assert.Equal(0, pipeline);
        Assert.Equal("y\n", output);
        Assert.Equal("", stderr);
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task ExitCodes_AndASignalAs128PlusItsNumber(bool spawn)
    {
        Assert.Equal(3, (await RunAsync(spawn, "exit 3")).Exit);
        Assert.Equal(143, (await RunAsync(spawn, "kill -TERM $$; sleep 5")).Exit);
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task ExactlyTheEnvironmentGiven_TheWorkingDirectory_AndStdin(bool spawn)
    {
        var dir = Directory.CreateTempSubdirectory("eph-child-").FullName;
        try
        {
            var environment = new Dictionary<string, string?> { ["PATH"] = "/usr/bin:/bin", ["EPH_ONE"] = "a b=c", ["EPH_GONE"] = null };
            var (exit, stdout, _) = await RunAsync(spawn, "pwd; env | grep -c .; echo \"$EPH_ONE\"; cat", dir, environment, stdin: "from stdin");
            Assert.Equal(0, exit);
            var lines = stdout.Split('\n');
            Assert.Equal(new DirectoryInfo(dir).FullName, lines[0]);
            Assert.True(int.Parse(lines[1], System.Globalization.CultureInfo.InvariantCulture) <= 4, stdout); // PATH, EPH_ONE and what sh itself sets (PWD)
            Assert.Equal("a b=c", lines[2]);
            Assert.Equal("from stdin", lines[3]);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [MemberData(nameof(Ways))]
    public async Task KillTree_EndsTheCommandAndWhatItLeftInTheBackground(bool spawn)
    {
        using var child = ChildProcess.Start("/bin/sh", ["-c", "sleep 300 & echo $!; sleep 300"], "/", ChildProcess.Environment([]), spawn);
        var reader = new StreamReader(child.StandardOutput);
        var background = int.Parse((await reader.ReadLineAsync().WaitAsync(TimeSpan.FromSeconds(10)))!, System.Globalization.CultureInfo.InvariantCulture);

        child.KillTree();

        await child.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(137, child.ExitCode);
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (Directory.Exists($"/proc/{background}") && !File.ReadAllText($"/proc/{background}/stat").Contains(") Z ", StringComparison.Ordinal) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        Assert.True(!Directory.Exists($"/proc/{background}") || File.ReadAllText($"/proc/{background}/stat").Contains(") Z ", StringComparison.Ordinal),
            $"background process {background} survived");
    }

    [Fact]
    public async Task AProgramThatCannotStart_IsAnErrorNamingIt_AndLeavesNoDescriptorsBehind()
    {
        var before = Directory.GetFiles("/proc/self/fd").Length;
        for (var i = 0; i < 20; i++)
        {
            var ex = Assert.ThrowsAny<System.ComponentModel.Win32Exception>(() =>
                ChildProcess.Start("/nonexistent/eph-shell", ["-c", "true"], "/", ChildProcess.Environment([])));
            Assert.Contains("/nonexistent/eph-shell", ex.Message);
        }

        await Task.Yield();
        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, before + 3);
    }
}
