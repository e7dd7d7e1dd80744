using System.Text.RegularExpressions;

namespace EtPhoneHome.ModuleTool;

/// <summary>
/// module/files.txt: every file the module ships, as a path inside the module folder, one a line. deps/X comes
/// from X in the staging folder (the publish output plus the module sources and generated help); anything else
/// from the same path there. Lines starting with '!' are globs of staging files deliberately not shipped. A
/// listed file that is missing, or a staging file neither listed nor excluded (a new dependency, say), fails.
/// </summary>
internal sealed class ModuleFileList
{
    public const string DependencyPrefix = "deps/";

    private ModuleFileList(IReadOnlyList<string> files, IReadOnlyList<string> exclusions)
    {
        Files = files;
        Exclusions = exclusions;
    }

    public IReadOnlyList<string> Files { get; }
    public IReadOnlyList<string> Exclusions { get; }

    public static ModuleFileList Parse(IEnumerable<string> lines)
    {
        var files = new List<string>();
        var exclusions = new List<string>();
        foreach (var raw in lines)
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            if (line.StartsWith('!'))
            {
                exclusions.Add(line[1..].Trim());
            }
            else
            {
                files.Add(line.Replace('\\', '/'));
            }
        }

        return new ModuleFileList(files, exclusions);
    }

    /// <summary>The staging path a listed module path comes from.</summary>
    public static string SourceOf(string modulePath) =>
        modulePath.StartsWith(DependencyPrefix, StringComparison.Ordinal) ? modulePath[DependencyPrefix.Length..] : modulePath;

    /// <summary>Problems with a staging folder: listed files that are missing, files that are neither listed nor excluded.</summary>
    public IReadOnlyList<string> Check(string stagingDirectory)
    {
        var errors = new List<string>();
        var sources = Files.Select(SourceOf).ToHashSet(StringComparer.Ordinal);
        foreach (var file in Files.Where(f => !File.Exists(Path.Combine(stagingDirectory, SourceOf(f)))))
        {
            errors.Add($"listed in module/files.txt but not built: {file} (expected {SourceOf(file)} in the publish output)");
        }

        var patterns = Exclusions.Select(GlobToRegex).ToList();
        foreach (var path in Directory.EnumerateFiles(stagingDirectory, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(stagingDirectory, path).Replace('\\', '/');
            if (!sources.Contains(relative) && !patterns.Any(p => p.IsMatch(relative)))
            {
                errors.Add($"not in module/files.txt: {relative} appeared in the publish output; list it (deps/{relative} for a dependency) or exclude it with '!'");
            }
        }

        return errors;
    }

    /// <summary>Copies the listed files into the module folder (which is recreated).</summary>
    public void CopyTo(string stagingDirectory, string moduleDirectory)
    {
        if (Directory.Exists(moduleDirectory))
        {
            Directory.Delete(moduleDirectory, recursive: true);
        }

        foreach (var file in Files)
        {
            var destination = Path.Combine(moduleDirectory, file);
            Directory.CreateDirectory(Path.GetDirectoryName(destination)!);
            File.Copy(Path.Combine(stagingDirectory, SourceOf(file)), destination);
        }
    }

    /// <summary>'*' matches within a path segment, '**' across segments.</summary>
    public static Regex GlobToRegex(string glob)
    {
        var pattern = Regex.Escape(glob)
            .Replace(@"\*\*/", "(.*/)?", StringComparison.Ordinal)
            .Replace(@"\*\*", ".*", StringComparison.Ordinal)
            .Replace(@"\*", "[^/]*", StringComparison.Ordinal)
            .Replace(@"\?", "[^/]", StringComparison.Ordinal);
        return new Regex("^" + pattern + "$", RegexOptions.CultureInvariant);
    }
}
