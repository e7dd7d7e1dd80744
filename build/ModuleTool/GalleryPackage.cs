using System.IO.Compression;
using System.Xml.Linq;

namespace EtPhoneHome.ModuleTool;

/// <summary>
/// A PowerShell Gallery package of the module folder, made without PowerShellGet: the module's files at the
/// package root plus a nuspec whose tags follow the Gallery's conventions (PSModule, PSEdition_*, PSCmdlet_*,
/// PSCommand_*, PSIncludes_Cmdlet), and the OPC parts NuGet packages carry.
/// </summary>
internal static class GalleryPackage
{
    public static readonly XNamespace NuspecNs = "http://schemas.microsoft.com/packaging/2011/08/nuspec.xsd";

    public static IReadOnlyList<string> Tags(ModuleManifest manifest) =>
    [
        .. manifest.Tags,
        "PSModule",
        .. manifest.CompatiblePSEditions.Select(e => "PSEdition_" + e),
        .. manifest.CmdletsToExport.Select(c => "PSCmdlet_" + c),
        .. manifest.CmdletsToExport.Select(c => "PSCommand_" + c),
        "PSIncludes_Cmdlet",
    ];

    public static XDocument Nuspec(string id, ModuleManifest manifest) => new(
        new XDeclaration("1.0", "utf-8", null),
        new XElement(NuspecNs + "package",
            new XElement(NuspecNs + "metadata",
                new XElement(NuspecNs + "id", id),
                new XElement(NuspecNs + "version", manifest.ModuleVersion),
                new XElement(NuspecNs + "authors", manifest.Author),
                new XElement(NuspecNs + "owners", manifest.CompanyName),
                new XElement(NuspecNs + "requireLicenseAcceptance", "false"),
                new XElement(NuspecNs + "licenseUrl", manifest.LicenseUri),
                new XElement(NuspecNs + "projectUrl", manifest.ProjectUri),
                new XElement(NuspecNs + "description", manifest.Description),
                new XElement(NuspecNs + "releaseNotes", manifest.ReleaseNotes),
                new XElement(NuspecNs + "copyright", manifest.Copyright),
                new XElement(NuspecNs + "tags", string.Join(' ', Tags(manifest).Select(t => t.Replace(' ', '_')))))));

    /// <summary>Writes &lt;id&gt;.&lt;version&gt;.nupkg into <paramref name="outputDirectory"/> and returns its path.</summary>
    public static string Write(string moduleDirectory, string id, string outputDirectory)
    {
        var manifestPath = Path.Combine(moduleDirectory, id + ".psd1");
        var manifest = ModuleManifest.Parse(File.ReadAllText(manifestPath));
        Directory.CreateDirectory(outputDirectory);
        var path = Path.Combine(outputDirectory, $"{id}.{manifest.ModuleVersion}.nupkg");
        File.Delete(path);

        var files = Directory.EnumerateFiles(moduleDirectory, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(moduleDirectory, f).Replace('\\', '/'))
            .Order(StringComparer.Ordinal)
            .ToList();
        // Fixed timestamps keep the package byte-for-byte reproducible.
        var stamp = new DateTimeOffset(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);

        void Add(string entryName, Action<Stream> write)
        {
            var entry = zip.CreateEntry(entryName, CompressionLevel.Optimal);
            entry.LastWriteTime = stamp;
            using var stream = entry.Open();
            write(stream);
        }

        Add(id + ".nuspec", s => Nuspec(id, manifest).Save(s));
        foreach (var file in files)
        {
            Add(file, s =>
            {
                using var input = File.OpenRead(Path.Combine(moduleDirectory, file));
                input.CopyTo(s);
            });
        }

        var extensions = files.Select(f => Path.GetExtension(f).TrimStart('.')).Where(e => e.Length > 0)
            .Append("nuspec").Append("rels").Append("psmdcp").Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.Ordinal);
        XNamespace ct = "http://schemas.openxmlformats.org/package/2006/content-types";
        Add("[Content_Types].xml", s => new XDocument(new XElement(ct + "Types",
            extensions.Select(e => new XElement(ct + "Default", new XAttribute("Extension", e), new XAttribute("ContentType", "application/octet")))))
            .Save(s));

        var coreProperties = $"package/services/metadata/core-properties/{manifest.Guid.Replace("-", "", StringComparison.Ordinal)}.psmdcp";
        XNamespace rel = "http://schemas.openxmlformats.org/package/2006/relationships";
        Add("_rels/.rels", s => new XDocument(new XElement(rel + "Relationships",
            new XElement(rel + "Relationship", new XAttribute("Type", "http://schemas.microsoft.com/packaging/2010/07/manifest"),
                new XAttribute("Target", "/" + id + ".nuspec"), new XAttribute("Id", "R1")),
            new XElement(rel + "Relationship", new XAttribute("Type", "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties"),
                new XAttribute("Target", "/" + coreProperties), new XAttribute("Id", "R2")))).Save(s));

        XNamespace cp = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties";
        XNamespace dc = "http://purl.org/dc/elements/1.1/";
        Add(coreProperties, s => new XDocument(new XElement(cp + "coreProperties",
            new XAttribute(XNamespace.Xmlns + "dc", dc),
            new XElement(dc + "creator", manifest.Author),
            new XElement(dc + "description", manifest.Description),
            new XElement(dc + "identifier", id),
            new XElement(cp + "version", manifest.ModuleVersion),
            new XElement(cp + "keywords", string.Join(' ', Tags(manifest))))).Save(s));
        return path;
    }
}
