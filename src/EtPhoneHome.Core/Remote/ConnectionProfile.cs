using System.Text;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The operator's own settings folder, where pinned host keys and saved connections live:
/// <c>$ETPHONEHOME_CONFIG_DIR</c> when set, else <c>%APPDATA%\EtPhoneHome</c> on Windows and
/// <c>$XDG_CONFIG_HOME/etphonehome</c> (<c>~/.config/etphonehome</c>) elsewhere. On Unix the folder is 0700 and its
/// files 0600; files are replaced whole (written beside, then renamed), so a reader never sees half a file.
/// </summary>
public static class ConnectionProfile
{
    /// <summary>Overrides the folder (tests, portable installs).</summary>
    public const string DirectoryVariable = "ETPHONEHOME_CONFIG_DIR";

    /// <summary>The folder, from the environment as it is now.</summary>
    public static string Directory
    {
        get
        {
            var overridden = Environment.GetEnvironmentVariable(DirectoryVariable);
            if (!string.IsNullOrWhiteSpace(overridden))
            {
                return Path.GetFullPath(overridden);
            }

            if (OperatingSystem.IsWindows())
            {
                return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.ApplicationData), "EtPhoneHome");
            }

            var xdg = Environment.GetEnvironmentVariable("XDG_CONFIG_HOME");
            if (!string.IsNullOrWhiteSpace(xdg) && Path.IsPathRooted(xdg))
            {
                return Path.Combine(xdg, "etphonehome");
            }

            return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".config", "etphonehome");
        }
    }

    /// <summary>Creates <paramref name="directory"/> if needed (0700 on Unix) and returns it.</summary>
    public static string EnsureDirectory(string directory)
    {
        if (OperatingSystem.IsWindows())
        {
            System.IO.Directory.CreateDirectory(directory);
        }
        else
        {
            System.IO.Directory.CreateDirectory(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return directory;
    }

    /// <summary>
    /// Runs <paramref name="update"/> (a read, change and <see cref="WritePrivateFile"/> of <paramref name="path"/>) while holding
    /// <c>path.lock</c> exclusively, so two sessions changing the file at once do not lose one change. Waits up to 10 s for the lock.
    /// </summary>
    public static T Update<T>(string path, Func<T> update)
    {
        ArgumentNullException.ThrowIfNull(update);
        EnsureDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        var clock = System.Diagnostics.Stopwatch.StartNew();
        FileStream? held = null;
        while (held is null)
        {
            try
            {
                held = new FileStream(path + ".lock", options);
            }
            catch (IOException ex) when (ex is not FileNotFoundException and not DirectoryNotFoundException)
            {
                if (clock.Elapsed > TimeSpan.FromSeconds(10))
                {
                    throw new ConnectionProfileException($"{path}.lock is held by another process for more than 10 s; try again", ex);
                }

                Thread.Sleep(25);
            }
        }

        using (held)
        {
            return update();
        }
    }

    /// <summary>
    /// Replaces <paramref name="path"/> with <paramref name="content"/> atomically: written to a temporary file in the same
    /// folder (0600 on Unix), flushed to disk, then renamed over the old file.
    /// </summary>
    public static void WritePrivateFile(string path, string content)
    {
        var directory = EnsureDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        var temp = Path.Combine(directory, "." + Path.GetFileName(path) + "." + Guid.NewGuid().ToString("N")[..12] + ".tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using (var stream = new FileStream(temp, options))
            {
                var bytes = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false).GetBytes(content);
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }
}

/// <summary>A file of the operator's profile (pins, saved connections) cannot be read or is not what it should be.</summary>
public sealed class ConnectionProfileException(string message, Exception? inner = null) : Exception(message, inner);
