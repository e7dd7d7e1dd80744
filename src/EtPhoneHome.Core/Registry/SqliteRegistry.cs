using EtPhoneHome.Core.Operations;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;
using Microsoft.Data.Sqlite;

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

    private const string Approved = "approved";
    private const string Pending = "pending";
    private const string Revoked = "revoked";

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
    /// Upper bound of pending keys (flood resistance). A new key that finds the bound reached takes the place of the
    /// pending key unseen the longest: refusing it instead would let whoever fills the table lock every new machine out.
    /// </summary>
    public int MaxPendingKeys { get; set; } = 10_000;

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

    // ================================================================ keys

    public KeyRecord? GetKey(string fingerprint)
    {
        using var c = Connect();
        return GetKey(c, null, fingerprint);
    }

    public IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM keys" + (status is null ? "" : " WHERE status = $s") + " ORDER BY first_seen, fingerprint");
        if (status is { } s)
        {
            cmd.Parameters.AddWithValue("$s", StatusText(s));
        }

        return ReadAll(cmd, ReadKey);
    }

    public KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        ArgumentNullException.ThrowIfNull(identity);
        identity = ClaimedIdentityRules.Normalise(identity);
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var now = Now;
        var existing = GetKey(c, tx, fingerprint);

        string? pinnedElsewhere = null;
        if (identity.ClaimedUuid is { Length: > 0 } claimed)
        {
            var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = $u", ("$u", claimed));
            if (pinned is not null && pinned != fingerprint)
            {
                pinnedElsewhere = pinned;
            }
        }

        var mismatch = pinnedElsewhere is not null;
        if (existing is null)
        {
            if (MaxPendingKeys < 1)
            {
                throw new InvalidOperationException("the registry records no pending keys (limit 0)");
            }

            var pendingCount = Scalar<long>(c, tx, "SELECT COUNT(*) FROM keys WHERE status = 'pending'");
            if (pendingCount >= MaxPendingKeys)
            {
                // The key unseen the longest gives way: an agent still waiting refreshes its key (the hub re-records it),
                // so what goes is a key that stopped coming back, or under a flood one that comes back when it reconnects.
                Exec(c, tx, """
                    DELETE FROM keys WHERE fingerprint IN
                        (SELECT fingerprint FROM keys WHERE status = 'pending' ORDER BY last_seen, fingerprint LIMIT $n)
                    """, ("$n", pendingCount - MaxPendingKeys + 1));
            }

            Exec(c, tx, """
                INSERT INTO keys(fingerprint, public_key, status, claimed_uuid, claimed_hostname, claimed_platform,
                                 claimed_username, claimed_display_name, is_mismatch, first_seen, last_seen)
                VALUES ($f, $pk, 'pending', $cu, $h, $p, $un, $dn, $m, $now, $now)
                """,
                ("$f", fingerprint), ("$pk", publicKey), ("$cu", identity.ClaimedUuid), ("$h", identity.Hostname),
                ("$p", identity.Platform), ("$un", identity.Username), ("$dn", identity.DisplayName), ("$m", mismatch ? 1 : 0), ("$now", now));
            if (!mismatch)
            {
                Emit(c, tx, "client.pending", identity.ClaimedUuid, new JsonObject
                {
                    ["fingerprint"] = fingerprint,
                    ["claimed_hostname"] = identity.Hostname,
                    ["claimed_platform"] = identity.Platform,
                });
            }
        }
        else
        {
            Exec(c, tx, """
                UPDATE keys SET public_key = COALESCE($pk, public_key), claimed_uuid = $cu, claimed_hostname = $h,
                    claimed_platform = $p, claimed_username = $un, claimed_display_name = $dn,
                    is_mismatch = CASE WHEN status = 'pending' THEN $m ELSE is_mismatch END, last_seen = $now
                WHERE fingerprint = $f
                """,
                ("$f", fingerprint), ("$pk", publicKey), ("$cu", identity.ClaimedUuid), ("$h", identity.Hostname),
                ("$p", identity.Platform), ("$un", identity.Username), ("$dn", identity.DisplayName), ("$m", mismatch ? 1 : 0), ("$now", now));
        }

        // The claim is unauthenticated: it is recorded on the claiming key (pending, is_mismatch) and announced, but the
        // client it names is not touched — it stays pinned to its key, online and usable.
        if (mismatch && (existing is null || !existing.IsMismatch || existing.ClaimedUuid != identity.ClaimedUuid))
        {
            Emit(c, tx, "client.key_mismatch", identity.ClaimedUuid, new JsonObject
            {
                ["fingerprint"] = fingerprint,
                ["pinned_fingerprint"] = pinnedElsewhere,
                ["claimed_hostname"] = identity.Hostname,
            });
        }

        var result = GetKey(c, tx, fingerprint)!;
        tx.Commit();
        return result;
    }

    public int AssignTunnelPort(string fingerprint, TunnelPortRange range, Func<int, bool> isFree)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        ArgumentNullException.ThrowIfNull(isFree);
        using var c = Connect();
        using var tx = c.BeginTransaction();
        var key = GetKey(c, tx, fingerprint);
        if (key?.Status != KeyStatus.Approved)
        {
            throw new InvalidOperationException($"key {fingerprint} is not approved; only approved keys get a tunnel port");
        }

        var held = new HashSet<int>();
        using (var cmd = Command(c, tx, "SELECT tunnel_port FROM keys WHERE tunnel_port BETWEEN $a AND $b", ("$a", range.First), ("$b", range.Last)))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                held.Add(r.GetInt32(0));
            }
        }

        // From a random point of the range, so hubs of several registries on one host rarely probe the same ports first.
        var start = System.Security.Cryptography.RandomNumberGenerator.GetInt32(range.Count);
        for (var i = 0; i < range.Count; i++)
        {
            var port = range.First + ((start + i) % range.Count);
            if (port == key.TunnelPort || held.Contains(port) || !isFree(port))
            {
                continue;
            }

            Exec(c, tx, "UPDATE keys SET tunnel_port = $p WHERE fingerprint = $f", ("$p", port), ("$f", fingerprint));
            tx.Commit();
            return port;
        }

        throw new InvalidOperationException($"no free tunnel port left in {range} for key {fingerprint}");
    }

    public IReadOnlyList<KeyRecord> PurgePendingKeys(TimeSpan unseenFor, string actor, string surface, bool dryRun = false)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(unseenFor, TimeSpan.Zero);
        ArgumentException.ThrowIfNullOrEmpty(actor);
        ArgumentException.ThrowIfNullOrEmpty(surface);
        var started = Now;
        var cutoff = unseenFor.TotalMilliseconds >= started ? long.MinValue : started - (long)unseenFor.TotalMilliseconds;
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: dryRun);
        using var select = Command(c, tx, "SELECT * FROM keys WHERE status = 'pending' AND last_seen < $cut ORDER BY last_seen, fingerprint", ("$cut", cutoff));
        var keys = ReadAll(select, ReadKey);
        if (dryRun)
        {
            tx.Commit();
            return keys;
        }

        if (keys.Count > 0)
        {
            Exec(c, tx, "DELETE FROM keys WHERE status = 'pending' AND last_seen < $cut", ("$cut", cutoff));
        }

        // The hub's periodic expiry that finds nothing leaves no trace; an operator's purge always does.
        if (keys.Count > 0 || surface != Surfaces.Hub)
        {
            InsertAudit(c, tx, new AuditEntry
            {
                Operation = OperationNames.PurgeKeys,
                Actor = actor,
                Surface = surface,
                Status = OperationNames.Wire(keys.Count > 0 ? OperationStatus.Succeeded : OperationStatus.Unchanged),
                Detail = OperationGuard.Truncate(
                    $"{keys.Count} pending key(s) unseen for more than {KeyLimits.DescribeAge(unseenFor)}"
                    + (keys.Count == 0 ? "" : ": " + string.Join(", ", keys.Select(k => k.Fingerprint)))),
                DurationMs = Now - started,
            });
        }

        tx.Commit();
        return keys;
    }

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprintOrUuid);
        var started = Now;
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var key = GetKey(c, tx, fingerprintOrUuid);
        if (key is null)
        {
            // A uuid names only the key the client is pinned to. Trusting another key instead, or a revoked key again, is
            // never implied: it takes that key's exact fingerprint.
            var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = $u", ("$u", fingerprintOrUuid));
            var claimants = ClaimantsOf(c, tx, fingerprintOrUuid);
            if (claimants.Count > 0)
            {
                throw new KeyDecisionException(DescribeClaim(fingerprintOrUuid, pinned, claimants)
                    + $" To trust a claimant instead, approve its exact fingerprint (approve {claimants[0]}); the client's key {pinned} is then revoked.");
            }

            key = pinned is null ? null : GetKey(c, tx, pinned);
            if (key is null)
            {
                var isClient = Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = $u", ("$u", fingerprintOrUuid)) > 0;
                throw new RegistryNotFoundException(isClient
                    ? $"client {fingerprintOrUuid} has no key waiting for approval"
                    : $"no key with fingerprint {fingerprintOrUuid} and no client with uuid {fingerprintOrUuid}");
            }

            if (key.Status == KeyStatus.Revoked)
            {
                throw new KeyDecisionException(
                    $"the key of client {fingerprintOrUuid} ({key.Fingerprint}) is revoked; a revoked key is trusted again only by its fingerprint: approve {key.Fingerprint}");
            }
        }

        ApproveOutcome outcome;
        var now = Now;
        if (key.Status == KeyStatus.Approved)
        {
            outcome = new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid, AlreadyApproved = true };
        }
        else if (key.IsMismatch && key.ClaimedUuid is { } target
                 && Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = $u", ("$u", target)) > 0)
        {
            var old = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = $u", ("$u", target));
            Exec(c, tx, "UPDATE clients SET key_fingerprint = $f, key_mismatch = 0 WHERE uuid = $u", ("$f", key.Fingerprint), ("$u", target));
            Exec(c, tx, "UPDATE keys SET status = 'approved', uuid = $u, is_mismatch = 0, decided_at = $now, decided_by = $a WHERE fingerprint = $f",
                ("$u", target), ("$now", now), ("$a", actor), ("$f", key.Fingerprint));
            if (old is not null && old != key.Fingerprint)
            {
                Exec(c, tx, "UPDATE keys SET status = 'revoked', decided_at = $now, decided_by = $a WHERE fingerprint = $f",
                    ("$now", now), ("$a", actor), ("$f", old));
                CloseSessionsWhere(c, tx, "fingerprint = $f", "key replaced", ("$f", old));
            }

            outcome = new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = target, ResolvedMismatch = true, ReplacedFingerprint = old };
        }
        else
        {
            Exec(c, tx, "UPDATE keys SET status = 'approved', is_mismatch = 0, decided_at = $now, decided_by = $a WHERE fingerprint = $f",
                ("$now", now), ("$a", actor), ("$f", key.Fingerprint));
            outcome = new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid };
        }

        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.AcceptKey,
            Uuid = outcome.Uuid,
            Actor = actor,
            Surface = surface,
            Status = OperationNames.Wire(outcome.AlreadyApproved ? OperationStatus.Unchanged : OperationStatus.Succeeded),
            Detail = outcome.ResolvedMismatch ? $"{outcome.Fingerprint} replaces {outcome.ReplacedFingerprint}" : outcome.Fingerprint,
            DurationMs = Now - started,
        });
        tx.Commit();
        return outcome;
    }

    /// <summary>Pending keys that claim the client's uuid while it is pinned to another key, newest first.</summary>
    private static List<string> ClaimantsOf(SqliteConnection c, SqliteTransaction tx, string uuid)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT fingerprint FROM keys WHERE claimed_uuid = $u AND is_mismatch = 1 AND status = 'pending' ORDER BY last_seen DESC";
        cmd.Parameters.AddWithValue("$u", uuid);
        return ReadAll(cmd, r => r.GetString(0));
    }

    private static string DescribeClaim(string uuid, string? pinned, IReadOnlyList<string> claimants) =>
        $"client {uuid} is pinned to key {pinned} (trusted); {(claimants.Count == 1 ? "key " + claimants[0] + " claims" : claimants.Count + " other keys claim")} "
        + $"it without being approved{(claimants.Count == 1 ? "" : " (" + string.Join(", ", claimants) + ")")}.";

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprintOrUuid);
        var started = Now;
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var key = GetKey(c, tx, fingerprintOrUuid);
        if (key is null)
        {
            // Revoking by uuid while another key claims the client would be ambiguous: name the fingerprint.
            var claimants = ClaimantsOf(c, tx, fingerprintOrUuid);
            if (claimants.Count > 0)
            {
                var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = $u", ("$u", fingerprintOrUuid));
                throw new KeyDecisionException(DescribeClaim(fingerprintOrUuid, pinned, claimants)
                    + $" Revoke by exact fingerprint: revoke {claimants[0]} refuses the claimant, revoke {pinned} cuts the client off.");
            }

            var fp = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = $u", ("$u", fingerprintOrUuid))
                     ?? Scalar<string>(c, tx, "SELECT fingerprint FROM keys WHERE uuid = $u ORDER BY last_seen DESC LIMIT 1", ("$u", fingerprintOrUuid));
            key = fp is null ? null : GetKey(c, tx, fp);
            if (key is null)
            {
                throw new RegistryNotFoundException($"no key with fingerprint {fingerprintOrUuid} and no client with uuid {fingerprintOrUuid}");
            }
        }

        var already = key.Status == KeyStatus.Revoked;
        if (!already)
        {
            Exec(c, tx, "UPDATE keys SET status = 'revoked', decided_at = $now, decided_by = $a WHERE fingerprint = $f",
                ("$now", Now), ("$a", actor), ("$f", key.Fingerprint));
        }

        var closed = CloseSessionsWhere(c, tx, "fingerprint = $f", "revoked", ("$f", key.Fingerprint));
        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.RevokeKey,
            Uuid = key.Uuid,
            Actor = actor,
            Surface = surface,
            Status = OperationNames.Wire(already ? OperationStatus.Unchanged : OperationStatus.Succeeded),
            Detail = $"{key.Fingerprint}; {closed.Count} session(s) closed",
            DurationMs = Now - started,
        });
        tx.Commit();
        return new RevokeOutcome { Fingerprint = key.Fingerprint, Uuid = key.Uuid, AlreadyRevoked = already, ClosedSessions = closed };
    }

    // ================================================================ clients

    public ClientRecord? GetClient(string uuid)
    {
        using var c = Connect();
        return GetClient(c, null, uuid);
    }

    /// <summary>
    /// The clients passing every filter of <paramref name="query"/> (the rules of <see cref="ClientIndex"/>), sorted by
    /// <see cref="ClientOrder"/>. Searches the process's in-memory copy of the clients (<see cref="ClientSnapshot"/>),
    /// brought up to date first: the rows changed since the last search, and the online sessions whose heartbeat went
    /// stale, are read in one read transaction.
    /// </summary>
    public IReadOnlyList<ClientRecord> QueryClients(ClientQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var (clients, stale) = CurrentClients();
        return clients.Search(query, stale);
    }

    /// <summary>This process's in-memory copy of the clients of this file (tests and benchmarks).</summary>
    internal ClientSnapshot ClientCopy => _clientCopy;

    /// <summary>The current copy of every client (online = open session that came online) and the uuids whose online session's heartbeat is stale.</summary>
    private (ClientIndex Clients, HashSet<string> Stale) CurrentClients()
    {
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: true);
        using var counter = Command(c, tx, "SELECT instance, seq FROM client_changes WHERE id = 1");
        var (instance, seq) = ReadAll(counter, r => (r.GetString(0), r.GetInt64(1))).Single();
        var clients = _clientCopy.Get(instance, seq, since => ReadClientRows(c, since));
        using var staleRead = Command(c, tx,
            "SELECT uuid FROM sessions WHERE closed_at IS NULL AND last_heartbeat <= $stale AND online_at IS NOT NULL",
            ("$stale", StaleBefore(c, tx)));
        var stale = new HashSet<string>(ReadAll(staleRead, r => r.GetString(0)), StringComparer.Ordinal);
        tx.Commit();
        return (clients, stale);
    }

    /// <summary>
    /// Client rows stamped after <paramref name="since"/> (every row when null), online taken from the session alone;
    /// read on the connection, so inside the transaction it is in.
    /// </summary>
    private static List<ClientRecord> ReadClientRows(SqliteConnection c, long? since)
    {
        return since is null
            ? ClientRowReader.Read(c, "", null, long.MinValue, new Dictionary<string, string>(StringComparer.Ordinal))
            : ClientRowReader.Read(c, " WHERE c.change_seq > ?1", since.Value, long.MinValue, new Dictionary<string, string>(StringComparer.Ordinal));
    }

    public ClientRecord AdmitClient(string fingerprint, AgentIdentity identity)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        ArgumentNullException.ThrowIfNull(identity);
        identity = ClaimedIdentityRules.Normalise(identity);
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var key = GetKey(c, tx, fingerprint) ?? throw new InvalidOperationException($"key {fingerprint} is unknown; it must be approved before a client is admitted");
        if (key.Status != KeyStatus.Approved)
        {
            throw new InvalidOperationException($"key {fingerprint} is {StatusText(key.Status)}; only an approved key admits a client");
        }

        var now = Now;
        string uuid;
        if (key.Uuid is null || Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = $u", ("$u", key.Uuid)) == 0)
        {
            uuid = key.Uuid ?? Guid.NewGuid().ToString();
            // The claimed identity is already neutralised and within the limits of operator edits.
            var claimedName = identity.DisplayName ?? identity.Hostname ?? $"client-{uuid[..8]}";
            var displayName = UniqueClaimedName(c, tx, uuid, claimedName);
            Exec(c, tx, """
                INSERT INTO clients(uuid, display_name, name_key, purpose, hostname, platform, username, agent_version, key_fingerprint,
                                    key_mismatch, first_seen, last_seen, connection_count)
                VALUES ($u, $dn, $nk, $pu, $h, $p, $un, $v, $f, 0, $now, $now, 1)
                """,
                ("$u", uuid), ("$dn", displayName), ("$nk", ClientNameKey.Of(displayName)), ("$pu", identity.Purpose),
                ("$h", identity.Hostname), ("$p", identity.Platform), ("$un", identity.Username), ("$v", identity.AgentVersion),
                ("$f", fingerprint), ("$now", now));
            WriteTags(c, tx, uuid, identity.Tags.Select(t => t.Trim()).Where(ClientFieldRules.IsValidTag)); // an agent's bad tag is dropped, not fatal
            Exec(c, tx, "UPDATE keys SET uuid = $u, last_seen = $now WHERE fingerprint = $f", ("$u", uuid), ("$now", now), ("$f", fingerprint));
        }
        else
        {
            uuid = key.Uuid;
            if (GetClient(c, tx, uuid) is { RemovedAt: not null } returning)
            {
                // A removed client holds no claim on its name; coming back, it takes a free one.
                var name = UniqueClaimedName(c, tx, uuid, returning.DisplayName);
                Exec(c, tx, "UPDATE clients SET display_name = $dn, name_key = $nk WHERE uuid = $u",
                    ("$dn", name), ("$nk", ClientNameKey.Of(name)), ("$u", uuid));
            }

            Exec(c, tx, """
                UPDATE clients SET hostname = $h, platform = $p, username = $un, agent_version = $v, key_fingerprint = $f,
                    last_seen = $now, connection_count = connection_count + 1, removed_at = NULL
                WHERE uuid = $u
                """,
                ("$u", uuid), ("$h", identity.Hostname), ("$p", identity.Platform), ("$un", identity.Username),
                ("$v", identity.AgentVersion), ("$f", fingerprint), ("$now", now));
            Exec(c, tx, "UPDATE keys SET last_seen = $now WHERE fingerprint = $f", ("$now", now), ("$f", fingerprint));
        }

        Exec(c, tx, "DELETE FROM client_capabilities WHERE uuid = $u", ("$u", uuid));
        foreach (var cap in identity.Capabilities.Where(x => !string.IsNullOrWhiteSpace(x)).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            Exec(c, tx, "INSERT INTO client_capabilities(uuid, capability) VALUES ($u, $c)", ("$u", uuid), ("$c", cap));
        }

        RefreshListColumns(c, tx, uuid);
        var client = GetClient(c, tx, uuid)!;
        tx.Commit();
        return client;
    }

    /// <summary>Actor of the history entry that records an admitted client's name differing from its claim.</summary>
    internal const string AdmissionActor = "admission";

    /// <summary>
    /// The claimed name when no other live client has it (after normalisation, <see cref="ClientNameKey"/>), else the
    /// first free "name (2)", "name (3)"…; a renamed claim is written to the history naming the client that has it.
    /// </summary>
    private string UniqueClaimedName(SqliteConnection c, SqliteTransaction tx, string uuid, string claimed)
    {
        bool Taken(string key) => Scalar<long>(c, tx,
            "SELECT COUNT(*) FROM clients WHERE name_key = $k AND removed_at IS NULL AND uuid <> $u", ("$k", key), ("$u", uuid)) > 0;

        var name = ClientNameKey.Unique(claimed, Taken);
        if (name != claimed && NamedAlike(c, tx, uuid, claimed) is { } holder)
        {
            InsertAudit(c, tx, new AuditEntry
            {
                Operation = OperationNames.UpdateClient,
                Uuid = uuid,
                Actor = AdmissionActor,
                Surface = RegistrySurface,
                Status = OperationNames.Wire(OperationStatus.Succeeded),
                Detail = Clip($"display_name='{name}': the name '{claimed}' belongs to {ClientText.Describe(holder.DisplayName, holder.Uuid)}", 500),
            });
        }

        return name;
    }

    /// <summary>The live client other than <paramref name="uuid"/> whose name has the key of <paramref name="name"/>.</summary>
    private ClientRecord? NamedAlike(SqliteConnection c, SqliteTransaction tx, string uuid, string name)
    {
        using var read = Command(c, tx, "SELECT uuid FROM clients WHERE name_key = $k AND removed_at IS NULL AND uuid <> $u LIMIT 1",
            ("$k", ClientNameKey.Of(name)), ("$u", uuid));
        return ReadAll(read, r => r.GetString(0)).FirstOrDefault() is { } other ? GetClient(c, tx, other) : null;
    }

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(update);
        Validate(update);
        var started = Now;
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var current = GetClient(c, tx, uuid) ?? throw new RegistryNotFoundException($"no client with uuid {uuid}");
        if (current.RemovedAt is not null)
        {
            throw new RegistryNotFoundException($"client {uuid} was removed; a removed client cannot be edited");
        }

        // Only fields whose value differs are written and named in the history.
        var changed = new List<string>();
        void Set(string column, object? value, string description)
        {
            Exec(c, tx, $"UPDATE clients SET {column} = $v WHERE uuid = $u", ("$v", value), ("$u", uuid));
            changed.Add(description);
        }

        if (update.DisplayName is { } dn && dn.Trim() != current.DisplayName)
        {
            var name = dn.Trim();
            if (NamedAlike(c, tx, uuid, name) is { } holder)
            {
                throw new ClientNameTakenException(
                    $"the name '{ClientFieldRules.Printable(name)}' is taken: {ClientText.Describe(holder.DisplayName, holder.Uuid)} (uuid {holder.Uuid}) " +
                    "is named alike; names are unique ignoring case, Unicode compatibility forms and invisible characters",
                    holder.Uuid, holder.DisplayName);
            }

            Set("display_name", name, $"display_name='{name}'");
            Exec(c, tx, "UPDATE clients SET name_key = $k WHERE uuid = $u", ("$k", ClientNameKey.Of(name)), ("$u", uuid));
        }

        if (update.Purpose is { } pu && NullIfEmpty(pu) != current.Purpose)
        {
            Set("purpose", NullIfEmpty(pu), $"purpose='{pu}'");
        }

        if (update.ClearAllowedPaths)
        {
            if (current.AllowedPaths is not null)
            {
                Set("allowed_paths", null, "allowed_paths=all");
            }
        }
        else if (update.AllowedPaths is { } paths && (current.AllowedPaths is null || !paths.SequenceEqual(current.AllowedPaths, StringComparer.Ordinal)))
        {
            Set("allowed_paths", JsonSerializer.Serialize(paths.ToArray(), ProtocolJson.Default.StringArray), $"allowed_paths=[{string.Join(", ", paths)}]");
        }

        if (update.WebhookUrl is { } url && NullIfEmpty(url) != current.WebhookUrl)
        {
            // The URL itself stays out of the history: webhook URLs often embed a token.
            Set("webhook_url", NullIfEmpty(url), url.Length == 0 ? "webhook_url=global" : "webhook_url=set");
        }

        if (update.RateLimitRpm is { } rpm && rpm != current.RateLimitRpm)
        {
            Set("rate_limit_rpm", rpm, $"rate_limit_rpm={rpm}");
        }

        if (update.RateLimitConcurrent is { } conc && conc != current.RateLimitConcurrent)
        {
            Set("rate_limit_concurrent", conc, $"rate_limit_concurrent={conc}");
        }

        if (update.Tags is not null || update.AddTags is not null || update.RemoveTags is not null)
        {
            var final = EditTags(current.Tags, update);
            if (!final.SequenceEqual(current.Tags, StringComparer.Ordinal))
            {
                WriteTags(c, tx, uuid, final);
                changed.Add($"tags=[{string.Join(", ", final)}]");
            }
        }

        if (changed.Count > 0)
        {
            RefreshListColumns(c, tx, uuid);
        }

        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.UpdateClient,
            Uuid = uuid,
            Actor = actor,
            Surface = surface,
            Status = OperationNames.Wire(changed.Count == 0 ? OperationStatus.Unchanged : OperationStatus.Succeeded),
            Detail = Clip(changed.Count == 0 ? "no change" : string.Join("; ", changed), 500),
            DurationMs = Now - started,
        });
        var result = GetClient(c, tx, uuid)!;
        tx.Commit();
        return result;
    }

    private static void Validate(ClientUpdate u)
    {
        if (u.DisplayName is { } dn && dn.Trim().Length is < 1 or > ClaimedIdentityRules.MaxDisplayNameLength)
        {
            throw new RegistryValidationException("display_name", $"display_name must be 1 to {ClaimedIdentityRules.MaxDisplayNameLength} characters (got {dn.Trim().Length})");
        }

        if (u.DisplayName is { } named && !ClientFieldRules.IsValidDisplayName(named.Trim()))
        {
            throw new RegistryValidationException("display_name", $"display_name must not contain control characters (got \"{ClientFieldRules.Printable(named)}\")");
        }

        if (u.Purpose is { Length: > ClaimedIdentityRules.MaxPurposeLength } pu)
        {
            throw new RegistryValidationException("purpose", $"purpose must be at most {ClaimedIdentityRules.MaxPurposeLength} characters (got {pu.Length})");
        }

        // The same characters are refused from an operator as are neutralised in an agent's claim (ClaimedIdentityRules).
        foreach (var (field, text) in new[] { ("display_name", u.DisplayName), ("purpose", u.Purpose) }
                     .Concat((u.Tags ?? []).Concat(u.AddTags ?? []).Select(t => ("tags", (string?)t))))
        {
            if (text is not null && ClaimedIdentityRules.CheckOperatorText(field, text) is { } refusal)
            {
                throw new RegistryValidationException(field, refusal);
            }
        }

        if (u.RateLimitRpm is { } rpm && rpm is < 1 or > 1000)
        {
            throw new RegistryValidationException("rate_limit_rpm", $"rate_limit_rpm must be between 1 and 1000 (got {rpm})");
        }

        if (u.RateLimitConcurrent is { } conc && conc is < 1 or > 100)
        {
            throw new RegistryValidationException("rate_limit_concurrent", $"rate_limit_concurrent must be between 1 and 100 (got {conc})");
        }

        foreach (var tag in (u.Tags ?? []).Concat(u.AddTags ?? []))
        {
            if (!ClientFieldRules.IsValidTag(tag?.Trim()))
            {
                throw new RegistryValidationException("tags", $"{ClientFieldRules.TagRule} (got \"{ClientFieldRules.Printable(tag)}\")");
            }
        }

        if (u.AllowedPaths is { } paths && paths.Any(string.IsNullOrWhiteSpace))
        {
            throw new RegistryValidationException("allowed_paths", "allowed_paths entries must be non-empty paths");
        }

        ValidateLimits(u);
    }

    private static void WriteTags(SqliteConnection c, SqliteTransaction tx, string uuid, IEnumerable<string> tags)
    {
        Exec(c, tx, "DELETE FROM client_tags WHERE uuid = $u", ("$u", uuid));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var position = 0;
        foreach (var tag in tags)
        {
            var lower = tag.ToLowerInvariant();
            if (tag.Length == 0 || !seen.Add(lower))
            {
                continue;
            }

            Exec(c, tx, "INSERT INTO client_tags(uuid, tag_lower, tag, position) VALUES ($u, $l, $t, $p)",
                ("$u", uuid), ("$l", lower), ("$t", tag), ("$p", position++));
        }
    }

    // ================================================================ sessions

    public SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid)
    {
        ArgumentNullException.ThrowIfNull(secret);
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        CloseSessionsWhere(c, tx, "uuid = $u", "replaced", ("$u", uuid));
        var now = Now;
        Exec(c, tx, """
            INSERT INTO sessions(uuid, fingerprint, host, tunnel_port, secret, gate_pid, hub_pid, connected_at, last_heartbeat)
            VALUES ($u, $f, $h, $tp, $s, $gp, $hp, $now, $now)
            """,
            ("$u", uuid), ("$f", fingerprint), ("$h", host), ("$tp", tunnelPort), ("$s", secret), ("$gp", gatePid), ("$hp", hubPid), ("$now", now));
        var id = Scalar<long>(c, tx, "SELECT last_insert_rowid()");
        var session = GetSession(c, tx, id)!;
        tx.Commit();
        return session;
    }

    public void MarkSessionOnline(long sessionId)
    {
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var s = GetSession(c, tx, sessionId) ?? throw new RegistryNotFoundException($"no session {sessionId}");
        if (s.ClosedAt is not null)
        {
            throw new InvalidOperationException($"session {sessionId} is already closed ({s.CloseReason})");
        }

        var now = Now;
        Exec(c, tx, "UPDATE sessions SET online_at = $now, last_heartbeat = $now WHERE id = $id", ("$now", now), ("$id", sessionId));
        Exec(c, tx, "UPDATE clients SET last_seen = $now WHERE uuid = $u", ("$now", now), ("$u", s.Uuid));
        Emit(c, tx, "client.connected", s.Uuid, new JsonObject
        {
            ["session_id"] = sessionId,
            ["host"] = s.Host,
            ["tunnel_port"] = s.TunnelPort,
        });
        tx.Commit();
    }

    public void TouchSession(long sessionId)
    {
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var now = Now;
        Exec(c, tx, "UPDATE sessions SET last_heartbeat = $now WHERE id = $id AND closed_at IS NULL", ("$now", now), ("$id", sessionId));
        Exec(c, tx, "UPDATE clients SET last_seen = $now WHERE uuid = (SELECT uuid FROM sessions WHERE id = $id AND closed_at IS NULL)",
            ("$now", now), ("$id", sessionId));
        tx.Commit();
    }

    public void CloseSession(long sessionId, string reason)
    {
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        CloseSessionsWhere(c, tx, "id = $id", reason, ("$id", sessionId));
        tx.Commit();
    }

    public int CloseAllSessions(string reason)
    {
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var closed = CloseSessionsWhere(c, tx, "1 = 1", reason);
        tx.Commit();
        return closed.Count;
    }

    public SessionRecord? GetOpenSession(string uuid)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM sessions WHERE uuid = $u AND closed_at IS NULL", ("$u", uuid));
        return ReadAll(cmd, ReadSession).FirstOrDefault();
    }

    /// <summary>A session by id, open or closed.</summary>
    public SessionRecord? GetSession(long sessionId)
    {
        using var c = Connect();
        return GetSession(c, null, sessionId);
    }

    public IReadOnlyList<SessionRecord> ListOpenSessions()
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM sessions WHERE closed_at IS NULL ORDER BY id");
        return ReadAll(cmd, ReadSession);
    }

    private List<SessionRecord> CloseSessionsWhere(SqliteConnection c, SqliteTransaction tx, string condition, string reason, params (string Name, object? Value)[] args)
    {
        using var select = Command(c, tx, $"SELECT * FROM sessions WHERE closed_at IS NULL AND {condition}", args);
        var open = ReadAll(select, ReadSession);
        var now = Now;
        var closed = new List<SessionRecord>(open.Count);
        foreach (var s in open)
        {
            // A closed session's secret opens nothing any more; it is not kept (the row stays for the history).
            Exec(c, tx, "UPDATE sessions SET closed_at = $now, close_reason = $r, secret = zeroblob(0) WHERE id = $id", ("$now", now), ("$r", reason), ("$id", s.Id));
            if (s.OnlineAt is not null)
            {
                Emit(c, tx, "client.disconnected", s.Uuid, new JsonObject { ["session_id"] = s.Id, ["reason"] = reason });
            }

            closed.Add(s with { ClosedAt = DateTimeOffset.FromUnixTimeMilliseconds(now), CloseReason = reason });
        }

        return closed;
    }

    // ================================================================ audit, settings, events

    public void RecordAudit(AuditEntry entry)
    {
        using var c = Connect();
        InsertAudit(c, null, entry);
    }

    public IReadOnlyList<AuditEntry> ListAudit(string? uuid = null, int limit = 100)
    {
        using var c = Connect();
        using var cmd = Command(c, null,
            "SELECT * FROM audit" + (uuid is null ? "" : " WHERE uuid = $u") + " ORDER BY id DESC LIMIT $l",
            ("$u", uuid), ("$l", limit));
        return ReadAll(cmd, r => new AuditEntry
        {
            At = Time(r, "at"),
            Actor = Str(r, "actor")!,
            Surface = Str(r, "surface")!,
            Operation = Str(r, "operation")!,
            Uuid = Str(r, "uuid"),
            Status = Str(r, "status")!,
            Detail = Str(r, "detail"),
            DurationMs = Long(r, "duration_ms"),
        });
    }

    public string? GetSetting(string key)
    {
        using var c = Connect();
        return Scalar<string>(c, null, "SELECT value FROM settings WHERE key = $k", ("$k", key));
    }

    public void SetSetting(string key, string? value)
    {
        using var c = Connect();
        if (value is null)
        {
            Exec(c, null, "DELETE FROM settings WHERE key = $k", ("$k", key));
        }
        else
        {
            Exec(c, null, "INSERT INTO settings(key, value) VALUES ($k, $v) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                ("$k", key), ("$v", value));
        }
    }

    /// <summary>Outbox rows after <paramref name="afterId"/>, oldest first.</summary>
    public IReadOnlyList<RegistryEvent> ListEvents(long afterId = 0, int limit = 1000)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM events WHERE id > $a ORDER BY id LIMIT $l", ("$a", afterId), ("$l", limit));
        return ReadAll(cmd, r => new RegistryEvent(
            Long(r, "id")!.Value, Str(r, "type")!, Str(r, "uuid"), Str(r, "payload")!, Time(r, "created_at")!.Value, Str(r, "status")!));
    }

    public void Dispose()
    {
        using var c = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(c);
    }

    private void InsertAudit(SqliteConnection c, SqliteTransaction? tx, AuditEntry e)
    {
        Exec(c, tx, """
            INSERT INTO audit(at, actor, surface, operation, uuid, status, detail, duration_ms)
            VALUES ($at, $actor, $surface, $op, $u, $st, $d, $ms)
            """,
            ("$at", (e.At ?? _time.GetUtcNow()).ToUnixTimeMilliseconds()), ("$actor", e.Actor), ("$surface", e.Surface),
            ("$op", e.Operation), ("$u", e.Uuid), ("$st", e.Status), ("$d", e.Detail), ("$ms", e.DurationMs));
    }

    // The outbox row with its full webhook envelope: SqliteRegistry.Webhooks.cs.
    private void Emit(SqliteConnection c, SqliteTransaction tx, string type, string? uuid, JsonObject payload)
        => InsertEvent(c, tx, type, uuid, payload);

    // ================================================================ reading rows

    private long StaleBefore(SqliteConnection c, SqliteTransaction? tx)
    {
        var text = Scalar<string>(c, tx, "SELECT value FROM settings WHERE key = $k", ("$k", HeartbeatSetting));
        var seconds = int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var s) && s > 0 ? s : DefaultHeartbeatSeconds;
        return Now - (3L * seconds * 1000);
    }

    private ClientRecord? GetClient(SqliteConnection c, SqliteTransaction? tx, string uuid)
    {
        return ClientRowReader.Read(c, " WHERE c.uuid = ?1", uuid, StaleBefore(c, tx), pool: null).FirstOrDefault();
    }

    private static KeyRecord? GetKey(SqliteConnection c, SqliteTransaction? tx, string fingerprint)
    {
        using var cmd = Command(c, tx, "SELECT * FROM keys WHERE fingerprint = $f", ("$f", fingerprint));
        return ReadAll(cmd, ReadKey).FirstOrDefault();
    }

    private static KeyRecord ReadKey(SqliteDataReader r) => new()
    {
        Fingerprint = Str(r, "fingerprint")!,
        PublicKey = Str(r, "public_key"),
        Status = Str(r, "status") switch
        {
            Approved => KeyStatus.Approved,
            Revoked => KeyStatus.Revoked,
            _ => KeyStatus.Pending,
        },
        Uuid = Str(r, "uuid"),
        ClaimedUuid = Str(r, "claimed_uuid"),
        ClaimedHostname = Str(r, "claimed_hostname"),
        ClaimedPlatform = Str(r, "claimed_platform"),
        ClaimedUsername = Str(r, "claimed_username"),
        ClaimedDisplayName = Str(r, "claimed_display_name"),
        IsMismatch = Long(r, "is_mismatch") == 1,
        FirstSeen = Time(r, "first_seen")!.Value,
        LastSeen = Time(r, "last_seen")!.Value,
        DecidedAt = Time(r, "decided_at"),
        DecidedBy = Str(r, "decided_by"),
        TunnelPort = Long(r, "tunnel_port") is { } port ? (int)port : null,
    };

    private static SessionRecord? GetSession(SqliteConnection c, SqliteTransaction? tx, long id)
    {
        using var cmd = Command(c, tx, "SELECT * FROM sessions WHERE id = $id", ("$id", id));
        return ReadAll(cmd, ReadSession).FirstOrDefault();
    }

    private static SessionRecord ReadSession(SqliteDataReader r) => new()
    {
        Id = Long(r, "id")!.Value,
        Uuid = Str(r, "uuid")!,
        Fingerprint = Str(r, "fingerprint")!,
        Host = Str(r, "host")!,
        TunnelPort = (int)Long(r, "tunnel_port")!.Value,
        Secret = (byte[])r["secret"],
        GatePid = (int?)Long(r, "gate_pid"),
        HubPid = (int?)Long(r, "hub_pid"),
        ConnectedAt = Time(r, "connected_at")!.Value,
        OnlineAt = Time(r, "online_at"),
        LastHeartbeat = Time(r, "last_heartbeat")!.Value,
        ClosedAt = Time(r, "closed_at"),
        CloseReason = Str(r, "close_reason"),
    };

    private static string StatusText(KeyStatus s) => s switch
    {
        KeyStatus.Approved => Approved,
        KeyStatus.Revoked => Revoked,
        _ => Pending,
    };

    // ================================================================ small helpers

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }

        return cmd;
    }

    private static void Exec(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        cmd.ExecuteNonQuery();
    }

    private static T? Scalar<T>(SqliteConnection c, SqliteTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        var value = cmd.ExecuteScalar();
        return value is null or DBNull ? default : (T)Convert.ChangeType(value, typeof(T), CultureInfo.InvariantCulture);
    }

    private static List<T> ReadAll<T>(SqliteCommand cmd, Func<SqliteDataReader, T> read)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<T>();
        while (r.Read())
        {
            list.Add(read(r));
        }

        return list;
    }

    private static string? Str(SqliteDataReader r, string column)
    {
        var i = r.GetOrdinal(column);
        return r.IsDBNull(i) ? null : r.GetString(i);
    }

    private static long? Long(SqliteDataReader r, string column)
    {
        var i = r.GetOrdinal(column);
        return r.IsDBNull(i) ? null : r.GetInt64(i);
    }

    private static DateTimeOffset? Time(SqliteDataReader r, string column)
        => Long(r, column) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    private static string Clip(string s, int max) => s.Length <= max ? s : s[..max];

    private static string WildcardToLike(string pattern)
    {
        var sb = new StringBuilder(pattern.Length);
        foreach (var ch in pattern)
        {
            switch (ch)
            {
                case '*': sb.Append('%'); break;
                case '?': sb.Append('_'); break;
                case '%' or '_' or '\\': sb.Append('\\').Append(ch); break;
                default: sb.Append(ch); break;
            }
        }

        return sb.ToString();
    }
}
