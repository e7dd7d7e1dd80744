using Microsoft.Data.Sqlite;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Versioned schema of the SQLite registry. Each step runs once, inside one IMMEDIATE transaction that
/// also records its version, so two processes opening a fresh file at once apply it exactly once.
/// </summary>
internal static class RegistryMigrations
{
    private static readonly string[] Steps =
    [
        // 1: the initial schema.
        """
        CREATE TABLE clients (
            uuid                  TEXT PRIMARY KEY,
            display_name          TEXT NOT NULL COLLATE NOCASE,
            purpose               TEXT,
            allowed_paths         TEXT,
            webhook_url           TEXT,
            rate_limit_rpm        INTEGER,
            rate_limit_concurrent INTEGER,
            hostname              TEXT,
            platform              TEXT,
            username              TEXT,
            agent_version         TEXT,
            key_fingerprint       TEXT,
            key_mismatch          INTEGER NOT NULL DEFAULT 0,
            first_seen            INTEGER NOT NULL,
            last_seen             INTEGER NOT NULL,
            connection_count      INTEGER NOT NULL DEFAULT 0,
            removed_at            INTEGER
        );
        CREATE INDEX ix_clients_display_name ON clients(display_name COLLATE NOCASE);
        CREATE INDEX ix_clients_key ON clients(key_fingerprint);

        CREATE TABLE client_tags (
            uuid      TEXT NOT NULL REFERENCES clients(uuid) ON DELETE CASCADE,
            tag_lower TEXT NOT NULL,
            tag       TEXT NOT NULL,
            position  INTEGER NOT NULL,
            PRIMARY KEY (uuid, tag_lower)
        ) WITHOUT ROWID;
        CREATE INDEX ix_client_tags_tag ON client_tags(tag_lower, uuid);

        CREATE TABLE client_capabilities (
            uuid       TEXT NOT NULL REFERENCES clients(uuid) ON DELETE CASCADE,
            capability TEXT NOT NULL COLLATE NOCASE,
            PRIMARY KEY (uuid, capability)
        ) WITHOUT ROWID;
        CREATE INDEX ix_client_capabilities_capability ON client_capabilities(capability, uuid);

        CREATE TABLE keys (
            fingerprint          TEXT PRIMARY KEY,
            public_key           TEXT,
            status               TEXT NOT NULL,
            uuid                 TEXT,
            claimed_uuid         TEXT,
            claimed_hostname     TEXT,
            claimed_platform     TEXT,
            claimed_username     TEXT,
            claimed_display_name TEXT,
            is_mismatch          INTEGER NOT NULL DEFAULT 0,
            first_seen           INTEGER NOT NULL,
            last_seen            INTEGER NOT NULL,
            decided_at           INTEGER,
            decided_by           TEXT
        );
        CREATE INDEX ix_keys_status ON keys(status);
        CREATE INDEX ix_keys_uuid ON keys(uuid);
        CREATE INDEX ix_keys_claimed_uuid ON keys(claimed_uuid);

        CREATE TABLE sessions (
            id             INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid           TEXT NOT NULL REFERENCES clients(uuid),
            fingerprint    TEXT NOT NULL,
            host           TEXT NOT NULL,
            tunnel_port    INTEGER NOT NULL,
            secret         BLOB NOT NULL,
            gate_pid       INTEGER,
            hub_pid        INTEGER,
            connected_at   INTEGER NOT NULL,
            online_at      INTEGER,
            last_heartbeat INTEGER NOT NULL,
            closed_at      INTEGER,
            close_reason   TEXT
        );
        CREATE UNIQUE INDEX ux_sessions_open_per_client ON sessions(uuid) WHERE closed_at IS NULL;
        CREATE INDEX ix_sessions_fingerprint ON sessions(fingerprint) WHERE closed_at IS NULL;

        CREATE TABLE events (
            id              INTEGER PRIMARY KEY AUTOINCREMENT,
            type            TEXT NOT NULL,
            uuid            TEXT,
            payload         TEXT NOT NULL,
            created_at      INTEGER NOT NULL,
            delivered_at    INTEGER,
            attempts        INTEGER NOT NULL DEFAULT 0,
            next_attempt_at INTEGER,
            status          TEXT NOT NULL DEFAULT 'pending'
        );
        CREATE INDEX ix_events_status ON events(status, next_attempt_at);

        CREATE TABLE audit (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            at          INTEGER NOT NULL,
            actor       TEXT NOT NULL,
            surface     TEXT NOT NULL,
            operation   TEXT NOT NULL,
            uuid        TEXT,
            status      TEXT NOT NULL,
            detail      TEXT,
            duration_ms INTEGER
        );
        CREATE INDEX ix_audit_uuid ON audit(uuid, id);

        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT
        );
        """,

        // 2: health state per client, written by the hub's health monitor.
        """
        CREATE TABLE client_health (
            uuid                 TEXT PRIMARY KEY REFERENCES clients(uuid) ON DELETE CASCADE,
            consecutive_failures INTEGER NOT NULL DEFAULT 0,
            last_health_error    TEXT,
            last_failure_at      INTEGER,
            last_ok_at           INTEGER,
            unhealthy_since      INTEGER
        );
        """,

        // 3: webhook delivery state and log; rate-limit request log, in-flight rows and counters.
        """
        ALTER TABLE events ADD COLUMN delivery_id TEXT;
        ALTER TABLE events ADD COLUMN url TEXT;
        ALTER TABLE events ADD COLUMN last_attempt_at INTEGER;
        ALTER TABLE events ADD COLUMN last_status_code INTEGER;
        ALTER TABLE events ADD COLUMN last_error TEXT;
        CREATE UNIQUE INDEX ux_events_delivery_id ON events(delivery_id);
        CREATE INDEX ix_events_uuid ON events(uuid, id);

        CREATE TABLE webhook_attempts (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id    INTEGER NOT NULL REFERENCES events(id),
            url         TEXT NOT NULL,
            attempt     INTEGER NOT NULL,
            status_code INTEGER,
            error       TEXT,
            at          INTEGER NOT NULL,
            duration_ms INTEGER NOT NULL
        );
        CREATE INDEX ix_webhook_attempts_event ON webhook_attempts(event_id, id);

        CREATE TABLE webhook_dispatch_lease (
            id    INTEGER PRIMARY KEY CHECK (id = 1),
            owner TEXT NOT NULL,
            host  TEXT NOT NULL,
            pid   INTEGER NOT NULL,
            until INTEGER NOT NULL
        );

        CREATE TABLE rate_requests (
            uuid TEXT NOT NULL,
            at   INTEGER NOT NULL
        );
        CREATE INDEX ix_rate_requests ON rate_requests(uuid, at);

        CREATE TABLE rate_inflight (
            id         INTEGER PRIMARY KEY AUTOINCREMENT,
            uuid       TEXT NOT NULL,
            host       TEXT NOT NULL,
            pid        INTEGER NOT NULL,
            started_at INTEGER NOT NULL,
            expires_at INTEGER NOT NULL
        );
        CREATE INDEX ix_rate_inflight_uuid ON rate_inflight(uuid);

        CREATE TABLE rate_counters (
            uuid                TEXT PRIMARY KEY,
            rpm_warnings        INTEGER NOT NULL DEFAULT 0,
            concurrent_warnings INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        """,

        // 4: history filters; one lower-cased search column so -Query scans a single column; tags and
        // capabilities also kept as JSON on the client row, so reading 100,000 clients needs no per-row subqueries
        // (client_tags and client_capabilities stay the indexed source for filters). The backfill must give the
        // same text as SqliteRegistry.SearchText (fields joined by U+001F).
        """
        CREATE INDEX ix_audit_operation ON audit(operation, id);
        CREATE INDEX ix_audit_status ON audit(status, id);
        CREATE INDEX ix_audit_at ON audit(at);
        ALTER TABLE clients ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
        ALTER TABLE clients ADD COLUMN tags_json TEXT NOT NULL DEFAULT '[]';
        ALTER TABLE clients ADD COLUMN caps_json TEXT NOT NULL DEFAULT '[]';
        UPDATE clients SET
            tags_json = (SELECT json_group_array(tag) FROM (SELECT tag FROM client_tags t WHERE t.uuid = clients.uuid ORDER BY position)),
            caps_json = (SELECT json_group_array(capability) FROM (SELECT capability FROM client_capabilities k WHERE k.uuid = clients.uuid ORDER BY capability));

        -- Substring search over search_text through a trigram index (external content: the text lives only in clients).
        -- Keyed by the clients rowid; readers re-check search_text, so a rowid renumbered by a manual VACUUM can hide a
        -- match until INSERT INTO client_search(client_search) VALUES('rebuild'), never show a wrong one.
        CREATE VIRTUAL TABLE client_search USING fts5(search_text, content='clients', content_rowid='rowid', tokenize='trigram');
        INSERT INTO client_search(client_search) VALUES('rebuild');
        CREATE TRIGGER clients_search_insert AFTER INSERT ON clients BEGIN
            INSERT INTO client_search(rowid, search_text) VALUES (new.rowid, new.search_text);
        END;
        CREATE TRIGGER clients_search_delete AFTER DELETE ON clients BEGIN
            INSERT INTO client_search(client_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
        END;
        CREATE TRIGGER clients_search_update AFTER UPDATE OF search_text ON clients BEGIN
            INSERT INTO client_search(client_search, rowid, search_text) VALUES ('delete', old.rowid, old.search_text);
            INSERT INTO client_search(rowid, search_text) VALUES (new.rowid, new.search_text);
        END;
        UPDATE clients SET search_text = lower(
            display_name || char(31) || COALESCE(purpose, '') || char(31) || COALESCE(hostname, '') || char(31) ||
            COALESCE((SELECT group_concat(tag, char(31)) FROM (SELECT tag FROM client_tags t WHERE t.uuid = clients.uuid ORDER BY position)), ''));
        """,

        // 5: client searches run over an in-memory copy of the clients (ClientSnapshot) that each process keeps current
        // by reading only the rows changed since its last look. Every change to a client row (last_seen only when it
        // moved by 5 minutes), and every session of a client opening, coming online or closing, stamps the client row
        // with the next value of one counter; the
        // counter's instance id tells a copy that the file was replaced. Open sessions are indexed by heartbeat, so
        // the few whose heartbeat went stale are found without reading the others. The trigram index and the
        // search column that the SQL search used are gone (the in-memory search reads the fields themselves).
        """
        DROP TRIGGER clients_search_insert;
        DROP TRIGGER clients_search_delete;
        DROP TRIGGER clients_search_update;
        DROP TABLE client_search;
        ALTER TABLE clients DROP COLUMN search_text;

        CREATE TABLE client_changes (
            id       INTEGER PRIMARY KEY CHECK (id = 1),
            seq      INTEGER NOT NULL,
            instance TEXT NOT NULL
        );
        INSERT INTO client_changes(id, seq, instance) VALUES (1, 1, lower(hex(randomblob(16))));
        ALTER TABLE clients ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX ix_clients_change_seq ON clients(change_seq);

        CREATE TRIGGER clients_change_insert AFTER INSERT ON clients BEGIN
            UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
            UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE rowid = new.rowid;
        END;
        -- Every column but last_seen (and change_seq itself); a column added to clients later must be added here.
        CREATE TRIGGER clients_change_update AFTER UPDATE OF uuid, display_name, purpose, allowed_paths, webhook_url,
                rate_limit_rpm, rate_limit_concurrent, hostname, platform, username, agent_version, key_fingerprint, key_mismatch,
                first_seen, connection_count, removed_at, tags_json, caps_json ON clients
            WHEN new.change_seq = old.change_seq BEGIN
            UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
            UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE rowid = new.rowid;
        END;
        -- Heartbeats move last_seen every few seconds for every online client; stamping each would make searches read
        -- all online clients again and again. last_seen alone stamps the row when it moved by 5 minutes or more.
        CREATE TRIGGER clients_change_seen AFTER UPDATE OF last_seen ON clients
            WHEN new.change_seq = old.change_seq AND new.last_seen >= old.last_seen + 300000 BEGIN
            UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
            UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE rowid = new.rowid;
        END;
        CREATE TRIGGER sessions_change_insert AFTER INSERT ON sessions BEGIN
            UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
            UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE uuid = new.uuid;
        END;
        CREATE TRIGGER sessions_change_update AFTER UPDATE OF online_at, closed_at, tunnel_port, uuid ON sessions BEGIN
            UPDATE client_changes SET seq = seq + 1 WHERE id = 1;
            UPDATE clients SET change_seq = (SELECT seq FROM client_changes WHERE id = 1) WHERE uuid IN (old.uuid, new.uuid);
        END;
        CREATE INDEX ix_sessions_open_heartbeat ON sessions(last_heartbeat) WHERE closed_at IS NULL;
        """,
        // One vocabulary: history operations are the MCP tool names, statuses OperationStatus in snake_case ("ok" was
        // the older word for succeeded). Old rows are renamed so a filter finds them beside new ones.
        """
        UPDATE audit SET operation = CASE operation
            WHEN 'command' THEN 'run_command' WHEN 'file.read' THEN 'read_file' WHEN 'file.write' THEN 'write_file'
            WHEN 'file.list' THEN 'list_files' WHEN 'file.upload' THEN 'upload_file' WHEN 'file.download' THEN 'download_file'
            WHEN 'exchange.upload' THEN 'exchange_upload' WHEN 'exchange.download' THEN 'exchange_download'
            WHEN 'exchange.list' THEN 'exchange_list' WHEN 'exchange.delete' THEN 'exchange_delete' WHEN 'exchange.init' THEN 'exchange_init'
            WHEN 'metrics' THEN 'get_client_metrics' WHEN 'approve' THEN 'accept_key' WHEN 'revoke' THEN 'revoke_key'
            WHEN 'remove' THEN 'remove_client' WHEN 'webhook.resend' THEN 'resend_webhook' ELSE operation END;
        UPDATE audit SET status = 'succeeded' WHERE status = 'ok';
        """,
        // 7: an unauthenticated claim no longer quarantines a client: clear the flags the old admission set (the
        // claiming keys stay pending, marked is_mismatch, for an operator to decide by fingerprint); closed sessions'
        // secrets are wiped (they are wiped on close from now on).
        """
        UPDATE clients SET key_mismatch = 0 WHERE key_mismatch <> 0;
        UPDATE sessions SET secret = zeroblob(0) WHERE closed_at IS NOT NULL;
        """,
        NameKeyStep,
        TunnelPortStep,
        OperatorsStep,
        HubsStep,
        RelayStep,
    ];

    // Display names are unique after normalisation (ClientNameKey) among clients that are not removed. The key cannot
    // be computed in SQL, so the step is code (ClientNameKeys.Apply): it adds clients.name_key, fills it, renaming the
    // younger of clients whose names collide, creates the unique index and adds the column to the change trigger.
    // Removed clients keep their name and key but hold no claim on it. The code is idempotent.
    private const string NameKeyStep = "-- display names unique after normalisation: ClientNameKeys.Apply";

    /// <summary>
    /// Adds <paramref name="column"/> to <paramref name="table"/> unless it is there: what makes a code step safe to apply
    /// again. The names are this file's constants, never input.
    /// </summary>
    private static void AddColumnIfMissing(SqliteConnection connection, SqliteTransaction tx, string table, string column, string type)
    {
        using var info = connection.CreateCommand();
        info.Transaction = tx;
        info.CommandText = "SELECT COUNT(*) FROM pragma_table_info(@t) WHERE name = @c";
        info.Parameters.AddWithValue("@t", table);
        info.Parameters.AddWithValue("@c", column);
        if (Convert.ToInt64(info.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            Exec(connection, tx, $"ALTER TABLE {table} ADD COLUMN {column} {type}");
        }
    }

    // 9: one server port per approved key (sshd's permitlisten names exactly that port), unique; a key that stops being
    // approved gives its port back. Code, so that it can be applied again to a file that has it (idempotent).
    private const string TunnelPortStep = "-- one tunnel port per approved key: AddTunnelPorts";

    private static void AddTunnelPorts(SqliteConnection connection, SqliteTransaction tx)
    {
        AddColumnIfMissing(connection, tx, "keys", "tunnel_port", "INTEGER");

        Exec(connection, tx, """
            CREATE UNIQUE INDEX IF NOT EXISTS ux_keys_tunnel_port ON keys(tunnel_port) WHERE tunnel_port IS NOT NULL;
            CREATE TRIGGER IF NOT EXISTS keys_release_tunnel_port AFTER UPDATE OF status ON keys
            WHEN new.status <> 'approved' AND new.tunnel_port IS NOT NULL
            BEGIN
                UPDATE keys SET tunnel_port = NULL WHERE fingerprint = new.fingerprint;
            END;
            """);
    }

    // 10: operators, people's SSH keys with a name and a role (a removed operator stays, its key then refused); the
    // history records the acting operator's role and source address beside the actor and surface. Code, so that it can
    // be applied again to a file that has it (idempotent).
    private const string OperatorsStep = "-- operators and the history's role and source: AddOperators";

    private static void AddOperators(SqliteConnection connection, SqliteTransaction tx)
    {
        Exec(connection, tx, """
            CREATE TABLE IF NOT EXISTS operators (
                fingerprint TEXT PRIMARY KEY,
                name        TEXT NOT NULL COLLATE NOCASE,
                key_type    TEXT NOT NULL,
                public_key  TEXT NOT NULL,
                role        TEXT NOT NULL,
                added_at    INTEGER NOT NULL,
                added_by    TEXT NOT NULL,
                removed_at  INTEGER,
                removed_by  TEXT
            );
            CREATE UNIQUE INDEX IF NOT EXISTS ux_operators_active_name ON operators(name COLLATE NOCASE) WHERE removed_at IS NULL;
            """);
        AddColumnIfMissing(connection, tx, "audit", "role", "TEXT");
        AddColumnIfMissing(connection, tx, "audit", "source", "TEXT");
    }

    // 11: several hubs on one registry. Each hub has an id and a heartbeat row; each session records the hub that holds
    // it, so a hub adopts, monitors and closes only its own sessions, and the others close a dead hub's. Code, so that
    // it can be applied again to a file that has it (idempotent).
    private const string HubsStep = "-- hubs and the hub holding each session: AddHubs";

    private static void AddHubs(SqliteConnection connection, SqliteTransaction tx)
    {
        AddColumnIfMissing(connection, tx, "sessions", "hub_id", "TEXT");

        Exec(connection, tx, """
            CREATE INDEX IF NOT EXISTS ix_sessions_open_hub ON sessions(hub_id) WHERE closed_at IS NULL;
            CREATE TABLE IF NOT EXISTS hubs (
                id         TEXT PRIMARY KEY,
                host       TEXT NOT NULL,
                pid        INTEGER NOT NULL,
                started_at INTEGER NOT NULL,
                last_seen  INTEGER NOT NULL
            );
            """);
    }

    // 12: hub-to-hub relay. A hub that serves relays publishes where other hubs reach its sshd (user@host:port), the
    // host key they pin, and the public key it logs in with; a hub's key is accepted from the registry alone. Code, so
    // that it can be applied again to a file that has it (idempotent).
    private const string RelayStep = "-- the hubs' relay endpoints: AddHubRelays";

    private static void AddHubRelays(SqliteConnection connection, SqliteTransaction tx)
    {
        foreach (var column in new[] { "relay_address", "relay_host_key", "relay_key", "relay_key_fingerprint" })
        {
            AddColumnIfMissing(connection, tx, "hubs", column, "TEXT");
        }

        Exec(connection, tx, "CREATE INDEX IF NOT EXISTS ix_hubs_relay_key ON hubs(relay_key_fingerprint)");
    }

    /// <summary>Work a step needs beyond its SQL, keyed by the step itself (so it survives renumbering), run after it.</summary>
    private static readonly Dictionary<string, Action<SqliteConnection, SqliteTransaction>> AfterStep = new(StringComparer.Ordinal)
    {
        [NameKeyStep] = ClientNameKeys.Apply,
        [TunnelPortStep] = AddTunnelPorts,
        [OperatorsStep] = AddOperators,
        [HubsStep] = AddHubs,
        [RelayStep] = AddHubRelays,
    };

    /// <summary>The schema version of the step that made display names unique.</summary>
    internal static int NameKeyVersion => Array.IndexOf(Steps, NameKeyStep) + 1;

    /// <summary>Latest schema version this build knows.</summary>
    public static int LatestVersion => Steps.Length;

    /// <summary>
    /// Brings the schema to <see cref="LatestVersion"/>. A registry already there is only read: every process that
    /// opens it (each `eph-server clients`) would otherwise queue for the write lock behind the hub's writers, which
    /// during a reconnect storm hold it back to back for many seconds.
    /// </summary>
    public static void Apply(SqliteConnection connection)
    {
        if (CurrentVersion(connection) == Steps.Length)
        {
            return;
        }

        using var tx = connection.BeginTransaction(deferred: false);
        Exec(connection, tx, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at INTEGER NOT NULL)");
        using var read = connection.CreateCommand();
        read.Transaction = tx;
        read.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
        var current = Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
        if (current > Steps.Length)
        {
            throw new InvalidOperationException(
                $"the registry has schema version {current}, newer than this build understands ({Steps.Length}); upgrade eph-server");
        }

        for (var v = current + 1; v <= Steps.Length; v++)
        {
            Exec(connection, tx, Steps[v - 1]);
            if (AfterStep.TryGetValue(Steps[v - 1], out var code))
            {
                code(connection, tx);
            }

            Exec(connection, tx, $"INSERT INTO schema_version(version, applied_at) VALUES ({v}, {DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()})");
        }

        tx.Commit();
    }

    /// <summary>The recorded schema version, read without a write lock; -1 when the registry has no version table yet.</summary>
    private static int CurrentVersion(SqliteConnection connection)
    {
        using var read = connection.CreateCommand();
        read.CommandText = "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'";
        if (Convert.ToInt64(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture) == 0)
        {
            return -1;
        }

        read.CommandText = "SELECT COALESCE(MAX(version), 0) FROM schema_version";
        return Convert.ToInt32(read.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }
}
