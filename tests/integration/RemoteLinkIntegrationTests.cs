using System.Diagnostics;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// The operator's side of the SSH connection against the sandbox's real sshd: the host key scan, a changed host key and a
/// refused user key. (The positive path needs operator keys on the server, which the operator service adds.)
/// </summary>
public sealed class RemoteLinkIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-remote-it-").FullName;

    private SandboxEnvironment Env => fixture.Env;

    private static readonly SshLinkOptions Options = new() { ConfigFile = "none", OpenTimeout = TimeSpan.FromSeconds(20) };

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task Scan_ReturnsTheSandboxSshdsHostKey_WithTheFingerprintSshKeygenPrints()
    {
        var pins = new HostKeyPins(_dir);
        var keys = await pins.ScanAsync(Address(), CancellationToken.None);

        var key = Assert.Single(keys);
        Assert.Equal("ssh-ed25519", key.Type);
        Assert.Equal(SandboxHostKeyFingerprint(), key.Fingerprint);
        Assert.Equal(File.ReadAllText(Env.Data.HostKeyFile + ".pub").Split(' ')[1], key.Blob);
    }

    [Fact]
    public async Task Resolve_WithTheRightFingerprint_PinsTheKey_AndAWrongOneIsRefusedNamingBoth()
    {
        var pins = new HostKeyPins(_dir);
        var wrong = HostKey.Parse(File.ReadAllText(NewKey("other-host") + ".pub"));
        var refused = await Assert.ThrowsAsync<HostKeyMismatchException>(
            () => pins.ResolveAsync(Address(), wrong.Fingerprint, confirm: null, CancellationToken.None));
        Assert.Contains(wrong.Fingerprint, refused.Message, StringComparison.Ordinal);
        Assert.Contains(SandboxHostKeyFingerprint(), refused.Message, StringComparison.Ordinal);
        Assert.Null(pins.Get(Address()));

        var pinned = await pins.ResolveAsync(Address(), SandboxHostKeyFingerprint(), confirm: null, CancellationToken.None);
        Assert.Equal(SandboxHostKeyFingerprint(), pinned.Fingerprint);
        Assert.Equal(pinned, new HostKeyPins(_dir).Get(Address()));
    }

    [Fact]
    public async Task Open_WithAWrongPinnedKey_ThrowsHostKeyChanged_NamingBothFingerprints()
    {
        var wrong = HostKey.Parse(File.ReadAllText(NewKey("impostor") + ".pub"));
        var address = Address() with { User = Env.FleetUser, KeyFile = NewKey("operator") };

        var ex = await Assert.ThrowsAsync<HostKeyChangedException>(() => SshLink.OpenAsync(address, wrong, Options, CancellationToken.None));

        Assert.Equal(wrong.Fingerprint, ex.PinnedFingerprint);
        Assert.Equal(SandboxHostKeyFingerprint(), ex.OfferedFingerprint);
        Assert.Contains(wrong.Fingerprint, ex.Message, StringComparison.Ordinal);
        Assert.Contains(SandboxHostKeyFingerprint(), ex.Message, StringComparison.Ordinal);
        Assert.Contains("127.0.0.1:" + Env.SshPort, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_WithTheRightPin_AndAKeyTheServerRefuses_ThrowsSshAuthentication()
    {
        var pinned = HostKey.Parse(File.ReadAllText(Env.Data.HostKeyFile + ".pub"));
        // The sandbox's sshd admits its one account only (AllowUsers); an unknown key for another account is refused.
        var key = NewKey("stranger");
        var address = Address() with { User = "eph-no-such-operator", KeyFile = key };

        var ex = await Assert.ThrowsAsync<SshAuthenticationException>(() => SshLink.OpenAsync(address, pinned, Options, CancellationToken.None));

        Assert.Contains(key, ex.Message, StringComparison.Ordinal);
        Assert.Contains("eph-server operators add", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Permission denied", ex.SshError, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Open_WithTheRightPin_ReturnsOnceAuthenticated_AndDisposeEndsSsh_AndRemovesItsKnownHostsFile()
    {
        // Today the sandbox's account admits any key to the enrolment session (eph-gate session), which is enough to see the
        // link come up and go down; nothing is written to the link, so no key becomes pending.
        var pinned = HostKey.Parse(File.ReadAllText(Env.Data.HostKeyFile + ".pub"));
        var address = Address() with { User = Env.FleetUser, KeyFile = NewKey("newcomer") };

        var link = await SshLink.OpenAsync(address, pinned, Options, CancellationToken.None);
        var pid = link.ProcessId;
        var knownHosts = Path.Combine(link.PrivateDirectory, "known_hosts");
        Assert.Equal("eph-pinned " + pinned.PublicKeyLine + "\n", File.ReadAllText(knownHosts));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(knownHosts));
        Assert.False(link.Exited.IsCompleted);

        await link.DisposeAsync();

        Assert.True(link.Exited.IsCompleted);
        Assert.Throws<ArgumentException>(() => Process.GetProcessById(pid));
        Assert.False(Directory.Exists(link.PrivateDirectory));
    }

    private ServerAddress Address() => new("127.0.0.1") { Port = Env.SshPort };

    private string SandboxHostKeyFingerprint() => Run("ssh-keygen", "-lf", Env.Data.HostKeyFile + ".pub").Split(' ')[1];

    private string NewKey(string name)
    {
        var path = Path.Combine(_dir, name);
        Run("ssh-keygen", "-t", "ed25519", "-N", "", "-C", name, "-f", path, "-q");
        return path;
    }

    private static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed: {p.StandardError.ReadToEnd()}");
        return output;
    }
}
