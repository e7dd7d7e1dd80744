using System.Text.Json.Nodes;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Text;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Keys: pending, approved and revoked SSH keys, the pending bound, tunnel ports, purges (IKeyStore).
public sealed partial class SqliteRegistry
{
    private const string Approved = "approved";

    private const string Pending = "pending";

    private const string Revoked = "revoked";

    /// <summary>
    /// Upper bound of pending keys (flood resistance). A new key that finds the bound reached takes the place of the
    /// pending key unseen the longest: refusing it instead would let whoever fills the table lock every new machine out.
    /// </summary>
    public int MaxPendingKeys { get; set; } = 10_000;

    public KeyRecord? GetKey(string fingerprint)
    {
        using var c = Connect();
        return GetKey(c, null, fingerprint);
    }

    public IReadOnlyList<KeyRecord> ListKeys(KeyStatus? status = null)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM keys" + (status is null ? "" : " WHERE status = @s") + " ORDER BY first_seen, fingerprint");
        if (status is { } s)
        {
            cmd.Parameters.AddWithValue("@s", StatusText(s));
        }

        return ReadAll(cmd, ReadKey);
    }

    public KeyRecord RecordPendingKey(string fingerprint, string? publicKey, AgentIdentity identity)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        ArgumentNullException.ThrowIfNull(identity);
        identity = ClaimedIdentityRules.Normalise(identity);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var now = Now;
        var existing = GetKey(c, tx, fingerprint);

        string? pinnedElsewhere = null;
        if (identity.ClaimedUuid is { Length: > 0 } claimed)
        {
            var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = @u", ("@u", claimed));
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
                        (SELECT fingerprint FROM keys WHERE status = 'pending' ORDER BY last_seen, fingerprint LIMIT @n)
                    """, ("@n", pendingCount - MaxPendingKeys + 1));
            }

            Exec(c, tx, """
                INSERT INTO keys(fingerprint, public_key, status, claimed_uuid, claimed_hostname, claimed_platform,
                                 claimed_username, claimed_display_name, is_mismatch, first_seen, last_seen)
                VALUES (@f, @pk, 'pending', @cu, @h, @p, @un, @dn, @m, @now, @now)
                """,
                ("@f", fingerprint), ("@pk", publicKey), ("@cu", identity.ClaimedUuid), ("@h", identity.Hostname),
                ("@p", identity.Platform), ("@un", identity.Username), ("@dn", identity.DisplayName), ("@m", mismatch ? 1 : 0), ("@now", now));
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
                UPDATE keys SET public_key = COALESCE(@pk, public_key), claimed_uuid = @cu, claimed_hostname = @h,
                    claimed_platform = @p, claimed_username = @un, claimed_display_name = @dn,
                    is_mismatch = CASE WHEN status = 'pending' THEN @m ELSE is_mismatch END, last_seen = @now
                WHERE fingerprint = @f
                """,
                ("@f", fingerprint), ("@pk", publicKey), ("@cu", identity.ClaimedUuid), ("@h", identity.Hostname),
                ("@p", identity.Platform), ("@un", identity.Username), ("@dn", identity.DisplayName), ("@m", mismatch ? 1 : 0), ("@now", now));
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
        using var tx = BeginWrite(c);
        var key = GetKey(c, tx, fingerprint);
        if (key?.Status != KeyStatus.Approved)
        {
            throw new InvalidOperationException($"key {fingerprint} is not approved; only approved keys get a tunnel port");
        }

        var held = new HashSet<int>();
        using (var cmd = Command(c, tx, "SELECT tunnel_port FROM keys WHERE tunnel_port BETWEEN @a AND @b", ("@a", range.First), ("@b", range.Last)))
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

            Exec(c, tx, "UPDATE keys SET tunnel_port = @p WHERE fingerprint = @f", ("@p", port), ("@f", fingerprint));
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
        using var tx = (dryRun ? BeginRead(c) : BeginWrite(c));
        using var select = Command(c, tx, "SELECT * FROM keys WHERE status = 'pending' AND last_seen < @cut ORDER BY last_seen, fingerprint", ("@cut", cutoff));
        var keys = ReadAll(select, ReadKey);
        if (dryRun)
        {
            tx.Commit();
            return keys;
        }

        if (keys.Count > 0)
        {
            Exec(c, tx, "DELETE FROM keys WHERE status = 'pending' AND last_seen < @cut", ("@cut", cutoff));
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
                Detail = AuditEntry.Truncate(
                    $"{keys.Count} pending key(s) unseen for more than {Ages.Describe(unseenFor)}"
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
        using var tx = BeginWrite(c);
        if (OperatorNameOfKey(c, tx, fingerprintOrUuid) is { } operatorName)
        {
            throw new KeyDecisionException(
                $"key {fingerprintOrUuid} is the key of operator '{operatorName}'; an operator key is never a client key, so it is not approved");
        }

        var key = GetKey(c, tx, fingerprintOrUuid);
        if (key is null)
        {
            // A uuid names only the key the client is pinned to. Trusting another key instead, or a revoked key again, is
            // never implied: it takes that key's exact fingerprint.
            var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = @u", ("@u", fingerprintOrUuid));
            var claimants = ClaimantsOf(c, tx, fingerprintOrUuid);
            if (claimants.Count > 0)
            {
                throw new KeyDecisionException(DescribeClaim(fingerprintOrUuid, pinned, claimants)
                    + $" To trust a claimant instead, approve its exact fingerprint (approve {claimants[0]}); the client's key {pinned} is then revoked.");
            }

            key = pinned is null ? null : GetKey(c, tx, pinned);
            if (key is null)
            {
                var isClient = Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = @u", ("@u", fingerprintOrUuid)) > 0;
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
                 && Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = @u", ("@u", target)) > 0)
        {
            var old = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = @u", ("@u", target));
            Exec(c, tx, "UPDATE clients SET key_fingerprint = @f, key_mismatch = 0 WHERE uuid = @u", ("@f", key.Fingerprint), ("@u", target));
            Exec(c, tx, "UPDATE keys SET status = 'approved', uuid = @u, is_mismatch = 0, decided_at = @now, decided_by = @a WHERE fingerprint = @f",
                ("@u", target), ("@now", now), ("@a", actor), ("@f", key.Fingerprint));
            if (old is not null && old != key.Fingerprint)
            {
                Exec(c, tx, "UPDATE keys SET status = 'revoked', decided_at = @now, decided_by = @a WHERE fingerprint = @f",
                    ("@now", now), ("@a", actor), ("@f", old));
                CloseSessionsWhere(c, tx, "fingerprint = @f", "key replaced", ("@f", old));
            }

            outcome = new ApproveOutcome { Fingerprint = key.Fingerprint, Uuid = target, ResolvedMismatch = true, ReplacedFingerprint = old };
        }
        else
        {
            Exec(c, tx, "UPDATE keys SET status = 'approved', is_mismatch = 0, decided_at = @now, decided_by = @a WHERE fingerprint = @f",
                ("@now", now), ("@a", actor), ("@f", key.Fingerprint));
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
    private static List<string> ClaimantsOf(DbConnection c, DbTransaction tx, string uuid)
    {
        using var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = "SELECT fingerprint FROM keys WHERE claimed_uuid = @u AND is_mismatch = 1 AND status = 'pending' ORDER BY last_seen DESC";
        cmd.Parameters.AddWithValue("@u", uuid);
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
        using var tx = BeginWrite(c);
        var key = GetKey(c, tx, fingerprintOrUuid);
        if (key is null)
        {
            // Revoking by uuid while another key claims the client would be ambiguous: name the fingerprint.
            var claimants = ClaimantsOf(c, tx, fingerprintOrUuid);
            if (claimants.Count > 0)
            {
                var pinned = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = @u", ("@u", fingerprintOrUuid));
                throw new KeyDecisionException(DescribeClaim(fingerprintOrUuid, pinned, claimants)
                    + $" Revoke by exact fingerprint: revoke {claimants[0]} refuses the claimant, revoke {pinned} cuts the client off.");
            }

            var fp = Scalar<string>(c, tx, "SELECT key_fingerprint FROM clients WHERE uuid = @u", ("@u", fingerprintOrUuid))
                     ?? Scalar<string>(c, tx, "SELECT fingerprint FROM keys WHERE uuid = @u ORDER BY last_seen DESC LIMIT 1", ("@u", fingerprintOrUuid));
            key = fp is null ? null : GetKey(c, tx, fp);
            if (key is null)
            {
                throw new RegistryNotFoundException($"no key with fingerprint {fingerprintOrUuid} and no client with uuid {fingerprintOrUuid}");
            }
        }

        var already = key.Status == KeyStatus.Revoked;
        if (!already)
        {
            Exec(c, tx, "UPDATE keys SET status = 'revoked', decided_at = @now, decided_by = @a WHERE fingerprint = @f",
                ("@now", Now), ("@a", actor), ("@f", key.Fingerprint));
        }

        var closed = CloseSessionsWhere(c, tx, "fingerprint = @f", "revoked", ("@f", key.Fingerprint));
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

    private static KeyRecord? GetKey(DbConnection c, DbTransaction? tx, string fingerprint)
    {
        using var cmd = Command(c, tx, "SELECT * FROM keys WHERE fingerprint = @f", ("@f", fingerprint));
        return ReadAll(cmd, ReadKey).FirstOrDefault();
    }

    private static KeyRecord ReadKey(DbDataReader r) => new()
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

    private static string StatusText(KeyStatus s) => s switch
    {
        KeyStatus.Approved => Approved,
        KeyStatus.Revoked => Revoked,
        _ => Pending,
    };

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor) => ApproveKey(fingerprintOrUuid, actor, RegistrySurface);

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor) => RevokeKey(fingerprintOrUuid, actor, RegistrySurface);
}
