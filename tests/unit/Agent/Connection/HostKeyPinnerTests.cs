using System.Diagnostics;
using EtPhoneHome.Agent;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class HostKeyPinnerTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-agent-hk-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("ed25519")]
    [InlineData("ecdsa")]
    public void Fingerprint_MatchesSshKeygen(string type)
    {
        var key = Path.Combine(_dir, "key_" + type);
        Run("ssh-keygen", "-t", type, "-N", "", "-f", key, "-q");
        var pub = File.ReadAllText(key + ".pub").Split(' ');
        var expected = Run("ssh-keygen", "-lf", key + ".pub").Split(' ')[1];

        Assert.StartsWith("SHA256:", expected);
        Assert.Equal(expected, SshFingerprint.FromBase64Blob(pub[1]));
    }

    [Fact]
    public void ParseKeyscan_SkipsCommentsAndComputesFingerprints()
    {
        var key = Path.Combine(_dir, "host");
        Run("ssh-keygen", "-t", "ed25519", "-N", "", "-f", key, "-q");
        var pub = File.ReadAllText(key + ".pub").Split(' ');
        var output = $"# 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2\n[127.0.0.1]:2222 {pub[0]} {pub[1]}\n\n";

        var keys = HostKeyPinner.ParseKeyscan(output);
        var only = Assert.Single(keys);
        Assert.Equal("ssh-ed25519", only.Type);
        Assert.Equal(Run("ssh-keygen", "-lf", key + ".pub").Split(' ')[1], only.Fingerprint);
    }

    [Fact]
    public void Select_WithFingerprint_KeepsOnlyTheMatchingKey()
    {
        HostKey[] offered = [new("ssh-ed25519", "AAAA", "SHA256:abc"), new("ecdsa-sha2-nistp256", "BBBB", "SHA256:def")];
        var pinned = HostKeyPinner.Select(offered, "SHA256:def", acceptOffered: false);
        Assert.Equal("BBBB", Assert.Single(pinned).Blob);
    }

    [Fact]
    public void Select_WithUnmatchedFingerprint_FailsListingWhatWasOffered()
    {
        HostKey[] offered = [new("ssh-ed25519", "AAAA", "SHA256:abc")];
        var ex = Assert.Throws<AgentConfigException>(() => HostKeyPinner.Select(offered, "SHA256:zzz", acceptOffered: false));
        Assert.Contains("SHA256:zzz", ex.Message);
        Assert.Contains("SHA256:abc", ex.Message);
    }

    [Fact]
    public void Select_AcceptOffered_KeepsAll()
    {
        HostKey[] offered = [new("ssh-ed25519", "AAAA", "SHA256:abc"), new("ssh-rsa", "CCCC", "SHA256:ghi")];
        Assert.Equal(2, HostKeyPinner.Select(offered, null, acceptOffered: true).Count);
    }

    [Fact]
    public void KnownHostsContent_UsesBracketedHostOnlyForNonDefaultPort()
    {
        HostKey[] keys = [new("ssh-ed25519", "AAAA", "SHA256:abc")];
        Assert.Equal("[gw]:2222 ssh-ed25519 AAAA\n", HostKeyPinner.KnownHostsContent("gw", 2222, keys));
        Assert.Equal("gw ssh-ed25519 AAAA\n", HostKeyPinner.KnownHostsContent("gw", 22, keys));
    }

    private static string Run(string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var output = p.StandardOutput.ReadToEnd();
        p.WaitForExit();
        Assert.True(p.ExitCode == 0, $"{file} failed: {p.StandardError.ReadToEnd()}");
        return output;
    }
}
