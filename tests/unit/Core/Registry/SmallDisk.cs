using System.Diagnostics;
using EtPhoneHome.Core;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// A real, small file system (tmpfs) holding a data directory, and a filler file that takes its free space. Needs root
/// (mount); <see cref="Available"/> is false otherwise and the tests that need it say so and return.
/// </summary>
internal sealed class SmallDisk : IDisposable
{
    private readonly string _mount;
    private readonly string _filler;

    private SmallDisk(string mount)
    {
        _mount = mount;
        _filler = Path.Combine(mount, "filler");
        Data = new DataDirectory(Path.Combine(mount, "data"));
    }

    public DataDirectory Data { get; }

    public static bool Available => OperatingSystem.IsLinux() && Environment.UserName == "root" && File.Exists("/bin/mount");

    /// <summary>Mounts a tmpfs of <paramref name="sizeKiB"/> KiB in a new temporary directory.</summary>
    public static SmallDisk Mount(int sizeKiB = 2048)
    {
        var dir = Directory.CreateTempSubdirectory("eph-smalldisk-").FullName;
        Run("mount", "-t", "tmpfs", "-o", $"size={sizeKiB}k,mode=0700", "tmpfs", dir);
        return new SmallDisk(dir);
    }

    /// <summary>Takes every free byte (the filler grows until the file system refuses).</summary>
    public void Fill()
    {
        using var file = new FileStream(_filler, FileMode.Append, FileAccess.Write);
        var chunk = new byte[4096];
        try
        {
            while (true)
            {
                file.Write(chunk);
                file.Flush();
            }
        }
        catch (IOException)
        {
            // Full.
        }
    }

    /// <summary>Gives the space back.</summary>
    public void Free() => File.Delete(_filler);

    public void Dispose()
    {
        try
        {
            Run("umount", "-l", _mount);
        }
        finally
        {
            try
            {
                Directory.Delete(_mount);
            }
            catch (IOException)
            {
                // Left for the temp cleaner.
            }
        }
    }

    private static void Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', args)} failed: {p.StandardError.ReadToEnd()}");
        }
    }
}
