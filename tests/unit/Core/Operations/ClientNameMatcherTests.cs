using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class ClientNameMatcherTests
{
    [Theory]
    [InlineData("web-*", true)]
    [InlineData("web-0?", true)]
    [InlineData("web-01", false)]
    [InlineData("", false)]
    public void IsWildcard_DetectsStarAndQuestionMark(string pattern, bool expected) =>
        Assert.Equal(expected, ClientNameMatcher.IsWildcard(pattern));

    [Theory]
    [InlineData("web-*", "WEB-01", true)]
    [InlineData("web-0?", "web-01", true)]
    [InlineData("web-0?", "web-011", false)]
    [InlineData("*db*", "prod-db-2", true)]
    [InlineData("web.01", "webx01", false)] // regex characters are literal
    [InlineData("Web-01", "web-01", true)]
    [InlineData("web", "web-01", false)] // whole-value match, not substring
    public void IsMatch_IsCaseInsensitiveAndWhole(string pattern, string value, bool expected) =>
        Assert.Equal(expected, ClientNameMatcher.IsMatch(pattern, value));

    [Fact]
    public void Select_ReportsUnmatchedLiterals_ButNotUnmatchedWildcards()
    {
        var registry = new FakeFleet();
        registry.AddClient("3f2a-1", "web-01", true, 1);
        registry.AddClient("3f2a-2", "web-02", false);
        registry.AddClient("9b1c-3", "db-01", true, 2);

        var lookup = ClientNameMatcher.Select(registry.Clients, ["web-*", "nosuch", "mail-*", "DB-01"], ["9B1C-3", "missing-id"]);

        Assert.Equal(["web-01", "web-02", "db-01"], lookup.Clients.Select(c => c.DisplayName));
        Assert.Equal(["nosuch", "missing-id"], lookup.NotFound);
    }

    [Fact]
    public void Select_MatchesUuidsByName()
    {
        var clients = new[] { new ClientRecord { Uuid = "3f2a9c1e-aaaa", DisplayName = "web", FirstSeen = default, LastSeen = default } };
        Assert.Single(ClientNameMatcher.Select(clients, ["3f2a*"], null).Clients);
    }
}
