using System.IO.Compression;
using System.Xml.Linq;
using EtPhoneHome.ModuleTool;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Module;

public sealed class LayoutAndPackageTests : IDisposable
{
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "eph-layout-" + Guid.NewGuid().ToString("N")[..12]);

    public LayoutAndPackageTests() => Directory.CreateDirectory(_temp);

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    private void Stage(params string[] files)
    {
        foreach (var file in files)
        {
            var path = Path.Combine(_temp, "staging", file);
            Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            File.WriteAllText(path, file);
        }
    }

    private static readonly ModuleFileList SampleList = ModuleFileList.Parse(
    [
        "# comment",
        "EtPhoneHome.Cmdlets.dll",
        "deps/EtPhoneHome.Core.dll",
        "deps/runtimes/linux-x64/native/libe_sqlite3.so",
        "!*.pdb",
        "!runtimes/android-*/**",
    ]);

    [Fact]
    public void TheModule_ShipsNoDaemonCode()
    {
        // The hub (admission, sessions, the health monitor, the webhook dispatcher) lives in EtPhoneHome.Hub, which only
        // eph-server uses: the module's Core holds what operators use, and the daemon is not in the module at all.
        Assert.Equal("EtPhoneHome.Hub", typeof(EtPhoneHome.Hub.HubServer).Assembly.GetName().Name);
        Assert.Equal("EtPhoneHome.Hub", typeof(EtPhoneHome.Hub.HealthMonitor).Assembly.GetName().Name);
        Assert.Equal("EtPhoneHome.Hub", typeof(EtPhoneHome.Hub.WebhookDispatcher).Assembly.GetName().Name);
        var shipped = System.IO.Directory.GetFiles(BuiltModule.Directory, "*.dll", SearchOption.AllDirectories).Select(Path.GetFileName).ToList();
        Assert.Contains("EtPhoneHome.Core.dll", shipped);
        Assert.DoesNotContain("EtPhoneHome.Hub.dll", shipped);
        Assert.DoesNotContain(typeof(EtPhoneHome.Core.DataDirectory).Assembly.GetTypes(), t => t.Name is "HubServer" or "HealthMonitor" or "WebhookDispatcher");
    }

    [Fact]
    public void TheFileList_MapsDepsToThePublishOutput_AndCopiesOnlyListedFiles()
    {
        Stage("EtPhoneHome.Cmdlets.dll", "EtPhoneHome.Core.dll", "EtPhoneHome.Core.pdb", "runtimes/linux-x64/native/libe_sqlite3.so", "runtimes/android-arm/native/libe_sqlite3.so");
        Assert.Empty(SampleList.Check(Path.Combine(_temp, "staging")));

        SampleList.CopyTo(Path.Combine(_temp, "staging"), Path.Combine(_temp, "module"));
        var shipped = Directory.GetFiles(Path.Combine(_temp, "module"), "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(Path.Combine(_temp, "module"), f).Replace('\\', '/')).Order().ToList();
        Assert.Equal(["EtPhoneHome.Cmdlets.dll", "deps/EtPhoneHome.Core.dll", "deps/runtimes/linux-x64/native/libe_sqlite3.so"], shipped);
    }

    [Fact]
    public void AnUnlistedAssembly_FailsTheLayout()
    {
        Stage("EtPhoneHome.Cmdlets.dll", "EtPhoneHome.Core.dll", "runtimes/linux-x64/native/libe_sqlite3.so", "AWSSDK.Core.dll");
        var error = Assert.Single(SampleList.Check(Path.Combine(_temp, "staging")));
        Assert.Contains("not in module/files.txt: AWSSDK.Core.dll", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AMissingListedFile_FailsTheLayout()
    {
        Stage("EtPhoneHome.Cmdlets.dll", "runtimes/linux-x64/native/libe_sqlite3.so");
        var error = Assert.Single(SampleList.Check(Path.Combine(_temp, "staging")));
        Assert.Contains("deps/EtPhoneHome.Core.dll", error, StringComparison.Ordinal);
    }

    [Fact]
    public void TheBuiltLayout_IsExactlyTheFileList()
    {
        var list = ModuleFileList.Parse(File.ReadAllLines(Path.Combine(BuiltModule.RepoRoot, "module", "files.txt")));
        var shipped = Directory.GetFiles(BuiltModule.Directory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(BuiltModule.Directory, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(list.Files.Order(StringComparer.Ordinal).ToList(), shipped);
    }

    [Fact]
    public void ThePackage_HoldsTheModuleAndANuspecMatchingTheManifest()
    {
        var path = GalleryPackage.Write(BuiltModule.Directory, "EtPhoneHome", _temp);
        var manifest = ModuleManifest.Parse(File.ReadAllText(Path.Combine(BuiltModule.Directory, "EtPhoneHome.psd1")));
        Assert.Equal($"EtPhoneHome.{manifest.ModuleVersion}.nupkg", Path.GetFileName(path));

        using var zip = ZipFile.OpenRead(path);
        var entries = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
        foreach (var file in new[] { "EtPhoneHome.psd1", "EtPhoneHome.Cmdlets.dll", "EtPhoneHome.format.ps1xml", "en-US/EtPhoneHome.Cmdlets.dll-Help.xml", "en-US/about_EtPhoneHome.help.txt", "deps/EtPhoneHome.Core.dll", "LICENSE", "[Content_Types].xml", "_rels/.rels" })
        {
            Assert.Contains(file, entries);
        }

        // Every file of the layout is in the package, and nothing of it outside the layout but the package parts.
        var layout = Directory.GetFiles(BuiltModule.Directory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(BuiltModule.Directory, f).Replace('\\', '/')).ToHashSet(StringComparer.Ordinal);
        Assert.Subset(entries, layout);
        Assert.All(entries.Except(layout), e => Assert.True(e is "EtPhoneHome.nuspec" or "[Content_Types].xml" or "_rels/.rels" || e.StartsWith("package/services/metadata/", StringComparison.Ordinal), e));

        XNamespace ns = GalleryPackage.NuspecNs;
        using var nuspecStream = zip.GetEntry("EtPhoneHome.nuspec")!.Open();
        var metadata = XDocument.Load(nuspecStream).Root!.Element(ns + "metadata")!;
        Assert.Equal("EtPhoneHome", metadata.Element(ns + "id")!.Value);
        Assert.Equal(manifest.ModuleVersion, metadata.Element(ns + "version")!.Value);
        Assert.Equal(manifest.Author, metadata.Element(ns + "authors")!.Value);
        Assert.Equal(manifest.Description, metadata.Element(ns + "description")!.Value);
        Assert.Equal(manifest.ProjectUri, metadata.Element(ns + "projectUrl")!.Value);
        Assert.Equal(manifest.LicenseUri, metadata.Element(ns + "licenseUrl")!.Value);
        var tags = metadata.Element(ns + "tags")!.Value.Split(' ');
        Assert.Contains("PSModule", tags);
        Assert.Contains("PSEdition_Core", tags);
        Assert.All(manifest.CmdletsToExport, c =>
        {
            Assert.Contains("PSCmdlet_" + c, tags);
            Assert.Contains("PSCommand_" + c, tags);
        });
        Assert.All(manifest.Tags, t => Assert.Contains(t, tags));
    }

    [Fact]
    public void ThePackage_IsReproducible()
    {
        var first = File.ReadAllBytes(GalleryPackage.Write(BuiltModule.Directory, "EtPhoneHome", Path.Combine(_temp, "a")));
        var second = File.ReadAllBytes(GalleryPackage.Write(BuiltModule.Directory, "EtPhoneHome", Path.Combine(_temp, "b")));
        Assert.Equal(first, second);
    }
}
