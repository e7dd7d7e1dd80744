using System.Globalization;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Hubs sharing the registry: heartbeat rows, and the closing of a dead hub's sessions (IHubStore).
public sealed partial class SqliteRegistry : IHubStore
{
    public HubRecord BeatHub(string hubId, string host, int pid)
    {
        HubIds.Validate(hubId);
        ArgumentException.ThrowIfNullOrEmpty(host);
        // Not behind the writer lock, and not from the pool other writers may hold: a hub's liveness must not wait for
        // a burst of other writes, or the other hubs take it for dead and close its sessions. One upsert of its own row
        // needs no turn of its own.
        using var c = _engine.OpenForLiveness();
        using var tx = _engine.BeginOwnRowWrite(c);
        var now = Now;
        Exec(c, tx, """
            INSERT INTO hubs(id, host, pid, started_at, last_seen) VALUES (@id, @h, @p, @now, @now)
            ON CONFLICT(id) DO UPDATE SET
                started_at = CASE WHEN hubs.pid <> excluded.pid OR hubs.host <> excluded.host THEN excluded.started_at ELSE hubs.started_at END,
                host = excluded.host, pid = excluded.pid, last_seen = excluded.last_seen
            """,
            ("@id", hubId), ("@h", host), ("@p", (long)pid), ("@now", now));
        using var read = Command(c, tx, "SELECT * FROM hubs WHERE id = @id", ("@id", hubId));
        var hub = ReadAll(read, ReadHub).Single();
        tx.Commit();
        return hub;
    }

    public void PublishHubRelay(string hubId, HubRelayEndpoint relay)
    {
        HubIds.Validate(hubId);
        ArgumentNullException.ThrowIfNull(relay);
        ArgumentException.ThrowIfNullOrEmpty(relay.Address);
        ArgumentException.ThrowIfNullOrEmpty(relay.HostKey);
        ArgumentException.ThrowIfNullOrEmpty(relay.Key);
        ArgumentException.ThrowIfNullOrEmpty(relay.KeyFingerprint);
        using var c = Connect();
        using var tx = BeginWrite(c);
        using var update = Command(c, tx, """
            UPDATE hubs SET relay_address = @a, relay_host_key = @hk, relay_key = @k, relay_key_fingerprint = @fp WHERE id = @id
            """,
            ("@a", relay.Address), ("@hk", relay.HostKey), ("@k", relay.Key), ("@fp", relay.KeyFingerprint), ("@id", hubId));
        var changed = update.ExecuteNonQuery();
        if (changed == 0)
        {
            throw new RegistryNotFoundException($"no hub {hubId} in the registry; it publishes its relay after its first heartbeat");
        }

        tx.Commit();
    }

    public IReadOnlyList<HubRecord> ListHubs()
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM hubs ORDER BY started_at, id");
        return ReadAll(cmd, ReadHub);
    }

    public IReadOnlyList<SessionRecord> ListOpenSessionsOf(string hubId)
    {
        ArgumentNullException.ThrowIfNull(hubId);
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM sessions WHERE closed_at IS NULL AND hub_id = @hub ORDER BY id", ("@hub", hubId));
        return ReadAll(cmd, ReadSession);
    }

    public IReadOnlyList<SessionRecord> CloseSessionsOfDeadHubs(string survivor, TimeSpan deadAfter)
    {
        HubIds.Validate(survivor);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(deadAfter, TimeSpan.Zero);
        using var c = Connect();
        // The writer lock makes the decision and the closing one step: a second survivor doing the same at the same
        // moment waits, then finds the sessions closed (closed_at IS NULL no longer holds) and emits nothing.
        using var tx = BeginWrite(c);
        var cutoff = Now - (long)deadAfter.TotalMilliseconds;
        var dead = new List<(string Id, long LastSeen)>();
        using (var cmd = Command(c, tx, """
            SELECT h.id, h.last_seen FROM hubs h
            WHERE h.id <> @me AND h.last_seen < @cutoff
              AND EXISTS (SELECT 1 FROM sessions s WHERE s.closed_at IS NULL AND s.hub_id = h.id)
            ORDER BY h.id
            """, ("@me", survivor), ("@cutoff", cutoff)))
        using (var r = cmd.ExecuteReader())
        {
            while (r.Read())
            {
                dead.Add((r.GetString(0), r.GetInt64(1)));
            }
        }

        var closed = new List<SessionRecord>();
        foreach (var (id, lastSeen) in dead)
        {
            var silent = (Now - lastSeen) / 1000;
            closed.AddRange(CloseSessionsWhere(c, tx, "hub_id = @hub",
                $"hub {id} stopped (no heartbeat for {silent.ToString(CultureInfo.InvariantCulture)} s); closed by hub {survivor}", ("@hub", id)));
        }

        tx.Commit();
        return closed;
    }

    private static HubRecord ReadHub(DbDataReader r) => new(
        Str(r, "id")!, Str(r, "host")!, (int)Long(r, "pid")!.Value, Time(r, "started_at")!.Value, Time(r, "last_seen")!.Value)
    {
        Relay = Str(r, "relay_address") is { } address && Str(r, "relay_host_key") is { } hostKey
            && Str(r, "relay_key") is { } key && Str(r, "relay_key_fingerprint") is { } fingerprint
            ? new HubRelayEndpoint(address, hostKey, key, fingerprint)
            : null,
    };
}
