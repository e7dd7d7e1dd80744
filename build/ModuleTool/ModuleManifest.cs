using System.Text.RegularExpressions;

namespace EtPhoneHome.ModuleTool;

/// <summary>
/// The fields of module/EtPhoneHome.psd1 the package needs. A deliberately small reader for the project's own
/// manifest ('single-quoted' strings and @('lists')), not a general PowerShell data-file parser.
/// </summary>
internal sealed partial record ModuleManifest(
    string ModuleVersion,
    string Guid,
    string Author,
    string CompanyName,
    string Copyright,
    string Description,
    string PowerShellVersion,
    IReadOnlyList<string> CompatiblePSEditions,
    IReadOnlyList<string> CmdletsToExport,
    IReadOnlyList<string> FormatsToProcess,
    IReadOnlyList<string> Tags,
    string ProjectUri,
    string LicenseUri,
    string ReleaseNotes)
{
    public static ModuleManifest Parse(string text)
    {
        string Scalar(string key)
        {
            var m = Regex.Match(text, $@"(?m)^\s*{key}\s*=\s*'((?:[^']|'')*)'");
            if (!m.Success)
            {
                throw new FormatException($"the manifest has no {key} = '...'");
            }

            return m.Groups[1].Value.Replace("''", "'", StringComparison.Ordinal);
        }

        IReadOnlyList<string> List(string key)
        {
            var m = Regex.Match(text, $@"(?ms)^\s*{key}\s*=\s*@\((.*?)\)");
            if (!m.Success)
            {
                throw new FormatException($"the manifest has no {key} = @(...)");
            }

            return [.. Regex.Matches(m.Groups[1].Value, "'((?:[^']|'')*)'").Select(x => x.Groups[1].Value.Replace("''", "'", StringComparison.Ordinal))];
        }

        return new ModuleManifest(Scalar("ModuleVersion"), Scalar("GUID"), Scalar("Author"), Scalar("CompanyName"), Scalar("Copyright"),
            Scalar("Description"), Scalar("PowerShellVersion"), List("CompatiblePSEditions"), List("CmdletsToExport"), List("FormatsToProcess"),
            List("Tags"), Scalar("ProjectUri"), Scalar("LicenseUri"), Scalar("ReleaseNotes"));
    }

    /// <summary>Sets ModuleVersion (the build's single product version).</summary>
    public static string StampVersion(string text, string version) =>
        VersionPattern().Replace(text, m => m.Groups[1].Value + version + "'", 1);

    [GeneratedRegex(@"(ModuleVersion\s*=\s*')[^']*'")]
    private static partial Regex VersionPattern();
}
