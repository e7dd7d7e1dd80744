using Microsoft.Data.Sqlite;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Faults that mean the registry's file system takes no more writes: SQLite's SQLITE_FULL (13) and SQLITE_IOERR (10),
/// or an ENOSPC from a file write. SQLite rolls the failed transaction back whole, so nothing is half-written; reads go
/// on working. The hub degrades on them (sessions are kept, admissions refused) and every surface names them plainly.
/// </summary>
public static class RegistryFaults
{
    private const int SqliteIoErr = 10;
    private const int SqliteFull = 13;
    private const int Enospc = 28;
    private const int WindowsDiskFull = unchecked((int)0x80070070);

    /// <summary>"disk full" or "I/O error" when <paramref name="ex"/> (or an inner exception) is such a fault; null otherwise.</summary>
    public static string? Unwritable(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case SqliteException { SqliteErrorCode: SqliteFull }:
                    return "disk full";
                case SqliteException { SqliteErrorCode: SqliteIoErr }:
                    return "I/O error";
                case IOException io when io.HResult is Enospc or WindowsDiskFull:
                    return "disk full";
            }
        }

        return null;
    }

    /// <summary>True when <paramref name="ex"/> is a fault of <see cref="Unwritable"/>.</summary>
    public static bool IsUnwritable(Exception? ex) => Unwritable(ex) is not null;

    /// <summary>Free space of the file system holding <paramref name="path"/>, in MiB; null when it cannot be read.</summary>
    public static long? FreeMiB(string path) => FreeBytes(path) / (1024 * 1024);

    /// <summary>Free space of the file system holding <paramref name="path"/>, in bytes; null when it cannot be read.</summary>
    public static long? FreeBytes(string path)
    {
        try
        {
            return new DriveInfo(path).AvailableFreeSpace;
        }
        catch (Exception ex) when (ex is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>
    /// The warning a reader of the registry gives when its file system has less than a MiB free; null otherwise. With the
    /// disk full the hub keeps its sessions but cannot record their heartbeats, so readers show online clients offline.
    /// </summary>
    public static string? LowSpaceWarning(string dataDirectory) =>
        FreeBytes(dataDirectory) is < 1024 * 1024
            ? $"registry: disk full at {dataDirectory} ({FreeMiB(dataDirectory)} MiB free); heartbeats are not being recorded, so connected "
              + "clients show offline, and nothing that must be recorded (commands, file operations, key decisions) can run; free space there"
            : null;

    /// <summary>
    /// "registry: disk full at DIR (N MiB free)", or "I/O error writing at DIR …" for an I/O error while the file system
    /// still has a MiB free (SQLite reports a full disk as an I/O error when it cannot even create its WAL index).
    /// </summary>
    public static string Describe(Exception ex, string dataDirectory)
    {
        var mib = FreeMiB(dataDirectory);
        var free = mib is { } n ? $"{n} MiB free" : "free space unknown";
        return Unwritable(ex) == "I/O error" && mib is not 0
            ? $"registry: I/O error writing at {dataDirectory} ({free})"
            : $"registry: disk full at {dataDirectory} ({free})";
    }

    /// <summary>What an operator's verb says when it could not write the registry.</summary>
    public static string ForOperator(Exception ex, string dataDirectory) =>
        $"{Describe(ex, dataDirectory)}; nothing was changed or run; free space there and retry";
}
