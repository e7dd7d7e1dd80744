using EtPhoneHome.Core.Operations;
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

    public static void Backfill(SqliteConnection c, SqliteTransaction tx)
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
