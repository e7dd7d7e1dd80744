using EtPhoneHome.Agent;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>
/// Hostile paths against a real directory tree with real symlinks (Linux rules: ordinal comparison).
/// Layout under a temp root T:
///   T/data/            allowed
///   T/data/ok.txt
///   T/data/sub/
///   T/data/escape  -> T/secret        (a link planted inside the allowed dir pointing out)
///   T/data/inner   -> T/data/sub      (a link that stays inside)
///   T/data/up      -> ..              (relative link to T)
///   T/database/    (prefix trick)
///   T/secret/key
///   T/swapped      -> T/secret        (a parent dir replaced by a link; allowed list names T/swapped's old real path)
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class PathPolicyTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("eph-policy-").FullName;
    private readonly PathPolicy _policy;

    public PathPolicyTests()
    {
        Directory.CreateDirectory(P("data/sub"));
        Directory.CreateDirectory(P("database"));
        Directory.CreateDirectory(P("secret"));
        File.WriteAllText(P("data/ok.txt"), "ok");
        File.WriteAllText(P("secret/key"), "k");
        File.CreateSymbolicLink(P("data/escape"), P("secret"));
        File.CreateSymbolicLink(P("data/inner"), P("data/sub"));
        File.CreateSymbolicLink(P("data/up"), "..");
        File.CreateSymbolicLink(P("data/loop1"), P("data/loop2"));
        File.CreateSymbolicLink(P("data/loop2"), P("data/loop1"));
        _policy = new PathPolicy([P("data")], null);
    }

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string P(string relative) => Path.Combine(_root, relative);

    public static TheoryData<string, bool> Cases => new()
    {
        { "data", true },
        { "data/", true },
        { "data//ok.txt", true },
        { "data/./ok.txt", true },
        { "data/sub/../ok.txt", true },
        { "data/not-yet/new.txt", true },                 // missing components are fine inside
        { "data/inner/x", true },                         // a link that stays inside
        { "database", false },                            // prefix trick
        { "database/x", false },
        { "data/../database", false },
        { "data/../secret/key", false },                  // .. out
        { "data/sub/../../secret/key", false },
        { "data/escape", false },                         // planted link pointing out
        { "data/escape/key", false },
        { "data/escape/../data/ok.txt", true },           // link/.. is the parent of the link's TARGET (T), then back in
        { "data/inner/../escape", false },                // inner/.. = data → data/escape → out
        { "data/up/secret/key", false },                  // relative link to the parent
        { "data/up/data/ok.txt", true },
        { "secret", false },
        { "", false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void IsAllowed_HostileTable(string relative, bool allowed)
    {
        var path = relative.Length == 0 ? _root : P(relative);
        Assert.Equal(allowed, _policy.IsAllowed(path));
        if (!allowed)
        {
            var fault = Assert.Throws<RpcFault>(() => _policy.Resolve(path));
            Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
        }
    }

    [Theory]
    [InlineData("relative/path")]
    [InlineData("./data")]
    [InlineData("../etc/passwd")]
    public void RelativePaths_AreDenied(string path)
    {
        var fault = Assert.Throws<RpcFault>(() => _policy.Resolve(path));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
        Assert.Contains("absolute", fault.Message);
    }

    [Fact]
    public void NulByte_IsDenied_EvenWhenUnrestricted()
    {
        var open = new PathPolicy(null, null);
        var fault = Assert.Throws<RpcFault>(() => open.Resolve(P("data/ok.txt") + "\0/../../secret"));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
        Assert.Contains("NUL", fault.Message);
    }

    [Fact]
    public void EmptyPath_IsInvalidParams()
    {
        Assert.Equal(RpcErrorCodes.InvalidParams, Assert.Throws<RpcFault>(() => _policy.Resolve("")).Code);
    }

    [Fact]
    public void SymlinkLoop_IsDenied()
    {
        var fault = Assert.Throws<RpcFault>(() => _policy.Resolve(P("data/loop1/x")));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
    }

    [Fact]
    public void ParentSwappedForLink_IsDenied()
    {
        // Allowed while "data/sub" is a real directory…
        Assert.True(_policy.IsAllowed(P("data/sub/file")));
        // …then the directory is replaced by a link pointing out: the same path is now refused.
        Directory.Delete(P("data/sub"));
        File.CreateSymbolicLink(P("data/sub"), P("secret"));
        Assert.False(_policy.IsAllowed(P("data/sub/key")));
    }

    [Fact]
    public void BothLists_MustAdmit()
    {
        var policy = new PathPolicy([P("data")], [P("data/sub")]);
        Assert.True(policy.IsAllowed(P("data/sub/x")));
        Assert.False(policy.IsAllowed(P("data/ok.txt")));
        Assert.False(new PathPolicy([P("data")], []).IsAllowed(P("data/ok.txt"))); // an empty list admits nothing
    }

    [Fact]
    public void RootEntry_AdmitsEverything()
    {
        Assert.True(new PathPolicy(["/"], null).IsAllowed(P("secret/key")));
    }

    [Fact]
    public void AllowedRootThatIsALink_IsResolvedToo()
    {
        File.CreateSymbolicLink(P("alias"), P("data"));
        var policy = new PathPolicy([P("alias")], null);
        Assert.True(policy.IsAllowed(P("data/ok.txt")));
        Assert.False(policy.IsAllowed(P("secret/key")));
    }

    [Fact]
    public void ResolveForWrite_RefusesALinkLeaf_EvenOneStayingInside()
    {
        File.CreateSymbolicLink(P("data/link.txt"), P("data/ok.txt"));
        var fault = Assert.Throws<RpcFault>(() => _policy.ResolveForWrite(P("data/link.txt")));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
        Assert.Contains("symbolic link", fault.Message);
    }

    [Fact]
    public void ResolveForWrite_ThroughLinkedParentOutside_IsDenied()
    {
        var fault = Assert.Throws<RpcFault>(() => _policy.ResolveForWrite(P("data/escape/new.txt")));
        Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
    }

    [Fact]
    public void ResolveForWrite_ReturnsCanonicalTarget()
    {
        Assert.Equal(P("data/sub/new.txt"), _policy.ResolveForWrite(P("data/inner/new.txt")));
    }

    [Fact]
    public void ResolveForWrite_ADirectory_IsInvalidParams()
    {
        Assert.Equal(RpcErrorCodes.InvalidParams, Assert.Throws<RpcFault>(() => _policy.ResolveForWrite(P("data/sub"))).Code);
    }

    [Fact]
    public void Canonicalize_ResolvesLinkThenDotDotLikeTheKernel()
    {
        // data/escape → T/secret, so data/escape/.. is T (what open(2) would see), not T/data.
        Assert.Equal(_root, PathPolicy.Canonicalize(P("data/escape/..")));
    }
}
