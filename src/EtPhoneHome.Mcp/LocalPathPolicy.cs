using EtPhoneHome.Core;

namespace EtPhoneHome.Mcp;

/// <summary>
/// Which server paths MCP tools may read or write (<c>local_path</c> of upload, download and exchange
/// tools). A model must not be able to read <c>~/.ssh</c> or the registry through the server, so only
/// configured directories are allowed: <c>--allow-local-dir</c> (repeatable), or by default the data
/// directory's <c>exchange/</c> folder. Paths are made absolute and resolved through symbolic links of
/// existing parts before the check, so <c>..</c> and links cannot step outside.
/// </summary>
public sealed class LocalPathPolicy
{
    private readonly string[] _roots;

    public LocalPathPolicy(IEnumerable<string> allowedDirectories)
    {
        ArgumentNullException.ThrowIfNull(allowedDirectories);
        _roots = allowedDirectories.Where(d => !string.IsNullOrWhiteSpace(d)).Select(Canonical).Distinct(Comparer).ToArray();
    }

    /// <summary>The default folder for local files: <c>&lt;data&gt;/exchange</c>.</summary>
    public static string DefaultDirectory(DataDirectory data)
    {
        ArgumentNullException.ThrowIfNull(data);
        return Path.Combine(data.Path, "exchange");
    }

    /// <summary>The policy of a server: the configured directories, or the data directory's exchange folder.</summary>
    public static LocalPathPolicy For(McpServerSettings settings, DataDirectory data)
    {
        ArgumentNullException.ThrowIfNull(settings);
        return new LocalPathPolicy(settings.AllowedLocalDirectories.Count > 0 ? settings.AllowedLocalDirectories : [DefaultDirectory(data)]);
    }

    public IReadOnlyList<string> Roots => _roots;

    private static StringComparison Comparison => OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    private static StringComparer Comparer => OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal;

    /// <summary>
    /// The canonical form of <paramref name="path"/> when it lies inside an allowed directory; otherwise a
    /// PATH_DENIED tool failure naming the allowed directories.
    /// </summary>
    public string Resolve(string parameter, string? path)
    {
        var given = ToolArguments.Required(parameter, path, ToolArguments.MaxPathLength);
        if (!Path.IsPathFullyQualified(given))
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} must be an absolute path on the server (got '{given}')");
        }

        var canonical = Canonical(given);
        foreach (var root in _roots)
        {
            if (IsInside(canonical, root))
            {
                return canonical;
            }
        }

        throw new ToolFailure(
            ToolErrorCodes.PathDenied,
            $"{parameter} '{given}' is outside the server directories MCP may use",
            _roots.Length == 0
                ? "No server directory is allowed; start the MCP server with --allow-local-dir DIR."
                : $"Use a path under {string.Join(", ", _roots)} (configured with --allow-local-dir).",
            new Dictionary<string, object?> { ["allowed_directories"] = _roots });
    }

    private static bool IsInside(string path, string root)
    {
        if (string.Equals(path, root, Comparison))
        {
            return true;
        }

        var prefix = root.EndsWith(Path.DirectorySeparatorChar) ? root : root + Path.DirectorySeparatorChar;
        return path.StartsWith(prefix, Comparison);
    }

    /// <summary>Absolute, normalised, with every existing part's symbolic links resolved.</summary>
    internal static string Canonical(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "";
        var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        var current = root;
        for (var i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (!info.Exists)
            {
                // The rest does not exist yet (a file to be written): nothing more to resolve.
                return Path.Combine([next, .. parts[(i + 1)..]]);
            }

            var target = info.ResolveLinkTarget(returnFinalTarget: true);
            current = target is null ? next : Path.GetFullPath(target.FullName);
        }

        return current.Length > root.Length ? current.TrimEnd(Path.DirectorySeparatorChar) : current;
    }
}
