using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

public sealed class FleetTargetsTests
{
    [Fact]
    public void Resolve_OnlineClientsGetSessions_OthersAreOffline()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001, "web");
        registry.AddClient("u2", "web-02", false, 0, "web");
        registry.AddClient("u3", "db-01", true, 40003, "db");

        var resolution = FleetTargets.Resolve(registry.Stores(), new TargetSelection { Tags = ["web"] });

        Assert.Equal(["web-01", "web-02"], resolution.Targets.Select(t => t.DisplayName));
        Assert.Equal(40001, resolution.Targets[0].Session?.TunnelPort);
        Assert.Null(resolution.Targets[1].Session);
        Assert.Empty(resolution.NotFound);
    }

    [Fact]
    public void Resolve_ByClientNameOrUuid_ReportsUnknownOnes()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001);
        registry.AddClient("u2", "web-02", true, 40002);

        var resolution = FleetTargets.Resolve(registry.Stores(), new TargetSelection { Clients = ["u2", "web-01", "ghost"] });

        Assert.Equal(["web-01", "web-02"], resolution.Targets.Select(t => t.DisplayName));
        Assert.Equal(["ghost"], resolution.NotFound);
    }

    [Fact]
    public void ResolveOrRefuse_AnyUnknownName_RefusesTheWholeSelection_NamingEveryUnknownName()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001);
        registry.AddClient("u2", "web-02", true, 40002);

        var ex = Assert.Throws<UnknownClientsException>(() =>
            FleetTargets.ResolveOrRefuse(registry.Stores(), new TargetSelection { Clients = ["web-01", "web-2", "ghost"] }));

        Assert.Equal(["web-2", "ghost"], ex.Names);
        Assert.Equal("no client named 'web-2', 'ghost'; nothing was run", ex.Message);
    }

    [Fact]
    public void ResolveOrRefuse_AWildcardThatMatchesNothing_IsNotAnError()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001);

        Assert.Empty(FleetTargets.ResolveOrRefuse(registry.Stores(), new TargetSelection { Clients = ["db-*"] }));
        Assert.Equal(["web-01"], FleetTargets.ResolveOrRefuse(registry.Stores(), new TargetSelection { Clients = ["web-*", "db-*"] }).Select(t => t.DisplayName));
    }

    [Fact]
    public void Resolve_AnEmptySelection_IsRefused_NeverTheWholeFleet()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001);

        Assert.Throws<ArgumentException>(() => FleetTargets.Resolve(registry.Stores(), new TargetSelection()));
        Assert.Throws<ArgumentException>(() => FleetTargets.ResolveOrRefuse(registry.Stores(), new TargetSelection { Clients = [] }));
        Assert.Equal(["web-01"], FleetTargets.ResolveOrRefuse(registry.Stores(), new TargetSelection { All = true }).Select(t => t.DisplayName));
    }

    [Fact]
    public void RevokedOrMismatchedKey_IsDenied()
    {
        var registry = new FakeFleet();
        registry.AddClient("u1", "web-01", true, 40001);
        registry.Clients.Add(registry.AddClient("u2", "web-02", true, 40002) with { KeyMismatch = true });
        registry.Clients.RemoveAt(1);
        registry.Keys[0] = registry.Keys[0] with { Status = KeyStatus.Revoked };

        var targets = FleetTargets.FromClients(registry.Stores(), registry.Clients);

        Assert.All(targets, t => Assert.NotNull(t.DeniedReason));
        Assert.Contains("revoked", targets[0].DeniedReason);
        Assert.Contains("mismatch", targets[1].DeniedReason);
    }

    [Fact]
    public void Describe_ShowsNameAndShortUuid() =>
        Assert.Equal("client 'web-01' (3f2a9c1e…)", new FleetTarget("3f2a9c1e-1111-2222", "web-01", null).Describe());
}
