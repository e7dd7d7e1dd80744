using System.Diagnostics;
using System.Text;
using EtPhoneHome.Core.Remote;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

public sealed class SshLinkTests : IDisposable
{
    private readonly RemoteTemp _temp = new();

    public void Dispose() => _temp.Dispose();

    private HostKey Key(string name, string type = "ed25519") => HostKey.Parse(File.ReadAllText(_temp.NewKey(name, type) + ".pub"));

    [Fact]
    public void Arguments_HoldExactlyTheSafetyOptions_AndTheHostAfterDoubleDash()
    {
        var pinned = Key("host");
        var identity = _temp.NewKey("id");
        var address = ServerAddress.Parse("ops@hub.example.com:2222", identity);

        var args = SshLink.BuildArguments(address, pinned, "/tmp/x/known_hosts", new SshLinkOptions());

        Assert.Equal(
        [
            "-T",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "UserKnownHostsFile=/tmp/x/known_hosts",
            "-o", "GlobalKnownHostsFile=" + (OperatingSystem.IsWindows() ? "NUL" : "/dev/null"),
            "-o", "HostKeyAlias=eph-pinned",
            "-o", "HostKeyAlgorithms=ssh-ed25519",
            "-o", "UpdateHostKeys=no",
            "-o", "CheckHostIP=no",
            "-o", "VerifyHostKeyDNS=no",
            "-o", "ControlMaster=no",
            "-o", "ControlPath=none",
            "-o", "ClearAllForwardings=yes",
            "-o", "Tunnel=no",
            "-o", "ForwardAgent=no",
            "-o", "ForwardX11=no",
            "-o", "PermitLocalCommand=no",
            "-o", "EscapeChar=none",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=3",
            "-o", "ConnectTimeout=10",
            "-o", "LogLevel=VERBOSE",
            "-p", "2222",
            "-l", "ops",
            "-i", Path.GetFullPath(identity), "-o", "IdentitiesOnly=yes",
            "--", "hub.example.com", "eph-operator",
        ], args);
    }

    [Fact]
    public void Arguments_WithoutUserOrKey_LeaveThemToSsh_AndQuoteAKnownHostsPathWithSpaces()
    {
        var args = SshLink.BuildArguments(ServerAddress.Parse("[::1]"), Key("host", "rsa"), "/tmp/a b/known%hosts", new SshLinkOptions { ConfigFile = "none" });
        Assert.Equal(["-F", "none", "-T"], args.Take(3));
        Assert.DoesNotContain("-l", args);
        Assert.DoesNotContain("-i", args);
        Assert.Contains("UserKnownHostsFile=\"/tmp/a b/known%%hosts\"", args);
        Assert.Contains("HostKeyAlgorithms=rsa-sha2-512,rsa-sha2-256", args);
        Assert.Equal(["-p", "22", "--", "::1", "eph-operator"], args.TakeLast(5));
    }

    [Fact]
    public void KnownHostsLine_IsTheAliasAndThePinnedKey()
    {
        var key = Key("host");
        Assert.Equal("eph-pinned " + key.Type + " " + key.Blob, SshLink.KnownHostsLine(key));
    }

    [Theory]
    [InlineData("Host key verification failed.", SshFailureKind.HostKeyChanged)]
    [InlineData("@@@@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@@@@\nHost key for eph-pinned has changed and you have requested strict checking.\nHost key verification failed.", SshFailureKind.HostKeyChanged)]
    [InlineData("Unable to negotiate with 127.0.0.1 port 2222: no matching host key type found. Their offer: ssh-rsa", SshFailureKind.HostKeyChanged)]
    [InlineData("ops@127.0.0.1: Permission denied (publickey).", SshFailureKind.Authentication)]
    [InlineData("Received disconnect from 127.0.0.1 port 2222:2: Too many authentication failures", SshFailureKind.Authentication)]
    [InlineData("ssh: connect to host 127.0.0.1 port 2222: Connection refused", SshFailureKind.Connection)]
    [InlineData("ssh: connect to host 10.1.1.1 port 22: Connection timed out", SshFailureKind.Connection)]
    [InlineData("ssh: Could not resolve hostname nowhere.invalid: Name or service not known", SshFailureKind.Connection)]
    [InlineData("kex_exchange_identification: read: Connection reset by peer", SshFailureKind.Connection)]
    [InlineData("something else", SshFailureKind.Unknown)]
    [InlineData("", SshFailureKind.Unknown)]
    public void Classify_ReadsSshsStderr(string stderr, SshFailureKind expected) => Assert.Equal(expected, SshErrors.Classify(stderr));

    [Fact]
    public void Describe_AChangedKey_NamesBothFingerprints_AndHowToForgetThePin()
    {
        var pinned = Key("old");
        var now = Key("new");
        var address = ServerAddress.Parse("hub:2222");
        var ex = Assert.IsType<HostKeyChangedException>(SshLink.Describe(address, pinned, SshFailureKind.HostKeyChanged, "Host key verification failed.", 255, [Key("ec", "ecdsa"), now]));
        Assert.Equal(pinned.Fingerprint, ex.PinnedFingerprint);
        Assert.Equal(now.Fingerprint, ex.OfferedFingerprint); // the key of the pinned type
        Assert.Contains($"the server at hub:2222 offered host key {now.Fingerprint} but {pinned.Fingerprint}", ex.Message, StringComparison.Ordinal);
        Assert.Contains("connections forget-host-key", ex.Message, StringComparison.Ordinal);

        var unread = Assert.IsType<HostKeyChangedException>(SshLink.Describe(address, pinned, SshFailureKind.HostKeyChanged, "", 255, null));
        Assert.Null(unread.OfferedFingerprint);
        Assert.Contains(pinned.Fingerprint, unread.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<RemoteConnectionException>(unread);
    }

    [Fact]
    public void Describe_OtherFailures_SayWhatToDo()
    {
        var pinned = Key("host");
        var identity = _temp.NewKey("id");
        var auth = Assert.IsType<SshAuthenticationException>(SshLink.Describe(ServerAddress.Parse("ops@hub", identity), pinned, SshFailureKind.Authentication, "ops@hub: Permission denied (publickey).", 255, null));
        Assert.Contains(Path.GetFullPath(identity), auth.Message, StringComparison.Ordinal);
        Assert.Contains("eph-server operators add", auth.Message, StringComparison.Ordinal);
        Assert.Contains("ssh-agent", SshLink.Describe(ServerAddress.Parse("hub"), pinned, SshFailureKind.Authentication, "", 255, null).Message, StringComparison.Ordinal);

        var conn = Assert.IsType<SshConnectionException>(SshLink.Describe(ServerAddress.Parse("hub"), pinned, SshFailureKind.Connection, "ssh: connect to host hub port 22: Connection refused", 255, null));
        Assert.Contains("Connection refused", conn.Message, StringComparison.Ordinal);
        var other = SshLink.Describe(ServerAddress.Parse("hub"), pinned, SshFailureKind.Unknown, "", 7, null);
        Assert.Equal(typeof(RemoteConnectionException), other.GetType());
        Assert.Contains("exit code 7", other.Message, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Open_ReturnsOnceSshSaysAuthenticated_RelaysBytes_AndEscapesWhatTheServerWritesToStderr()
    {
        var ssh = Script("ssh-ok",
            "printf 'Authenticated to hub ([127.0.0.1]:22) using \"publickey\".\\n' >&2",
            "printf 'banner \\033]52;c;ZXZpbA==\\007 \\342\\200\\256evil\\n' >&2",
            "exec cat");
        var link = await SshLink.OpenAsync(ServerAddress.Parse("hub"), Key("host"), new SshLinkOptions { SshPath = ssh }, CancellationToken.None);
        var directory = link.PrivateDirectory;
        Assert.True(Directory.Exists(directory));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(directory));

        var frame = Encoding.ASCII.GetBytes("ping\n");
        await link.Input.WriteAsync(frame);
        await link.Input.FlushAsync();
        var back = new byte[frame.Length];
        await link.Output.ReadExactlyAsync(back);
        Assert.Equal(frame, back);

        await SandboxLike.WaitUntil(() => link.ErrorOutput.Contains("banner", StringComparison.Ordinal));
        Assert.DoesNotContain("Authenticated to", link.ErrorOutput, StringComparison.Ordinal);
        Assert.Contains("\\x1b]52", link.ErrorOutput, StringComparison.Ordinal);
        Assert.False(EtPhoneHome.Core.Text.UntrustedText.HasUnsafeCharacters(link.ErrorOutput));

        await link.DisposeAsync();
        Assert.Equal(0, await link.Exited);
        Assert.False(Directory.Exists(directory));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Open_WhenSshIsRefused_ThrowsTheMatchingException_AndLeavesNothingBehind()
    {
        var pinned = Key("host");
        var denied = Script("ssh-denied", "echo 'ops@hub: Permission denied (publickey).' >&2", "exit 255");
        await Assert.ThrowsAsync<SshAuthenticationException>(() => SshLink.OpenAsync(ServerAddress.Parse("ops@hub"), pinned, new SshLinkOptions { SshPath = denied }, CancellationToken.None));

        var refused = Script("ssh-refused", "echo 'ssh: connect to host hub port 22: Connection refused' >&2", "exit 255");
        var ex = await Assert.ThrowsAsync<SshConnectionException>(() => SshLink.OpenAsync(ServerAddress.Parse("hub"), pinned, new SshLinkOptions { SshPath = refused }, CancellationToken.None));
        Assert.Contains("Connection refused", ex.SshError, StringComparison.Ordinal);

        var now = Key("new");
        var changed = Script("ssh-changed", "echo 'Host key verification failed.' >&2", "exit 255");
        var keyscan = Script("keyscan", $"echo 'hub {now.PublicKeyLine}'");
        var change = await Assert.ThrowsAsync<HostKeyChangedException>(() => SshLink.OpenAsync(
            ServerAddress.Parse("hub"), pinned, new SshLinkOptions { SshPath = changed, KeyscanPath = keyscan }, CancellationToken.None));
        Assert.Equal(pinned.Fingerprint, change.PinnedFingerprint);
        Assert.Equal(now.Fingerprint, change.OfferedFingerprint);

        var missing = await Assert.ThrowsAsync<SshConnectionException>(() => SshLink.OpenAsync(
            ServerAddress.Parse("hub"), pinned, new SshLinkOptions { SshPath = Path.Combine(_temp.Dir, "no-ssh") }, CancellationToken.None));
        Assert.Contains(SshLinkOptions.SshVariable, missing.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Directory.GetDirectories(Path.GetTempPath(), "eph-ssh-*"), d => File.Exists(Path.Combine(d, "known_hosts"))
            && File.ReadAllText(Path.Combine(d, "known_hosts")).Contains(pinned.Blob, StringComparison.Ordinal));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public async Task Open_ThatNeverAuthenticates_TimesOut_AndKillsSsh()
    {
        var pidFile = Path.Combine(_temp.Dir, "pid");
        var hang = Script("ssh-hang", $"echo $$ > '{pidFile}'", "exec sleep 60");
        var ex = await Assert.ThrowsAsync<SshConnectionException>(() => SshLink.OpenAsync(
            ServerAddress.Parse("hub"), Key("host"), new SshLinkOptions { SshPath = hang, OpenTimeout = TimeSpan.FromSeconds(1), ExitGrace = TimeSpan.FromMilliseconds(200) }, CancellationToken.None));
        Assert.Contains("did not connect", ex.Message, StringComparison.Ordinal);
        var pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await SandboxLike.WaitUntil(() =>
        {
            try
            {
                using var p = Process.GetProcessById(pid);
                return p.HasExited;
            }
            catch (ArgumentException)
            {
                return true;
            }
        });
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private string Script(string name, params string[] lines)
    {
        var path = Path.Combine(_temp.Dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + string.Join('\n', lines) + "\n");
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static class SandboxLike
    {
        public static async Task WaitUntil(Func<bool> probe)
        {
            var clock = Stopwatch.StartNew();
            while (!probe())
            {
                Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "timed out");
                await Task.Delay(20);
            }
        }
    }
}
