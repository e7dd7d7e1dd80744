using Microsoft.Data.Sqlite;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Fills clients.name_key in a registry written before names were unique, and makes the names unique the one
/// deterministic way: among clients that are not removed and share a key, the oldest (first seen, then first
/// written) keeps its name and each younger one gets the first free "name (2)", "name (3)"… in age order. Names that
/// were already unique are reserved before any rename, so a client really named "web-01 (2)" keeps that name.
/// Removed clients keep their names. Every rename is written to the history.
/// </summary>
internal static class ClientNameKeys
{
    /// <summary>Actor of the history entries the migration writes.</summary>
    internal const string MigrationActor = "registry-migration";

    /// <summary>The schema step: the column, its values, the unique index, the change trigger. Safe to run again.</summary>
    public static void Apply(SqliteConnection c, SqliteTransaction tx)
    {
        if (!HasNameKeyColumn(c, tx))
        {
            Exec(c, tx, "ALTER TABLE clients ADD COLUMN name_key TEXT");
        }

        Exec(c, tx, "DROP INDEX IF EXISTS ux_clients_name_key");
        Backfill(c, tx);
        Exec(c, tx, "CREATE UNIQUE INDEX ux_clients_name_key ON clients(name_key) WHERE removed_at IS NULL");

        // The trigger of schema step 5 stamps a client row when any column but last_seen changes; it must list the new one.
        Exec(c, tx, """
            DROP TRIGGER IF EXISTS clients_change_update;
            CREATE TRIGGER clients_change_update AFTER UPDATE OF uuid, display_name, name_key, purpose, allowed_paths, webhook_url,
                    rate_limit_rpm, rate_limit_concurrent, hostname, platform, username, agent_version, key_fingerprint, key_mismatch,
                    first_seen, connection_count, removed_at, tags_json, caps_json ON clients
                WHEN new.change_seq = old.change_seq BEGIN
                UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
                UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE rowid = new.rowid;
            END;
            """);
    }

    private static bool HasNameKeyColumn(SqliteConnection c, SqliteTransaction tx)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT COUNT(*) FROM pragma_table_info('clients') WHERE name = 'name_key'";
        return Convert.ToInt64(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) > 0;
    }

    private static void Backfill(SqliteConnection c, SqliteTransaction tx)
    {
        var rows = new List<(string Uuid, string Name, bool Removed)>();
        using (var read = c.CreateCommand())
        {
            read.Transaction = tx;
            read.CommandText = "SELECT uuid, display_name, removed_at IS NOT NULL FROM clients ORDER BY first_seen, rowid";
            using var r = read.ExecuteReader();
            while (r.Read())
            {
                rows.Add((r.GetString(0), r.GetString(1), r.GetBoolean(2)));
            }
        }

        var live = rows.Where(x => !x.Removed).ToList();
        var taken = new HashSet<string>(StringComparer.Ordinal);
        var keepers = new HashSet<string>(StringComparer.Ordinal);
        foreach (var row in live)
        {
            if (taken.Add(ClientNameKey.Of(row.Name)))
            {
                keepers.Add(row.Uuid);
            }
        }

        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        foreach (var row in rows)
        {
            var name = row.Name;
            if (!row.Removed && !keepers.Contains(row.Uuid))
            {
                name = ClientNameKey.Unique(row.Name, taken.Contains);
                taken.Add(ClientNameKey.Of(name));
                Exec(c, tx, """
                    INSERT INTO audit(at, actor, surface, operation, uuid, status, detail, duration_ms)
                    VALUES ($at, $actor, 'registry', $op, $u, 'succeeded', $d, 0)
                    """,
                    ("$at", now), ("$actor", MigrationActor), ("$op", OperationNames.UpdateClient), ("$u", row.Uuid),
                    ("$d", $"display_name='{name}': names are unique now and an older client is named '{row.Name}'"));
            }

            Exec(c, tx, "UPDATE clients SET display_name = $n, name_key = $k WHERE uuid = $u",
                ("$n", name), ("$k", ClientNameKey.Of(name)), ("$u", row.Uuid));
        }
    }

    private static void Exec(SqliteConnection c, SqliteTransaction tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        cmd.ExecuteNonQuery();
    }
}
