using EtPhoneHome.Core.Remote;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Core.Remote;

public sealed class ServerAddressTests
{
    [Theory]
    [InlineData("hub.example.com", "hub.example.com", 22, null)]
    [InlineData("ops@hub.example.com:2222", "hub.example.com", 2222, "ops")]
    [InlineData("ops@hub.example.com", "hub.example.com", 22, "ops")]
    [InlineData("10.0.0.5:2200", "10.0.0.5", 2200, null)]
    [InlineData("[::1]:2222", "::1", 2222, null)]
    [InlineData("ops@[fe80::1]", "fe80::1", 22, "ops")]
    [InlineData("::1", "::1", 22, null)]
    [InlineData("  a_b.c-d@Hub-1.example.com:65535 ", "Hub-1.example.com", 65535, "a_b.c-d")]
    public void Parse_ReadsUserHostAndPort(string text, string host, int port, string? user)
    {
        var address = ServerAddress.Parse(text);
        Assert.Equal(host, address.HostName);
        Assert.Equal(port, address.Port);
        Assert.Equal(user, address.User);
        Assert.Null(address.KeyFile);
        Assert.Equal(address, ServerAddress.Parse(address.ToString()));
    }

    [Theory]
    [InlineData("ops@hub.example.com:2222", "ops@hub.example.com:2222")]
    [InlineData("hub:22", "hub")]
    [InlineData("[::1]:2222", "[::1]:2222")]
    [InlineData("[::1]", "[::1]")]
    public void ToString_WritesWhatParseReads(string text, string expected) => Assert.Equal(expected, ServerAddress.Parse(text).ToString());

    [Theory]
    [InlineData("-oProxyCommand=touch /tmp/pwned")]
    [InlineData("-oProxyCommand=sh")]
    [InlineData("ops@-oProxyCommand=x")]
    [InlineData("-oProxyCommand=x@hub")]
    [InlineData("-l@hub")]
    [InlineData("hub;rm -rf ~")]
    [InlineData("hub example")]
    [InlineData("hub\n-oProxyCommand=x")]
    [InlineData("$(id)@hub")]
    [InlineData("`id`")]
    [InlineData("hub:0")]
    [InlineData("hub:65536")]
    [InlineData("hub:-1")]
    [InlineData("hub:22x")]
    [InlineData("hub:")]
    [InlineData("[::1")]
    [InlineData("[::1]x")]
    [InlineData("@hub")]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("hub/evil")]
    [InlineData("h\u202Eub")]
    public void Parse_RefusesHostileOrMalformedInput(string text)
    {
        var ex = Assert.Throws<FormatException>(() => ServerAddress.Parse(text));
        Assert.False(EtPhoneHome.Core.Text.UntrustedText.HasUnsafeCharacters(ex.Message), ex.Message);
    }

    [Fact]
    public void TheProperties_RefuseOptionsToo_NotOnlyParse()
    {
        Assert.Throws<ArgumentException>(() => new ServerAddress("-oProxyCommand=x"));
        Assert.Throws<ArgumentException>(() => new ServerAddress("hub") { User = "-oProxyCommand=x" });
        Assert.Throws<ArgumentException>(() => new ServerAddress("hub") { User = "" });
        Assert.Throws<ArgumentException>(() => new ServerAddress("hub") { User = new string('u', 65) });
        Assert.Throws<ArgumentException>(() => new ServerAddress(new string('h', 254)));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServerAddress("hub") { Port = 0 });
        Assert.Throws<ArgumentOutOfRangeException>(() => new ServerAddress("hub") { Port = 65536 });
        Assert.Throws<ArgumentException>(() => ServerAddress.Parse("hub") with { HostName = "-x" });
    }

    [Fact]
    public void KeyFile_MustExist_AndHoldNothingSshExpands()
    {
        using var temp = new RemoteTemp();
        var key = temp.NewKey("id");
        var address = ServerAddress.Parse("ops@hub", key);
        Assert.Equal(Path.GetFullPath(key), address.KeyFile);

        Assert.Throws<FormatException>(() => ServerAddress.Parse("ops@hub", Path.Combine(temp.Dir, "missing")));
        var percent = Path.Combine(temp.Dir, "id%h");
        File.Copy(key, percent);
        Assert.Throws<ArgumentException>(() => new ServerAddress("hub") { KeyFile = percent });
        var dollar = Path.Combine(temp.Dir, "id${HOME}");
        File.Copy(key, dollar);
        Assert.Throws<ArgumentException>(() => new ServerAddress("hub") { KeyFile = dollar });
    }

    [Fact]
    public void PinKey_IsHostAndPort_InLowerCase_WithIPv6InBrackets()
    {
        Assert.Equal("hub.example.com:22", ServerAddress.Parse("ops@Hub.Example.COM").PinKey);
        Assert.Equal("[::1]:2222", ServerAddress.Parse("[::1]:2222").PinKey);
        Assert.Equal(ServerAddress.Parse("a@hub:2222").PinKey, ServerAddress.Parse("b@hub:2222").PinKey);
    }
}
