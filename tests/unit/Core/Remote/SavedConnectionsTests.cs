using EtPhoneHome.Core.Remote;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

public sealed class SavedConnectionsTests : IDisposable
{
    private readonly RemoteTemp _temp = new();

    public void Dispose() => _temp.Dispose();

    private string Profile => Path.Combine(_temp.Dir, "profile");

    [Fact]
    public void Save_Get_List_Remove_RoundTrip_WithThePinnedFingerprint()
    {
        var identity = _temp.NewKey("id");
        var host = HostKey.Parse(File.ReadAllText(_temp.NewKey("host") + ".pub"));
        var prod = ServerAddress.Parse("ops@hub.example.com:2222", identity);
        new HostKeyPins(Profile).Pin(prod, host);

        var saved = new SavedConnections(Profile);
        Assert.Null(saved.Get("prod"));
        saved.Save("prod", prod);
        saved.Save("lab-1.x", ServerAddress.Parse("[::1]:2200"));

        var again = new SavedConnections(Profile);
        var got = again.Get("prod")!;
        Assert.Equal(prod, got.Address);
        Assert.Equal(host.Fingerprint, got.PinnedFingerprint);
        Assert.Null(again.Get("lab-1.x")!.PinnedFingerprint);
        Assert.Equal(["lab-1.x", "prod"], again.List().Select(c => c.Name));

        Assert.True(again.Remove("prod"));
        Assert.False(again.Remove("prod"));
        Assert.Equal(["lab-1.x"], new SavedConnections(Profile).List().Select(c => c.Name));
    }

    [Theory]
    [InlineData("")]
    [InlineData("-prod")]
    [InlineData("prod/../x")]
    [InlineData("pro d")]
    [InlineData("prod\u202E")]
    [InlineData("p@q")]
    public void Names_AreValidated(string name)
    {
        var saved = new SavedConnections(Profile);
        Assert.False(SavedConnections.IsValidName(name));
        Assert.Throws<ArgumentException>(() => saved.Save(name, ServerAddress.Parse("hub")));
        Assert.Throws<ArgumentException>(() => saved.Get(name));
        Assert.True(SavedConnections.IsValidName(new string('a', 64)));
        Assert.False(SavedConnections.IsValidName(new string('a', 65)));
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{\"connections\": {\"prod\": {\"server\": \"-oProxyCommand=x\"}}}")]
    [InlineData("{\"connections\": {\"-bad\": {\"server\": \"hub\"}}}")]
    [InlineData("{\"connections\": {\"prod\": {}}}")]
    public void ADamagedFile_IsAClearError(string content)
    {
        Directory.CreateDirectory(Profile);
        var saved = new SavedConnections(Profile);
        File.WriteAllText(saved.FilePath, content);
        var ex = Assert.Throws<ConnectionProfileException>(() => saved.List());
        Assert.Contains("damaged", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void TheFile_IsOwnerOnly()
    {
        var saved = new SavedConnections(Profile);
        saved.Save("prod", ServerAddress.Parse("hub"));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(saved.FilePath));
    }
}
