using Microsoft.Data.Sqlite;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

/// <summary>What <see cref="RegistryMaintenance.Check"/> found in a registry file.</summary>
public sealed record RegistryCheckReport
{
    public required string File { get; init; }
    public required bool Ok { get; init; }
    public required int SchemaVersion { get; init; }
    public required long SizeBytes { get; init; }
    public long Clients { get; init; }
    public long Keys { get; init; }
    /// <summary>What is wrong, one line each (SQLite's integrity_check and foreign_key_check, the schema version).</summary>
    public required IReadOnlyList<string> Problems { get; init; }
}

/// <summary>
/// Backup, restore and check of the SQLite registry: the online backup API (a consistent copy while the hub and
/// operators keep writing), a check that reads every page, and a restore that refuses while a hub runs and keeps the
/// file it replaces.
/// </summary>
public static class RegistryMaintenance
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;

    /// <summary>Reads every page of <paramref name="databaseFile"/> (read-only) and reports what is wrong, if anything.</summary>
    public static RegistryCheckReport Check(string databaseFile)
    {
        ArgumentException.ThrowIfNullOrEmpty(databaseFile);
        var info = new FileInfo(databaseFile);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"no registry file {databaseFile}", databaseFile);
        }

        var problems = new List<string>();
        var schema = 0;
        long clients = 0, keys = 0;
        try
        {
            using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = databaseFile, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
            c.Open();
            foreach (var row in RowTexts(c, "PRAGMA integrity_check"))
            {
                if (!string.Equals(row, "ok", StringComparison.OrdinalIgnoreCase))
                {
                    problems.Add("integrity: " + row);
                }
            }

            foreach (var row in RowTexts(c, "PRAGMA foreign_key_check"))
            {
                problems.Add("foreign key: " + row);
            }

            schema = (int)LongScalar(c, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
            if (schema > RegistryMigrations.LatestVersion)
            {
                problems.Add($"schema version {schema} is newer than this build understands ({RegistryMigrations.LatestVersion})");
            }
            else if (schema == 0)
            {
                problems.Add("no schema version: not a registry");
            }

            clients = LongScalar(c, "SELECT COUNT(*) FROM clients WHERE removed_at IS NULL");
            keys = LongScalar(c, "SELECT COUNT(*) FROM keys");
        }
        catch (SqliteException ex)
        {
            // "file is not a database", a missing table: the file cannot serve as a registry.
            problems.Add("unreadable: " + ex.Message);
        }

        return new RegistryCheckReport
        {
            File = Path.GetFullPath(databaseFile),
            Ok = problems.Count == 0,
            SchemaVersion = schema,
            SizeBytes = info.Length,
            Clients = clients,
            Keys = keys,
            Problems = problems,
        };
    }

    /// <summary>
    /// A consistent copy of the live registry at <paramref name="destination"/> (mode 0600), taken with SQLite's online
    /// backup while other processes keep writing, then checked. An existing destination is replaced only when
    /// <paramref name="overwrite"/> is set.
    /// </summary>
    public static RegistryCheckReport Backup(DataDirectory dir, string destination, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        var target = Path.GetFullPath(destination);
        if (string.Equals(target, Path.GetFullPath(dir.RegistryFile), StringComparison.Ordinal))
        {
            throw new ArgumentException("the backup cannot be the registry file itself");
        }

        if (!File.Exists(dir.RegistryFile))
        {
            throw new FileNotFoundException($"no registry in {dir.Path}", dir.RegistryFile);
        }

        if (File.Exists(target) && !overwrite)
        {
            throw new IOException($"{target} exists; choose another file or allow replacing it");
        }

        var folder = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"the folder of the backup, {folder}, does not exist");
        }

        // Written next to the target and renamed, so a failed backup never leaves a half file under the name asked for.
        var partial = target + ".partial";
        File.Delete(partial);
        CreateOwnerOnly(partial);
        try
        {
            using (var source = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = dir.RegistryFile, Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString()))
            using (var copy = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = partial, Pooling = false }.ToString()))
            {
                source.Open();
                copy.Open();
                source.BackupDatabase(copy);
                using var journal = copy.CreateCommand();
                journal.CommandText = "PRAGMA journal_mode=DELETE";   // one self-contained file, no -wal beside it
                journal.ExecuteScalar();
            }

            var report = Check(partial);
            if (!report.Ok)
            {
                throw new InvalidOperationException($"the copy did not pass the check ({string.Join("; ", report.Problems)}); the live registry may be damaged: run check");
            }

            File.Move(partial, target, overwrite);
            return report with { File = target };
        }
        finally
        {
            File.Delete(partial);
        }
    }

    /// <summary>
    /// Puts a backup in place of the registry. Refused while a hub runs on the data directory, and when the backup
    /// fails the check; the file it replaces is kept as registry.db.replaced-&lt;time&gt;. Returns the backup's report.
    /// </summary>
    public static RegistryCheckReport Restore(DataDirectory dir, string backup, Func<DataDirectory, bool> hubRunning)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentException.ThrowIfNullOrEmpty(backup);
        ArgumentNullException.ThrowIfNull(hubRunning);
        var report = Check(backup);
        if (!report.Ok)
        {
            throw new InvalidOperationException($"{report.File} is not a sound registry ({string.Join("; ", report.Problems)}); nothing was changed");
        }

        if (hubRunning(dir))
        {
            throw new InvalidOperationException($"a hub is running on {dir.Path}; stop it first (nothing was changed)");
        }

        Directory.CreateDirectory(dir.Path);
        var incoming = dir.RegistryFile + ".restoring";
        File.Delete(incoming);
        CreateOwnerOnly(incoming);
        try
        {
            File.Copy(backup, incoming, overwrite: true);
            if (File.Exists(dir.RegistryFile))
            {
                File.Move(dir.RegistryFile, $"{dir.RegistryFile}.replaced-{DateTimeOffset.UtcNow:yyyyMMddTHHmmssZ}");
            }

            // The old file's write-ahead log and shared memory belong to it, not to the restored one.
            File.Delete(dir.RegistryFile + "-wal");
            File.Delete(dir.RegistryFile + "-shm");
            File.Move(incoming, dir.RegistryFile);
        }
        finally
        {
            File.Delete(incoming);
        }

        return report;
    }

    private static void CreateOwnerOnly(string path)
    {
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnly;
        }

        using var _ = new FileStream(path, options);
    }
}
