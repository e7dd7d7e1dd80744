using System.Globalization;
using System.Data.Common;
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

    private readonly RegistryEngine _engine;

    private readonly TimeProvider _time;

    private readonly ClientSnapshot _clientCopy;

    private readonly GroupCommit _groupCommit;

    private SqliteRegistry(DataDirectory dir, RegistryEngine engine, TimeProvider time)
    {
        DataDirectory = dir.Path;
        _time = time;
        _engine = engine;
        _clientCopy = ClientSnapshot.For(engine.SnapshotKey);
        _groupCommit = new GroupCommit(engine.Open, engine.BeginWrite);
    }

    /// <summary>Transactions the shared writes (<see cref="GroupCommit"/>) have committed in this process.</summary>
    internal long GroupCommits => _groupCommit.Batches;

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
        CreatePrivateDirectory(dir);

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

        var registry = new SqliteRegistry(dir, new SqliteEngine(dir.RegistryFile), time ?? TimeProvider.System);
        try
        {
            using var c = registry.Connect();
            registry._engine.Migrate(c);
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

    /// <summary>
    /// Opens the registry <paramref name="source"/> names: SQLite in <paramref name="dir"/>, or a PostgreSQL database
    /// (created schema and migrations applied; <paramref name="dir"/> still holds the hub's socket and local state).
    /// Errors name the database without its password.
    /// </summary>
    public static SqliteRegistry Open(DataDirectory dir, RegistrySource source, TimeProvider? time = null)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(source);
        if (!source.IsPostgres)
        {
            return Open(dir, time);
        }

        CreatePrivateDirectory(dir);
        var engine = new PostgresEngine(source);
        var registry = new SqliteRegistry(dir, engine, time ?? TimeProvider.System);
        try
        {
            using var c = registry.Connect();
            engine.Migrate(c);
        }
        catch (Exception ex) when (ex is Npgsql.NpgsqlException or InvalidOperationException or System.Net.Sockets.SocketException)
        {
            engine.Dispose();
            throw new RegistryUnavailableException($"the PostgreSQL registry {source} cannot be opened: {RegistryUnavailableException.Describe(ex)}", ex);
        }

        return registry;
    }

    /// <summary>The data directory, mode 0700 when it is created here.</summary>
    private static void CreatePrivateDirectory(DataDirectory dir)
    {
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
    }

    /// <summary>"sqlite" or "postgresql".</summary>
    public string Engine => _engine.Name;

    /// <summary>Where the registry is, without secrets: the database file, or postgresql://user@host:port/database.</summary>
    public string Location => _engine is PostgresEngine pg ? pg.Description : DatabaseFile;

    /// <summary>The version of the loaded native SQLite library.</summary>
    public string SqliteVersion()
    {
        if (_engine is not SqliteEngine)
        {
            return "";
        }

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

    private DbConnection Connect() => _engine.Open();

    /// <summary>An open connection to the registry's database, either engine (tests and tools that inspect it).</summary>
    internal DbConnection OpenConnection() => Connect();

    /// <summary>A transaction that reads then writes; writers of one registry take turns (<see cref="RegistryEngine.BeginWrite"/>).</summary>
    private DbTransaction BeginWrite(DbConnection c) => _engine.BeginWrite(c);

    /// <summary>A read transaction with one consistent view.</summary>
    private DbTransaction BeginRead(DbConnection c) => _engine.BeginRead(c);

    public void Dispose() => _engine.Dispose();

    private long StaleBefore(DbConnection c, DbTransaction? tx)
    {
        var text = Scalar<string>(c, tx, "SELECT value FROM settings WHERE key = @k", ("@k", HeartbeatSetting));
        var seconds = int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : DefaultHeartbeatSeconds;
        return Now - (3L * seconds * 1000);
    }

    /// <summary>Surface recorded for calls that do not name one (tests, tools).</summary>
    private const string RegistrySurface = "registry";
}
