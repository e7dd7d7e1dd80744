using System.Globalization;
using Microsoft.Data.Sqlite;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

/// <summary>One row of the event outbox.</summary>
public sealed record RegistryEvent(long Id, string Type, string? Uuid, string Payload, DateTimeOffset CreatedAt, string Status);

/// <summary>
/// The embedded registry: one SQLite file (WAL, busy timeout, foreign keys, versioned migrations,
/// mode 0600) in a 0700 data directory. Each call uses its own pooled connection, so one instance is
/// safe from many threads and several processes may share the file.
/// </summary>
public sealed partial class SqliteRegistry : IKeyStore, IClientStore, ISessionStore, IHistoryStore, ISettingsStore, IHealthStore, IWebhookOutbox, IRateLimitLedger, IDisposable
{
    /// <summary>Setting that holds the heartbeat interval in seconds.</summary>
    public const string HeartbeatSetting = "heartbeat_s";

    /// <summary>Default heartbeat interval when the setting is absent.</summary>
    public const int DefaultHeartbeatSeconds = 15;

    private readonly string _connectionString;

    private readonly TimeProvider _time;

    private readonly ClientSnapshot _clientCopy;

    private SqliteRegistry(DataDirectory dir, TimeProvider time)
    {
        DataDirectory = dir.Path;
        _time = time;
        _clientCopy = ClientSnapshot.For(dir.RegistryFile);
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = dir.RegistryFile,
            Mode = SqliteOpenMode.ReadWrite,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    public string DataDirectory { get; }

    /// <summary>Path of the database file.</summary>
    public string DatabaseFile => Path.Combine(DataDirectory, "registry.db");

    /// <summary>
    /// Opens (creating when missing) the registry of a data directory: the directory with mode 0700, the
    /// database file with mode 0600, then WAL and the migrations.
    /// </summary>
    public static SqliteRegistry Open(DataDirectory dir, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!Directory.Exists(dir.Path))
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(dir.Path);
            }
            else
            {
                Directory.CreateDirectory(dir.Path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
            }
        }

        if (!File.Exists(dir.RegistryFile))
        {
            try
            {
                var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
                if (!OperatingSystem.IsWindows())
                {
                    options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
                }

                using var _ = new FileStream(dir.RegistryFile, options);
            }
            catch (IOException) when (File.Exists(dir.RegistryFile))
            {
                // Another process created it first.
            }
        }

        var registry = new SqliteRegistry(dir, time ?? TimeProvider.System);
        try
        {
            using var c = registry.Connect();
            using var wal = c.CreateCommand();
            wal.CommandText = "PRAGMA journal_mode=WAL";
            wal.ExecuteScalar();
            RegistryMigrations.Apply(c);
        }
        catch (SqliteException ex) when (ex.SqliteErrorCode is 11 or 26)
        {
            // SQLITE_CORRUPT, SQLITE_NOTADB: say what to do instead of a stack trace.
            throw new InvalidOperationException(
                $"the registry {dir.RegistryFile} is damaged ({ex.Message}); `eph-server check --data {dir.Path}` tells more, "
                + $"`eph-server restore --data {dir.Path} --from BACKUP` puts a backup back", ex);
        }

        return registry;
    }

    /// <summary>The version of the loaded native SQLite library.</summary>
    public string SqliteVersion()
    {
        using var c = Connect();
        return Scalar<string>(c, null, "SELECT sqlite_version()") ?? "";
    }

    /// <summary>Schema version recorded in the file.</summary>
    public int SchemaVersion()
    {
        using var c = Connect();
        return (int)Scalar<long>(c, null, "SELECT COALESCE(MAX(version),0) FROM schema_version");
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private SqliteConnection Connect()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        using var cmd = c.CreateCommand();
        // synchronous=NORMAL in WAL mode: a commit waits for no fsync (a power loss may roll back the last commits,
        // each with its events, never half of one). mmap and a larger page cache: fleet-wide searches read the whole
        // clients table without a read syscall per page.
        cmd.CommandText = "PRAGMA busy_timeout=5000; PRAGMA foreign_keys=ON; PRAGMA synchronous=NORMAL; PRAGMA mmap_size=268435456; PRAGMA cache_size=-16384;";
        cmd.ExecuteNonQuery();
        return c;
    }

    public void Dispose()
    {
        using var c = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(c);
    }

    private long StaleBefore(SqliteConnection c, SqliteTransaction? tx)
    {
        var text = Scalar<string>(c, tx, "SELECT value FROM settings WHERE key = $k", ("$k", HeartbeatSetting));
        var seconds = int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : DefaultHeartbeatSeconds;
        return Now - (3L * seconds * 1000);
    }

    /// <summary>Surface recorded for calls that do not name one (tests, tools).</summary>
    private const string RegistrySurface = "registry";
}
