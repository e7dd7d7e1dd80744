using EtPhoneHome.Core.Operations;

namespace EtPhoneHome.Core.Files;

/// <summary>
/// Where a download from several clients lands on the operator's machine: one sub-directory per client under the
/// destination, named after the client. A display name can come from the client itself (the identity an agent claims
/// when its key is first approved), so it is never trusted as a path: separators, <c>..</c>, device names and other
/// characters a file name cannot hold are replaced, and the result is checked to stay under the destination.
/// </summary>
public static class DownloadLocations
{
    private const int MaxFolderNameLength = 100;

    private static readonly HashSet<string> DeviceNames = new(StringComparer.OrdinalIgnoreCase)
    {
        "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8", "COM9",
        "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
    };

    /// <summary>
    /// The local path for <paramref name="target"/>: <paramref name="destination"/> itself when there is one target,
    /// else a directory (ending in a separator) named after the client under it.
    /// </summary>
    public static string For(string destination, FleetTarget target, int targetCount)
    {
        ArgumentException.ThrowIfNullOrEmpty(destination);
        ArgumentNullException.ThrowIfNull(target);
        if (targetCount <= 1)
        {
            return destination;
        }

        var folder = Path.Join(destination, FolderName(target));
        var root = Path.GetFullPath(destination);
        var full = Path.GetFullPath(folder);
        if (!full.StartsWith(Path.TrimEndingDirectorySeparator(root) + Path.DirectorySeparatorChar, OperatingSystem.IsWindows() ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal))
        {
            // Unreachable with FolderName's rules; kept so a later change to them cannot write outside the destination.
            throw new InvalidOperationException($"the download folder of {target.Describe()} would leave '{destination}'");
        }

        return folder + Path.DirectorySeparatorChar;
    }

    /// <summary>A single path segment for the client: its display name made safe, or its uuid when nothing of the name is left.</summary>
    public static string FolderName(FleetTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        var invalid = Path.GetInvalidFileNameChars();
        var chars = (target.DisplayName ?? "").Trim().Select(c =>
            c is '/' or '\\' or ':' or '*' or '?' or '"' or '<' or '>' or '|' || char.IsControl(c) || invalid.Contains(c) ? '_' : c).ToArray();
        var name = new string(chars).Trim().TrimEnd('.', ' ');
        if (name.Length > MaxFolderNameLength)
        {
            name = name[..MaxFolderNameLength];
        }

        if (name.Length == 0 || name.All(c => c is '.' or '_'))
        {
            return Uuid(target);
        }

        var stem = name.Split('.')[0];
        name = DeviceNames.Contains(stem) ? "_" + name : name;

        // Registered names are unique, but two names made safe can meet ("web/1" and "web_1"): a changed name carries
        // the start of the uuid so two clients never share a folder.
        return name == target.DisplayName ? name : $"{name}-{Uuid(target)[..Math.Min(8, target.Uuid.Length)]}";
    }

    private static string Uuid(FleetTarget target) =>
        new(target.Uuid.Select(c => char.IsAsciiLetterOrDigit(c) || c == '-' ? c : '_').ToArray());
}
