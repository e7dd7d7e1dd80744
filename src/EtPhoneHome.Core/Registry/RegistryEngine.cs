using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// What differs between the registry's two engines; the stores' SQL is shared (named <c>@parameters</c>,
/// <c>ON CONFLICT … DO UPDATE</c>, <c>RETURNING</c>, <c>COLLATE NOCASE</c> — a collation of that name exists in the
/// PostgreSQL schema). Here: opening a connection, the transaction that serialises writers, the read transaction,
/// the schema, case-insensitive LIKE, and housekeeping after a bulk write.
/// </summary>
internal abstract class RegistryEngine : IDisposable
{
    /// <summary>"sqlite" or "postgresql".</summary>
    public abstract string Name { get; }

    /// <summary>Key of the process-wide in-memory client copy (<see cref="ClientSnapshot"/>) of this database.</summary>
    public abstract string SnapshotKey { get; }

    /// <summary>The LIKE operator that ignores ASCII case, as SQLite's LIKE does.</summary>
    public abstract string Like { get; }

    public abstract DbConnection Open();

    /// <summary>
    /// A transaction in which the caller reads and then writes: writers of one registry run one at a time (SQLite:
    /// BEGIN IMMEDIATE; PostgreSQL: a transaction-scoped advisory lock of the registry's schema), so a decision read in
    /// it still holds when it is written. Uniqueness is still enforced by the database's unique indexes.
    /// </summary>
    public abstract DbTransaction BeginWrite(DbConnection c);

    /// <summary>
    /// A write of rows no other writer decides about (a hub's own heartbeat row, written in one statement): on SQLite
    /// the same as <see cref="BeginWrite"/> (one writer at a time is the file's own rule); on PostgreSQL a plain
    /// transaction that does not queue for the registry's writer lock behind every other writer.
    /// </summary>
    public virtual DbTransaction BeginOwnRowWrite(DbConnection c) => BeginWrite(c);

    /// <summary>
    /// A connection for a hub's liveness (its heartbeat row): on PostgreSQL from a pool of its own, so that writers
    /// holding every connection of the main pool cannot make a live hub look dead; on SQLite the same as <see cref="Open"/>.
    /// </summary>
    public virtual DbConnection OpenForLiveness() => Open();

    /// <summary>A read-only transaction seeing one consistent state.</summary>
    public abstract DbTransaction BeginRead(DbConnection c);

    /// <summary>Creates or upgrades the schema, once even when several processes open the registry together.</summary>
    public abstract void Migrate(DbConnection c);

    /// <summary>Housekeeping after a bulk write (SQLite folds its WAL into the file).</summary>
    public virtual void AfterBulkWrite(DbConnection c)
    {
    }

    public abstract void Dispose();
}

/// <summary>The embedded engine: one file in the data directory.</summary>
internal sealed class SqliteEngine(string databaseFile) : RegistryEngine
{
    private readonly string _connectionString = new SqliteConnectionStringBuilder
    {
        DataSource = databaseFile,
        Mode = SqliteOpenMode.ReadWrite,
        Pooling = true,
        DefaultTimeout = 30,
    }.ToString();

    public override string Name => "sqlite";

    public override string SnapshotKey => Path.GetFullPath(databaseFile);

    public override string Like => "LIKE";

    public override DbConnection Open()
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

    public override DbTransaction BeginWrite(DbConnection c) => ((SqliteConnection)c).BeginTransaction(deferred: false);

    public override DbTransaction BeginRead(DbConnection c) => ((SqliteConnection)c).BeginTransaction(deferred: true);

    public override void Migrate(DbConnection c)
    {
        using var wal = c.CreateCommand();
        wal.CommandText = "PRAGMA journal_mode=WAL";
        wal.ExecuteScalar();
        RegistryMigrations.Apply((SqliteConnection)c);
    }

    public override void AfterBulkWrite(DbConnection c) => Sql.Exec(c, null, "PRAGMA wal_checkpoint(TRUNCATE)");

    public override void Dispose()
    {
        using var c = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(c);
    }
}

/// <summary>
/// PostgreSQL: one schema of one database (the connection string's Search Path, else <c>public</c>), shared by every hub
/// and front end that names it. Text columns use the "C" collation so that order and equality are byte-wise, as in SQLite.
/// </summary>
internal sealed class PostgresEngine : RegistryEngine
{
    /// <summary>First key of the registry's advisory locks (the second is the schema's hash): "EPH\0".</summary>
    internal const int LockClass = 0x45504800;

    private readonly NpgsqlDataSource _source;

    /// <summary>One connection at most, used only for the hub's heartbeat (<see cref="OpenForLiveness"/>).</summary>
    private readonly NpgsqlDataSource _liveness;

    public PostgresEngine(RegistrySource source)
    {
        var builder = new NpgsqlConnectionStringBuilder(source.ConnectionString)
        {
            // The password never travels back out of the connection object (logs of connection strings, errors).
            PersistSecurityInfo = false,
            IncludeErrorDetail = false,
        };
        if (string.IsNullOrEmpty(builder.ApplicationName))
        {
            builder.ApplicationName = "etphonehome";
        }

        _source = NpgsqlDataSource.Create(builder);
        _liveness = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(builder.ConnectionString) { MinPoolSize = 0, MaxPoolSize = 1 });
        Schema = string.IsNullOrWhiteSpace(builder.SearchPath) ? "public" : builder.SearchPath.Split(',')[0].Trim().Trim('"');
        SnapshotKey = $"postgresql://{builder.Host}:{builder.Port}/{builder.Database}/{Schema}";
        Description = source.ToString();
    }

    /// <summary>The schema holding the registry.</summary>
    public string Schema { get; }

    /// <summary>Where the registry is, without secrets.</summary>
    public string Description { get; }

    public override string Name => "postgresql";

    public override string SnapshotKey { get; }

    public override string Like => "ILIKE";

    public override DbConnection Open() => OpenFrom(_source);

    public override DbConnection OpenForLiveness() => OpenFrom(_liveness);

    private static DbConnection OpenFrom(NpgsqlDataSource source)
    {
        try
        {
            return source.OpenConnection();
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or System.Net.Sockets.SocketException)
        {
            // A connection reset while it opens can surface as the socket's own error ("not allowed on non-connected
            // sockets") instead of an NpgsqlException: it is the database being out of reach all the same.
            throw new NpgsqlException($"cannot connect to the registry database: {ex.Message}", ex);
        }
    }

    public override DbTransaction BeginWrite(DbConnection c)
    {
        var tx = c.BeginTransaction(IsolationLevel.ReadCommitted);
        Lock(c, tx, Schema);
        return tx;
    }

    public override DbTransaction BeginOwnRowWrite(DbConnection c) => c.BeginTransaction(IsolationLevel.ReadCommitted);

    public override DbTransaction BeginRead(DbConnection c) => c.BeginTransaction(IsolationLevel.RepeatableRead);

    /// <summary>The writer lock of the registry in <paramref name="schema"/>, released at the end of the transaction.</summary>
    internal static void Lock(DbConnection c, DbTransaction tx, string schema)
        => Sql.Exec(c, tx, "SELECT pg_advisory_xact_lock(@class, hashtext(@schema))", ("@class", LockClass), ("@schema", schema));

    public override void Migrate(DbConnection c) => PostgresMigrations.Apply(c, Schema);

    public override void Dispose()
    {
        _source.Dispose();
        _liveness.Dispose();
    }
}
