using Microsoft.Data.Sqlite;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

/// <summary>What <see cref="RegistryMaintenance.Check(string)"/> found in a registry file, or <see cref="RegistryMaintenance.Check(RegistrySource)"/> in a PostgreSQL registry.</summary>
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
    public static RegistryCheckReport Backup(DataDirectory dir, RegistrySource registry, string destination, bool overwrite = false)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentException.ThrowIfNullOrEmpty(destination);
        RefuseForPostgres(dir, registry, "backup");
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
    public static RegistryCheckReport Restore(DataDirectory dir, RegistrySource registry, string backup, Func<DataDirectory, bool> hubRunning)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentException.ThrowIfNullOrEmpty(backup);
        ArgumentNullException.ThrowIfNull(hubRunning);
        RefuseForPostgres(dir, registry, "restore");
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

    /// <summary>
    /// Backup and restore copy a SQLite file. A data directory whose registry is PostgreSQL has no such file that
    /// counts (a stale registry.db may lie there): copying it would look like a backup and hold nothing current.
    /// </summary>
    private static void RefuseForPostgres(DataDirectory dir, RegistrySource registry, string verb)
    {
        ArgumentNullException.ThrowIfNull(registry);
        if (registry.IsPostgres)
        {
            throw new InvalidOperationException(
                $"the registry of {dir.Path} is PostgreSQL ({registry}), not a file: {verb} copies SQLite registries only. "
                + "Use PostgreSQL's own tools, which stay consistent while hubs write: pg_dump --format=custom to back it up, "
                + "pg_restore --clean --single-transaction (hubs stopped) to restore it; check verifies it. Nothing was changed");
        }
    }

    /// <summary>
    /// Checks a PostgreSQL registry read-only: it answers, its schema and tables exist, its schema version is one this
    /// build understands; counts clients and keys and sums the size of the schema's tables. The engine itself keeps
    /// pages and foreign keys sound (SQLite's page check has no counterpart to run here).
    /// </summary>
    public static RegistryCheckReport Check(RegistrySource registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        if (!registry.IsPostgres)
        {
            throw new ArgumentException("a SQLite registry is checked by its file", nameof(registry));
        }

        var problems = new List<string>();
        var schema = 0;
        long clients = 0, keys = 0, size = 0;
        using var engine = new PostgresEngine(registry);
        try
        {
            using var c = engine.Open();
            using var tx = c.BeginTransaction(System.Data.IsolationLevel.RepeatableRead);
            Exec(c, tx, "SET TRANSACTION READ ONLY");
            if (Scalar<long>(c, tx, "SELECT COUNT(*) FROM pg_namespace WHERE nspname = @s", ("@s", engine.Schema)) == 0)
            {
                problems.Add($"no schema {engine.Schema}: not a registry (hubs create it when they first open it)");
            }
            else if (Scalar<long>(c, tx, "SELECT COUNT(*) FROM pg_tables WHERE schemaname = @s AND tablename = 'schema_version'", ("@s", engine.Schema)) == 0)
            {
                problems.Add("no schema version: not a registry");
            }
            else
            {
                schema = (int)Scalar<long>(c, tx, "SELECT COALESCE(MAX(version), 0) FROM schema_version");
                if (schema > PostgresMigrations.LatestVersion)
                {
                    problems.Add($"schema version {schema} is newer than this build understands ({PostgresMigrations.LatestVersion})");
                }
                else if (schema < PostgresMigrations.LatestVersion)
                {
                    problems.Add($"schema version {schema} is older than this build's ({PostgresMigrations.LatestVersion}); a hub of this build migrates it when it starts");
                }

                clients = Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE removed_at IS NULL");
                keys = Scalar<long>(c, tx, "SELECT COUNT(*) FROM keys");
                size = Scalar<long>(c, tx,
                    "SELECT COALESCE(SUM(pg_total_relation_size(format('%I.%I', schemaname, tablename)::regclass)), 0)::bigint FROM pg_tables WHERE schemaname = @s",
                    ("@s", engine.Schema));
            }
        }
        catch (System.Data.Common.DbException ex)
        {
            // Unreachable, refused, a missing table. Npgsql's messages carry no password (PersistSecurityInfo off).
            problems.Add("unreadable: " + ex.Message);
        }

        return new RegistryCheckReport
        {
            File = registry.ToString(),
            Ok = problems.Count == 0,
            SchemaVersion = schema,
            SizeBytes = size,
            Clients = clients,
            Keys = keys,
            Problems = problems,
        };
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
