using System.Text.Json.Nodes;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Sessions: opened by the gate, marked online and kept alive by the hub, closed by either (ISessionStore).
public sealed partial class SqliteRegistry
{
    public SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid, string? hubId = null)
    {
        if (hubId is not null)
        {
            HubIds.Validate(hubId);
        }

        ArgumentNullException.ThrowIfNull(secret);
        using var c = Connect();
        using var tx = BeginWrite(c);
        CloseSessionsWhere(c, tx, "uuid = @u", "replaced", ("@u", uuid));
        var now = Now;
        var id = Scalar<long>(c, tx, """
            INSERT INTO sessions(uuid, fingerprint, host, tunnel_port, secret, gate_pid, hub_pid, hub_id, connected_at, last_heartbeat)
            VALUES (@u, @f, @h, @tp, @s, @gp, @hp, @hub, @now, @now)
            RETURNING id
            """,
            ("@u", uuid), ("@f", fingerprint), ("@h", host), ("@tp", tunnelPort), ("@s", secret), ("@gp", gatePid), ("@hp", hubPid), ("@hub", hubId), ("@now", now));
        var session = GetSession(c, tx, id)!;
        tx.Commit();
        return session;
    }

    public void MarkSessionOnline(long sessionId)
    {
        using var c = Connect();
        using var tx = BeginWrite(c);
        var s = GetSession(c, tx, sessionId) ?? throw new RegistryNotFoundException($"no session {sessionId}");
        if (s.ClosedAt is not null)
        {
            throw new InvalidOperationException($"session {sessionId} is already closed ({s.CloseReason})");
        }

        var now = Now;
        Exec(c, tx, "UPDATE sessions SET online_at = @now, last_heartbeat = @now WHERE id = @id", ("@now", now), ("@id", sessionId));
        Exec(c, tx, "UPDATE clients SET last_seen = @now WHERE uuid = @u", ("@now", now), ("@u", s.Uuid));
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
        using var tx = BeginWrite(c);
        var now = Now;
        Exec(c, tx, "UPDATE sessions SET last_heartbeat = @now WHERE id = @id AND closed_at IS NULL", ("@now", now), ("@id", sessionId));
        Exec(c, tx, "UPDATE clients SET last_seen = @now WHERE uuid = (SELECT uuid FROM sessions WHERE id = @id AND closed_at IS NULL)",
            ("@now", now), ("@id", sessionId));
        tx.Commit();
    }

    public void CloseSession(long sessionId, string reason)
    {
        using var c = Connect();
        using var tx = BeginWrite(c);
        CloseSessionsWhere(c, tx, "id = @id", reason, ("@id", sessionId));
        tx.Commit();
    }

    public int CloseAllSessions(string reason)
    {
        using var c = Connect();
        using var tx = BeginWrite(c);
        var closed = CloseSessionsWhere(c, tx, "1 = 1", reason);
        tx.Commit();
        return closed.Count;
    }

    public SessionRecord? GetOpenSession(string uuid)
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM sessions WHERE uuid = @u AND closed_at IS NULL", ("@u", uuid));
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

    private List<SessionRecord> CloseSessionsWhere(DbConnection c, DbTransaction tx, string condition, string reason, params (string Name, object? Value)[] args)
    {
        using var select = Command(c, tx, $"SELECT * FROM sessions WHERE closed_at IS NULL AND {condition}", args);
        var open = ReadAll(select, ReadSession);
        var now = Now;
        var closed = new List<SessionRecord>(open.Count);
        foreach (var s in open)
        {
            // A closed session's secret opens nothing any more; it is not kept (the row stays for the history).
            Exec(c, tx, "UPDATE sessions SET closed_at = @now, close_reason = @r, secret = @wiped WHERE id = @id", ("@now", now), ("@r", reason), ("@wiped", Array.Empty<byte>()), ("@id", s.Id));
            if (s.OnlineAt is not null)
            {
                Emit(c, tx, "client.disconnected", s.Uuid, new JsonObject { ["session_id"] = s.Id, ["reason"] = reason });
            }

            closed.Add(s with { ClosedAt = DateTimeOffset.FromUnixTimeMilliseconds(now), CloseReason = reason });
        }

        return closed;
    }

    private static SessionRecord? GetSession(DbConnection c, DbTransaction? tx, long id)
    {
        using var cmd = Command(c, tx, "SELECT * FROM sessions WHERE id = @id", ("@id", id));
        return ReadAll(cmd, ReadSession).FirstOrDefault();
    }

    private static SessionRecord ReadSession(DbDataReader r) => new()
    {
        Id = Long(r, "id")!.Value,
        Uuid = Str(r, "uuid")!,
        Fingerprint = Str(r, "fingerprint")!,
        Host = Str(r, "host")!,
        TunnelPort = (int)Long(r, "tunnel_port")!.Value,
        Secret = (byte[])r["secret"],
        GatePid = (int?)Long(r, "gate_pid"),
        HubPid = (int?)Long(r, "hub_pid"),
        HubId = Str(r, "hub_id"),
        ConnectedAt = Time(r, "connected_at")!.Value,
        OnlineAt = Time(r, "online_at"),
        LastHeartbeat = Time(r, "last_heartbeat")!.Value,
        ClosedAt = Time(r, "closed_at"),
        CloseReason = Str(r, "close_reason"),
    };
}
