namespace EtPhoneHome.Agent;

/// <summary>
/// The effective allowed paths: the agent's own list and the server-side list must both admit a path
/// (null list = unrestricted). Paths are compared after making them absolute and resolving symlinks, so
/// neither <c>..</c> nor a link can step outside.
/// </summary>
public sealed class PathPolicy(IReadOnlyList<string>? agentPaths, IReadOnlyList<string>? serverPaths)
{
    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public bool IsUnrestricted => agentPaths is null && serverPaths is null;

    /// <summary>A directory commands may default to when the policy is restricted.</summary>
    public string? DefaultDirectory => (agentPaths ?? serverPaths)?.FirstOrDefault(p => IsAllowed(p));

    public bool IsAllowed(string path)
    {
        if (IsUnrestricted)
        {
            return true;
        }

        var canonical = Canonicalize(path);
        return Admits(agentPaths, canonical) && Admits(serverPaths, canonical);
    }

    private static bool Admits(IReadOnlyList<string>? roots, string canonical)
    {
        if (roots is null)
        {
            return true;
        }

        foreach (var root in roots)
        {
            if (string.IsNullOrWhiteSpace(root))
            {
                continue;
            }

            var r = Canonicalize(root).TrimEnd(Path.DirectorySeparatorChar);
            if (r.Length == 0)
            {
                return true; // "/" admits everything
            }

            if (canonical.Equals(r, PathComparison)
                || canonical.StartsWith(r + Path.DirectorySeparatorChar, PathComparison))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Absolute path with every existing symlink component resolved.</summary>
    public static string Canonicalize(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? string.Empty;
        var current = root;
        var parts = full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
        for (var i = 0; i < parts.Length; i++)
        {
            var next = Path.Combine(current, parts[i]);
            FileSystemInfo? target = null;
            try
            {
                var info = new FileInfo(next);
                if (info.Exists || Directory.Exists(next))
                {
                    target = info.LinkTarget is null ? null : info.ResolveLinkTarget(returnFinalTarget: true);
                }
            }
            catch (IOException)
            {
                target = null;
            }

            if (target is not null)
            {
                // Resolve the target itself (it may contain links) and continue from there.
                next = Canonicalize(target.FullName);
            }
            else if (!File.Exists(next) && !Directory.Exists(next))
            {
                // The rest does not exist: nothing more to resolve.
                return Path.GetFullPath(Path.Combine([next, .. parts[(i + 1)..]]));
            }

            current = next;
        }

        return current;
    }
}
