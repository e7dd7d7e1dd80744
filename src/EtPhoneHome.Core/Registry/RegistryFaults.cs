using Microsoft.Data.Sqlite;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Faults that mean the registry takes no more writes: SQLite's SQLITE_FULL (13) and SQLITE_IOERR (10), an ENOSPC from
/// a file write, or a PostgreSQL registry that cannot be reached (connection refused, reset or timed out, the server
/// shutting down or not accepting connections, a read-only standby, its disk full). SQLite rolls the failed
/// transaction back whole and PostgreSQL never commits half a transaction, so nothing is half-written. The hub degrades
/// on them (sessions are kept, admissions refused) and every surface names them plainly.
/// </summary>
public static class RegistryFaults
{
    /// <summary>What <see cref="Unwritable"/> calls a PostgreSQL registry it cannot reach.</summary>
    public const string Unreachable = "unreachable";

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
                case Npgsql.PostgresException pg:
                    return PostgresFault(pg.SqlState);
                case Npgsql.NpgsqlException:
                    // Not a server error: the connection itself failed (refused, reset, timed out, TLS).
                    return Unreachable;
            }
        }

        return null;
    }

    /// <summary>
    /// The server errors that mean "no writes now", by SQLSTATE: class 08 (connection exception), 57P01–57P03 (shutting
    /// down, cannot connect now), 25006 (read-only transaction: a standby after a failover), 53100 (its disk is full).
    /// Anything else (a constraint, a bug) is not one: the caller handles it as before.
    /// </summary>
    private static string? PostgresFault(string state) => state switch
    {
        "53100" => "disk full",
        "57P01" or "57P02" or "57P03" or "25006" => Unreachable,
        _ when state.StartsWith("08", StringComparison.Ordinal) => Unreachable,
        _ => null,
    };

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
        if (Postgres(ex) is { } pg)
        {
            // The database's own words (Npgsql's messages carry host and port, never the password), escaped and cut.
            return Unwritable(ex) == Unreachable
                ? $"registry: PostgreSQL not reachable ({Text.UntrustedText.ForTerminal(pg.Message, 200)})"
                : $"registry: PostgreSQL takes no writes ({Text.UntrustedText.ForTerminal(pg.Message, 200)})";
        }

        var mib = FreeMiB(dataDirectory);
        var free = mib is { } n ? $"{n} MiB free" : "free space unknown";
        return Unwritable(ex) == "I/O error" && mib is not 0
            ? $"registry: I/O error writing at {dataDirectory} ({free})"
            : $"registry: disk full at {dataDirectory} ({free})";
    }

    /// <summary>What an operator's verb says when it could not write the registry.</summary>
    public static string ForOperator(Exception ex, string dataDirectory) =>
        $"{Describe(ex, dataDirectory)}; nothing was changed or run; " + (Postgres(ex) is null ? "free space there and retry" : "retry when the database answers");

    private static Npgsql.NpgsqlException? Postgres(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            if (ex is Npgsql.NpgsqlException pg)
            {
                return pg;
            }
        }

        return null;
    }
}
