using EtPhoneHome.Core.Remote;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

public sealed class HostKeyPinsTests : IDisposable
{
    private readonly RemoteTemp _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Profile => Path.Combine(_temp.Dir, "profile");

    private HostKey Key(string name, string type = "ed25519") => HostKey.Parse(File.ReadAllText(_temp.NewKey(name, type) + ".pub"));

    [Theory]
    [InlineData("ed25519")]
    [InlineData("ecdsa")]
    [InlineData("rsa")]
    public void Fingerprint_IsWhatSshKeygenPrints(string type)
    {
        var path = _temp.NewKey("k-" + type, type);
        var expected = RemoteTemp.Run("ssh-keygen", "-lf", path + ".pub").Split(' ')[1];
        Assert.StartsWith("SHA256:", expected);
        Assert.Equal(expected, HostKey.Parse(File.ReadAllText(path + ".pub")).Fingerprint);
    }

    [Fact]
    public void HostKey_RefusesAMislabelledOrUnsupportedKey()
    {
        var ed = Key("ed");
        Assert.Throws<FormatException>(() => HostKey.Create("ecdsa-sha2-nistp256", ed.Blob)); // the blob says ssh-ed25519
        Assert.Throws<FormatException>(() => HostKey.Create("ssh-dss", ed.Blob));
        Assert.Throws<FormatException>(() => HostKey.Create("ssh-ed25519", "not base64!"));
        Assert.Throws<FormatException>(() => HostKey.Create("ssh-ed25519", "AAAA"));
        Assert.Equal("rsa-sha2-512,rsa-sha2-256", Key("r", "rsa").HostKeyAlgorithms);
        Assert.Equal("ssh-ed25519", ed.HostKeyAlgorithms);
    }

    [Fact]
    public void ParseKeyscan_SkipsCommentsAndJunk_AndPutsEd25519First()
    {
        var rsa = Key("r", "rsa");
        var ecdsa = Key("e", "ecdsa");
        var ed = Key("d");
        var output = $"# 127.0.0.1:2222 SSH-2.0-OpenSSH_9.2\n[127.0.0.1]:2222 {rsa.PublicKeyLine}\n\nhub {ecdsa.PublicKeyLine}\r\n" +
                     $"garbage line\nhub ssh-ed25519 !!!\nhub {ed.PublicKeyLine}\nhub {ed.PublicKeyLine}\n";
        var keys = HostKey.ParseKeyscan(output);
        Assert.Equal([ed, ecdsa, rsa], keys);
    }

    [Fact]
    public void ScanArguments_PutTheHostAfterDoubleDash()
    {
        var args = HostKeyPins.ScanArguments(ServerAddress.Parse("ops@hub.example.com:2222"));
        Assert.Equal(["-T", "5", "-p", "2222", "-t", "ed25519,ecdsa,rsa", "--", "hub.example.com"], args);
    }

    [Fact]
    public void Pins_RoundTrip_PerHostAndPort()
    {
        var a = Key("a");
        var b = Key("b", "ecdsa");
        var pins = new HostKeyPins(Profile);
        Assert.Null(pins.Get(ServerAddress.Parse("hub")));

        pins.Pin(ServerAddress.Parse("ops@Hub:2222"), a);
        pins.Pin(ServerAddress.Parse("hub"), b);

        var again = new HostKeyPins(Profile);
        Assert.Equal(a, again.Get(ServerAddress.Parse("other@hub:2222")));
        Assert.Equal(b, again.Get(ServerAddress.Parse("hub:22")));
        Assert.Null(again.Get(ServerAddress.Parse("hub:2223")));
        Assert.Equal(["hub:2222", "hub:22"], again.List().Keys.Order().Reverse());

        Assert.True(again.Remove(ServerAddress.Parse("hub:2222")));
        Assert.False(again.Remove(ServerAddress.Parse("hub:2222")));
        Assert.Null(new HostKeyPins(Profile).Get(ServerAddress.Parse("hub:2222")));
        Assert.Equal(b, new HostKeyPins(Profile).Get(ServerAddress.Parse("hub")));
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Pins_AreOwnerOnly_FolderAndFile()
    {
        var pins = new HostKeyPins(Profile);
        pins.Pin(ServerAddress.Parse("hub"), Key("a"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute, File.GetUnixFileMode(Profile));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(pins.FilePath));
    }

    [Fact]
    public void Pins_AreReplacedWhole_NotRewrittenInPlace()
    {
        var pins = new HostKeyPins(Profile);
        pins.Pin(ServerAddress.Parse("hub"), Key("a"));
        var before = File.ReadAllText(pins.FilePath);

        // A reader that opened the file before the write still reads the whole old file: the new one is renamed over it.
        using var reader = new FileStream(pins.FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        pins.Pin(ServerAddress.Parse("hub:2222"), Key("b"));
        Assert.Equal(before, new StreamReader(reader).ReadToEnd());
        Assert.NotEqual(before, File.ReadAllText(pins.FilePath));
        Assert.Equal([HostKeyPins.FileName, HostKeyPins.FileName + ".lock"], Directory.GetFiles(Profile).Select(Path.GetFileName).Order());
    }

    [Fact]
    public async Task ConcurrentPins_LoseNoChange()
    {
        var keys = Enumerable.Range(0, 8).Select(i => Key("k" + i)).ToList();
        await Task.WhenAll(keys.Select((k, i) => Task.Run(() => new HostKeyPins(Profile).Pin(ServerAddress.Parse($"hub:{2200 + i}"), k))));
        var pins = new HostKeyPins(Profile).List();
        Assert.Equal(8, pins.Count);
        Assert.Equal(keys[3], pins["hub:2203"]);
    }

    [Theory]
    [InlineData("{ not json")]
    [InlineData("[1,2]")]
    [InlineData("{\"servers\": {\"hub:22\": {\"key\": \"ssh-ed25519 AAAA\", \"fingerprint\": \"SHA256:x\"}}}")]
    [InlineData("{\"servers\": {\"hub:22\": {\"fingerprint\": \"SHA256:x\"}}}")]
    [InlineData("{\"servers\": {\"hub:22\": null}}")]
    public void ADamagedFile_IsAClearError_NotACrash(string content)
    {
        Directory.CreateDirectory(Profile);
        var pins = new HostKeyPins(Profile);
        File.WriteAllText(pins.FilePath, content);
        var ex = Assert.Throws<ConnectionProfileException>(() => pins.Get(ServerAddress.Parse("hub")));
        Assert.Contains(pins.FilePath, ex.Message, StringComparison.Ordinal);
        Assert.Contains("damaged", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AKeyWhoseRecordedFingerprintDoesNotMatch_IsRefused()
    {
        var pins = new HostKeyPins(Profile);
        pins.Pin(ServerAddress.Parse("hub"), Key("a"));
        var other = Key("b");
        File.WriteAllText(pins.FilePath, File.ReadAllText(pins.FilePath).Replace(pins.Get(ServerAddress.Parse("hub"))!.Fingerprint, other.Fingerprint, StringComparison.Ordinal));
        Assert.Throws<ConnectionProfileException>(() => pins.Get(ServerAddress.Parse("hub")));
    }

    [Fact]
    public void TheProfileFolder_IsTakenFromTheEnvironment()
    {
        var before = Environment.GetEnvironmentVariable(ConnectionProfile.DirectoryVariable);
        try
        {
            Environment.SetEnvironmentVariable(ConnectionProfile.DirectoryVariable, Profile);
            Assert.Equal(Profile, ConnectionProfile.Directory);
            Assert.Equal(Path.Combine(Profile, HostKeyPins.FileName), new HostKeyPins().FilePath);
            Assert.Equal(Path.Combine(Profile, SavedConnections.FileName), new SavedConnections().FilePath);
        }
        finally
        {
            Environment.SetEnvironmentVariable(ConnectionProfile.DirectoryVariable, before);
        }
    }

    [Fact]
    public void Choose_WithAFingerprint_TakesTheKeyThatHasIt_AndOtherwiseNamesExpectedAndOffered()
    {
        var address = ServerAddress.Parse("hub");
        var ed = Key("ed");
        var ec = Key("ec", "ecdsa");
        Assert.Equal(ec, HostKeyPins.Choose(address, [ed, ec], ec.Fingerprint, confirm: null));
        Assert.Equal(ec, HostKeyPins.Choose(address, [ed, ec], ec.Fingerprint["SHA256:".Length..] + "=", confirm: _ => false));

        var wrong = Key("wrong").Fingerprint;
        var ex = Assert.Throws<HostKeyMismatchException>(() => HostKeyPins.Choose(address, [ed, ec], wrong, confirm: _ => true));
        Assert.Equal(wrong, ex.ExpectedFingerprint);
        Assert.Equal([ed.Fingerprint, ec.Fingerprint], ex.OfferedFingerprints);
        Assert.Contains(wrong, ex.Message, StringComparison.Ordinal);
        Assert.Contains(ed.Fingerprint, ex.Message, StringComparison.Ordinal);
        Assert.Contains(ec.Fingerprint, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Choose_WithoutAFingerprint_AsksAboutEd25519_AndNeverTrustsSilently()
    {
        var address = ServerAddress.Parse("hub");
        var rsa = Key("r", "rsa");
        var ed = Key("ed");
        HostKey? shown = null;
        Assert.Equal(ed, HostKeyPins.Choose(address, [rsa, ed], null, k => (shown = k) == k));
        Assert.Equal(ed, shown);

        Assert.Throws<HostKeyNotTrustedException>(() => HostKeyPins.Choose(address, [rsa, ed], null, _ => false));
        var silent = Assert.Throws<HostKeyNotTrustedException>(() => HostKeyPins.Choose(address, [rsa, ed], null, confirm: null));
        Assert.Contains("-HostKeyFingerprint", silent.Message, StringComparison.Ordinal);
        Assert.Throws<SshConnectionException>(() => HostKeyPins.Choose(address, [], null, _ => true));
    }

    [Fact]
    public async Task Resolve_UsesThePin_WithoutScanning_AndRefusesBeforeScanningWhenNothingDecides()
    {
        var never = new HostKeyPins(Profile) { KeyscanPath = Path.Combine(_temp.Dir, "no-such-keyscan") };
        var address = ServerAddress.Parse("hub:2222");

        var refused = await Assert.ThrowsAsync<HostKeyNotTrustedException>(() => never.ResolveAsync(address, null, null, CancellationToken.None));
        Assert.Contains("-HostKeyFingerprint", refused.Message, StringComparison.Ordinal);

        var key = Key("a");
        never.Pin(address, key);
        Assert.Equal(key, await never.ResolveAsync(address, null, null, CancellationToken.None));
        Assert.Equal(key, await never.ResolveAsync(address, key.Fingerprint, null, CancellationToken.None));

        var other = Key("b").Fingerprint;
        var mismatch = await Assert.ThrowsAsync<HostKeyMismatchException>(() => never.ResolveAsync(address, other, null, CancellationToken.None));
        Assert.Contains(key.Fingerprint, mismatch.Message, StringComparison.Ordinal);
        Assert.Contains(other, mismatch.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Scan_WithoutKeyscan_IsAConnectionError()
    {
        var pins = new HostKeyPins(Profile) { KeyscanPath = Path.Combine(_temp.Dir, "no-such-keyscan") };
        var ex = await Assert.ThrowsAsync<SshConnectionException>(() => pins.ScanAsync(ServerAddress.Parse("hub"), CancellationToken.None));
        Assert.Contains("ETPHONEHOME_SSH_KEYSCAN", ex.Message, StringComparison.Ordinal);
    }
}
