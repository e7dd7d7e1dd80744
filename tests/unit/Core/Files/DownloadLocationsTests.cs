using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Files;

/// <summary>
/// A download from several clients writes one folder per client under the destination. The folder is named after the
/// client, whose name the client itself may have chosen (the identity claimed when its key was first approved): the
/// name is a hostile path until proven otherwise.
/// </summary>
public sealed class DownloadLocationsTests : IDisposable
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "eph-dl-" + Guid.NewGuid().ToString("N"));

    public void Dispose()
    {
        if (Directory.Exists(_root))
        {
            Directory.Delete(_root, recursive: true);
        }
    }

    private static FleetTarget Target(string name, string uuid = "0f1e2d3c-aaaa-bbbb-cccc-000000000001") => new(uuid, name, null);

    [Fact]
    public void OneTarget_WritesToTheDestinationItself()
    {
        Assert.Equal(_root, DownloadLocations.For(_root, Target("../../etc"), 1));
    }

    [Fact]
    public void SeveralTargets_GetAFolderNamedAfterEachClient()
    {
        Assert.Equal(Path.Join(_root, "web-01") + Path.DirectorySeparatorChar, DownloadLocations.For(_root, Target("web-01"), 2));
    }

    [Theory]
    [InlineData("..")]
    [InlineData("../../root/.ssh")]
    [InlineData("..\\..\\Windows")]
    [InlineData("/etc")]
    [InlineData("C:\\Windows")]
    [InlineData("a/../../b")]
    [InlineData("...")]
    [InlineData(" ")]
    [InlineData("CON")]
    [InlineData("nul.txt")]
    public void AHostileName_StaysOneFolderUnderTheDestination(string name)
    {
        var local = DownloadLocations.For(_root, Target(name), 3);

        var full = Path.GetFullPath(local);
        Assert.StartsWith(Path.GetFullPath(_root) + Path.DirectorySeparatorChar, full);
        Assert.Equal(Path.GetFullPath(_root), Path.GetDirectoryName(Path.TrimEndingDirectorySeparator(full)));
        var folder = Path.GetFileName(Path.TrimEndingDirectorySeparator(full));
        Assert.DoesNotContain('/', folder);
        Assert.DoesNotContain('\\', folder);
        Assert.NotEqual("..", folder);
        Assert.NotEqual(".", folder);
        Assert.False(string.Equals(folder.Split('.')[0], "CON", StringComparison.OrdinalIgnoreCase) || string.Equals(folder.Split('.')[0], "NUL", StringComparison.OrdinalIgnoreCase));
    }

    [Fact]
    public void TwoNamesMadeSafeAlike_NeverShareAFolder()
    {
        var a = DownloadLocations.For(_root, Target("web/1", "aaaaaaaa-0000"), 2);
        var b = DownloadLocations.For(_root, Target("web_1", "bbbbbbbb-0000"), 2);
        var c = DownloadLocations.For(_root, Target("web:1", "cccccccc-0000"), 2);

        Assert.Equal(3, new[] { a, b, c }.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void ANameWithNothingLeft_UsesTheUuid()
    {
        Assert.Equal("0f1e2d3c-aaaa-bbbb-cccc-000000000001", DownloadLocations.FolderName(Target("..")));
    }
}
