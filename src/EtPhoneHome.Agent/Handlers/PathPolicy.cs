using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// The effective allowed paths: the agent's own list and the server-side list must both admit a path
/// (a null list = unrestricted). Every file operation, transfer and command working directory goes through
/// <see cref="Resolve"/> or <see cref="ResolveForWrite"/> before anything is touched. Rules (docs/path-policy.md):
/// <list type="bullet">
/// <item>Paths must be absolute; relative paths, NUL bytes and (on Windows) device, UNC and stream paths are refused.</item>
/// <item>Resolution works like realpath(3), one component at a time: every existing symbolic link is replaced
/// by its target before the next component (so <c>link/..</c> means the parent of the link's target, as the
/// kernel sees it), <c>.</c>, duplicate and trailing separators vanish, missing components are kept as written.</item>
/// <item>A root admits itself and paths below it at a separator boundary: <c>/data</c> admits <c>/data/x</c>, never <c>/database</c>.</item>
/// <item>Comparison is ordinal on Linux and case-insensitive on Windows and macOS (their default file systems).</item>
/// </list>
/// </summary>
public sealed class PathPolicy(IReadOnlyList<string>? agentPaths, IReadOnlyList<string>? serverPaths)
{
    /// <summary>Longest chain of symbolic links followed (as Linux's MAXSYMLINKS) before a path is refused.</summary>
    public const int MaxSymlinkHops = 40;

    private static readonly StringComparison PathComparison =
        OperatingSystem.IsWindows() || OperatingSystem.IsMacOS() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;

    public bool IsUnrestricted => agentPaths is null && serverPaths is null;

    /// <summary>A directory commands may default to when the policy is restricted.</summary>
    public string? DefaultDirectory => (agentPaths ?? serverPaths)?.FirstOrDefault(p => !string.IsNullOrWhiteSpace(p) && IsAllowed(p));

    /// <summary>True when <paramref name="path"/> is well-formed and its canonical form is admitted.</summary>
    public bool IsAllowed(string path)
    {
        if (Problem(path) is not null)
        {
            return false;
        }

        return IsUnrestricted || AdmitsCanonical(Canonicalize(path));
    }

    /// <summary>
    /// Canonical path of an existing or future file or directory that may be read (symlinks followed);
    /// PATH_DENIED when it is malformed or outside the allowed paths. <paramref name="field"/> names the parameter in errors.
    /// </summary>
    public string Resolve(string? path, string field = "path")
    {
        var canonical = CanonicalOrFault(path, field);
        if (!AdmitsCanonical(canonical))
        {
            throw Denied(field, path!);
        }

        return canonical;
    }

    /// <summary>
    /// Canonical destination of a write: the parent directory is resolved (symlinks followed) and must be admitted;
    /// the last component must not be a symbolic link (writes never go through a link) nor a directory.
    /// </summary>
    public string ResolveForWrite(string? path, string field = "path")
    {
        CanonicalOrFault(path, field); // shape checks and a clear error first
        var trimmed = Path.TrimEndingDirectorySeparator(path!);
        var name = Path.GetFileName(trimmed);
        var parent = Path.GetDirectoryName(trimmed);
        if (string.IsNullOrEmpty(name) || parent is null || name is "." or "..")
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"{field} must name a file, got {Shorten(path!)}");
        }

        var target = Path.Join(Canonicalize(parent), name);
        if (!AdmitsCanonical(target))
        {
            throw Denied(field, path!);
        }

        var info = new FileInfo(target);
        if (info.LinkTarget is not null)
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"{field} is a symbolic link; writes never follow a link: {Shorten(path!)}");
        }

        if (Directory.Exists(target))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"{field} is a directory: {Shorten(path!)}");
        }

        return target;
    }

    /// <summary>
    /// Closes the window between check and use for an opened file on Linux: the kernel's name of what was actually
    /// opened (<c>/proc/self/fd/N</c>) must still be admitted. Elsewhere this re-resolves the path.
    /// </summary>
    public void VerifyOpened(SafeFileHandle handle, string checkedPath, string field = "path")
    {
        if (IsUnrestricted)
        {
            return;
        }

        string? actual = null;
        if (OperatingSystem.IsLinux())
        {
            try
            {
                actual = new FileInfo($"/proc/self/fd/{handle.DangerousGetHandle()}").LinkTarget;
            }
            catch (IOException)
            {
                actual = null;
            }
        }

        actual ??= Canonicalize(checkedPath);
        if (!AdmitsCanonical(actual))
        {
            throw Denied(field, checkedPath);
        }
    }

    /// <summary>True when a canonical path is inside both lists.</summary>
    public bool AdmitsCanonical(string canonical) => Admits(agentPaths, canonical) && Admits(serverPaths, canonical);

    private static string CanonicalOrFault(string? path, string field)
    {
        if (string.IsNullOrEmpty(path))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"{field} is required (an absolute path)");
        }

        if (Problem(path) is { } problem)
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"{field} {problem}: {Shorten(path)}");
        }

        try
        {
            return Canonicalize(path);
        }
        catch (RpcFault)
        {
            throw;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"{field} cannot be resolved: {Shorten(path)}");
        }
    }

    /// <summary>Why a path is refused before resolution, or null.</summary>
    private static string? Problem(string path)
    {
        if (path.Contains('\0', StringComparison.Ordinal))
        {
            return "contains a NUL byte";
        }

        if (OperatingSystem.IsWindows())
        {
            if (path.StartsWith(@"\\", StringComparison.Ordinal) || path.StartsWith("//", StringComparison.Ordinal))
            {
                return "is a UNC or device path";
            }

            if (path.IndexOf(':', 2) >= 0)
            {
                return "names an alternate data stream";
            }
        }

        return Path.IsPathFullyQualified(path) ? null : "must be an absolute path";
    }

    private static bool Admits(IReadOnlyList<string>? roots, string canonical)
    {
        if (roots is null)
        {
            return true;
        }

        foreach (var root in roots)
        {
            if (string.IsNullOrWhiteSpace(root) || Problem(root) is not null)
            {
                continue; // a malformed configured root admits nothing
            }

            var r = Path.TrimEndingDirectorySeparator(Canonicalize(root));
            if (r.Length == 0 || r == Path.GetPathRoot(r) && IsRoot(r))
            {
                return true; // "/" (or "C:\") admits everything on it
            }

            if (canonical.Equals(r, PathComparison)
                || (canonical.Length > r.Length && canonical.StartsWith(r, PathComparison) && IsSeparator(canonical[r.Length])))
            {
                return true;
            }
        }

        return false;
    }

    private static bool IsRoot(string path) => Path.TrimEndingDirectorySeparator(path).Length <= (Path.GetPathRoot(path)?.Length ?? 0);

    private static bool IsSeparator(char c) => c == Path.DirectorySeparatorChar || c == Path.AltDirectorySeparatorChar;

    /// <summary>
    /// Absolute path with every existing symbolic link resolved, component by component (like realpath(3));
    /// components that do not exist are appended as written, with <c>.</c> and <c>..</c> applied lexically.
    /// </summary>
    public static string Canonicalize(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        // Never Path.GetFullPath on an absolute path: it applies ".." lexically, before links are resolved.
        var full = Path.IsPathFullyQualified(path) ? path : Path.GetFullPath(path);
        if (OperatingSystem.IsWindows())
        {
            full = full.Replace(Path.AltDirectorySeparatorChar, Path.DirectorySeparatorChar);
        }

        var root = Path.GetPathRoot(full) ?? string.Empty;
        var pending = new Stack<string>(Split(full[root.Length..]).Reverse());
        var current = root;
        var hops = 0;
        var exists = true;
        while (pending.Count > 0)
        {
            var part = pending.Pop();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current; // parent of a real path: no link left to misjudge
                continue;
            }

            var next = Path.Join(current, part);
            if (!exists)
            {
                current = next;
                continue;
            }

            string? link = null;
            try
            {
                link = new FileInfo(next).LinkTarget;
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                link = null;
            }

            if (link is not null)
            {
                if (++hops > MaxSymlinkHops)
                {
                    throw new RpcFault(RpcErrorCodes.PathDenied, $"too many levels of symbolic links in {Shorten(path)}");
                }

                // Replace the link by its target's components and continue from there.
                var targetParts = Split(Path.IsPathRooted(link) ? link[(Path.GetPathRoot(link)?.Length ?? 0)..] : link);
                foreach (var p in targetParts.Reverse())
                {
                    pending.Push(p);
                }

                if (Path.IsPathRooted(link))
                {
                    current = Path.GetPathRoot(link) is { Length: > 0 } linkRoot ? linkRoot : root;
                }

                continue;
            }

            exists = File.Exists(next) || Directory.Exists(next);
            current = next;
        }

        return current;
    }

    private static IEnumerable<string> Split(string relative) =>
        relative.Split([Path.DirectorySeparatorChar, Path.AltDirectorySeparatorChar], StringSplitOptions.RemoveEmptyEntries);

    private static RpcFault Denied(string field, string path) =>
        new(RpcErrorCodes.PathDenied, $"{field} is outside the allowed paths: {Shorten(path)}");

    internal static string Shorten(string path)
    {
        var clean = path.Replace('\0', '�');
        return clean.Length <= 200 ? clean : string.Concat(clean.AsSpan(0, 200), "…");
    }
}

/// <summary>Opens files for the agent without following a symbolic link in the last component (O_NOFOLLOW on Linux).</summary>
internal static class NoFollow
{
    private const int OReadOnly = 0;
    private const int OWriteOnly = 1;
    private const int OCreate = 0x40;
    private const int ONoFollow = 0x20000;
    private const int OCloseOnExec = 0x80000;
    private const int Eloop = 40;

    /// <summary>Opens for reading; on Linux a link swapped in after the policy check is refused (ELOOP → PATH_DENIED).</summary>
    public static FileStream OpenRead(string path, int bufferSize)
    {
        if (OperatingSystem.IsLinux())
        {
            return new FileStream(OpenLinux(path, OReadOnly, 0), FileAccess.Read, bufferSize, isAsync: false);
        }

        return new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize, FileOptions.SequentialScan);
    }

    /// <summary>Opens (creating with mode 0600) for writing without truncating; never through a link on Linux.</summary>
    public static FileStream OpenWrite(string path, int bufferSize)
    {
        if (OperatingSystem.IsLinux())
        {
            return new FileStream(OpenLinux(path, OWriteOnly | OCreate, Convert.ToInt32("600", 8)), FileAccess.Write, bufferSize, isAsync: false);
        }

        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.Write, Share = FileShare.None, BufferSize = bufferSize };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        return new FileStream(path, options);
    }

    private static SafeFileHandle OpenLinux(string path, int flags, int mode)
    {
        var fd = Open(path, flags | ONoFollow | OCloseOnExec, mode);
        if (fd >= 0)
        {
            return new SafeFileHandle(fd, ownsHandle: true);
        }

        var errno = Marshal.GetLastPInvokeError();
        throw errno switch
        {
            2 => new FileNotFoundException("no such file", path),
            13 => new UnauthorizedAccessException("permission denied by the file system"),
            21 => new RpcFault(RpcErrorCodes.InvalidParams, $"path is a directory: {PathPolicy.Shorten(path)}"),
            Eloop => new RpcFault(RpcErrorCodes.PathDenied, $"path is a symbolic link (refused, never followed): {PathPolicy.Shorten(path)}"),
            _ => new IOException($"open failed (errno {errno})"),
        };
    }

    [DllImport("libc", EntryPoint = "open", SetLastError = true)]
    private static extern int Open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags, int mode);
}
