using System.Management.Automation;
using System.Xml.Linq;
using EtPhoneHome.ModuleTool;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Module;

public sealed class FormatAndManifestTests
{
    private static readonly System.Reflection.Assembly Cmdlets = typeof(GetEphClientCommand).Assembly;

    private static string ModuleSource(string file) => Path.Combine(BuiltModule.RepoRoot, "module", file);

    /// <summary>The types the module writes: every [OutputType] of a cmdlet, and every public class that is not a cmdlet, completer or collection.</summary>
    private static IReadOnlyList<Type> OutputTypes()
    {
        var declared = Cmdlets.GetTypes()
            .SelectMany(t => t.GetCustomAttributesData().Where(a => a.AttributeType == typeof(OutputTypeAttribute)))
            .SelectMany(a => a.ConstructorArguments)
            .SelectMany(arg => arg.Value is IEnumerable<System.Reflection.CustomAttributeTypedArgument> items ? items.Select(i => i.Value) : [arg.Value])
            .OfType<Type>();
        var publicClasses = Cmdlets.GetExportedTypes()
            .Where(t => t.IsClass && !t.IsAbstract && !typeof(Cmdlet).IsAssignableFrom(t)
                && !typeof(IArgumentCompleter).IsAssignableFrom(t) && !typeof(IModuleAssemblyInitializer).IsAssignableFrom(t)
                && !typeof(System.Collections.IEnumerable).IsAssignableFrom(t)); // EphList, EphMap: property types, not output
        return [.. declared.Concat(publicClasses).Distinct()];
    }

    private static XDocument Formats() => XDocument.Load(ModuleSource("EtPhoneHome.format.ps1xml"));

    [Fact]
    public void EveryOutputType_HasATableOrListView()
    {
        var viewed = Formats().Descendants("TypeName").Select(e => e.Value).ToHashSet(StringComparer.Ordinal);
        var types = OutputTypes();
        Assert.Contains(typeof(EphClient), types);
        Assert.Contains(typeof(EphConfigurationInfo), types);
        Assert.All(types, t => Assert.True(viewed.Contains(t.FullName!), $"{t.FullName} has no view in module/EtPhoneHome.format.ps1xml"));
    }

    [Fact]
    public void EveryView_NamesAnExistingType_AndItsProperties()
    {
        foreach (var view in Formats().Descendants("View"))
        {
            var name = view.Element("Name")!.Value;
            var typeName = view.Element("ViewSelectedBy")!.Element("TypeName")!.Value;
            var type = Cmdlets.GetType(typeName);
            Assert.True(type is not null, $"view {name} names {typeName}, which the Cmdlets assembly does not define");
            foreach (var property in view.Descendants("PropertyName").Select(p => p.Value))
            {
                Assert.True(type!.GetProperty(property) is not null, $"view {name}: {typeName} has no property {property}");
            }
        }

        Assert.Equal(Formats().Descendants("View").Count(), Formats().Descendants("View").Select(v => v.Element("Name")!.Value).Distinct().Count());
    }

    [Fact]
    public void TheClientTable_ShowsNameOnlineTagsPurposeLastSeen_AndResultsTheFirstOutputLine()
    {
        var tables = Formats().Descendants("View").Where(v => v.Element("TableControl") is not null)
            .ToDictionary(v => v.Element("ViewSelectedBy")!.Element("TypeName")!.Value, v => v.Descendants("Label").Select(l => l.Value).ToList());
        Assert.Equal(["Name", "Online", "Tags", "Purpose", "LastSeen"], tables["EtPhoneHome.EphClient"]);
        Assert.Equal(["PSComputerName", "Status", "ExitCode", "Duration", "Output"], tables["EtPhoneHome.EphCommandResult"]);
    }

    [Fact]
    public void NoView_ShowsASecret()
    {
        Assert.DoesNotContain("secret", File.ReadAllText(ModuleSource("EtPhoneHome.format.ps1xml")).Replace("Secrets never appear", "", StringComparison.Ordinal), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void TheManifest_IsGalleryReady()
    {
        var manifest = ModuleManifest.Parse(File.ReadAllText(ModuleSource("EtPhoneHome.psd1")));
        Assert.Equal("7.4", manifest.PowerShellVersion);
        Assert.Equal(["Core"], manifest.CompatiblePSEditions);
        Assert.Equal(["EtPhoneHome.format.ps1xml"], manifest.FormatsToProcess);
        Assert.DoesNotContain(manifest.CmdletsToExport, c => c.Contains('*', StringComparison.Ordinal));
        Assert.NotEmpty(manifest.Tags);
        Assert.StartsWith("https://", manifest.ProjectUri, StringComparison.Ordinal);
        Assert.EndsWith("/LICENSE", manifest.LicenseUri, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(BuiltModule.RepoRoot, "LICENSE")));
        Assert.False(string.IsNullOrWhiteSpace(manifest.ReleaseNotes));
    }

    [Fact]
    public void TheBuiltManifest_CarriesTheProductVersion()
    {
        var props = XDocument.Load(Path.Combine(BuiltModule.RepoRoot, "Directory.Build.props"));
        var version = props.Descendants("EphVersion").Single().Value;
        var built = ModuleManifest.Parse(File.ReadAllText(Path.Combine(BuiltModule.Directory, "EtPhoneHome.psd1")));
        Assert.Equal(version, built.ModuleVersion);
        Assert.Equal(version + ".0", System.Reflection.AssemblyName.GetAssemblyName(BuiltModule.CmdletsAssembly).Version!.ToString());
    }

    [Fact]
    public void StampVersion_ChangesOnlyModuleVersion()
    {
        var text = File.ReadAllText(ModuleSource("EtPhoneHome.psd1"));
        var stamped = ModuleManifest.StampVersion(text, "9.8.7");
        Assert.Equal("9.8.7", ModuleManifest.Parse(stamped).ModuleVersion);
        Assert.Equal(text.Length - "0.1.0".Length + "9.8.7".Length, stamped.Length);
    }
}
