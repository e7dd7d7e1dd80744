using System.Globalization;
using System.Text.Json.Nodes;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

public sealed partial class SqliteRegistry
{
    /// <summary>Prefix of the close reason of a session the health monitor ended.</summary>
    public const string UnhealthyCloseReason = "unhealthy";

    public IReadOnlyList<ClientHealth> ListHealth()
    {
        using var c = Connect();
        using var cmd = Command(c, null, "SELECT * FROM client_health ORDER BY uuid");
        return ReadAll(cmd, r => new ClientHealth
        {
            Uuid = Str(r, "uuid")!,
            ConsecutiveFailures = (int)(Long(r, "consecutive_failures") ?? 0),
            LastError = Str(r, "last_health_error"),
            LastFailureAt = Time(r, "last_failure_at"),
            LastOkAt = Time(r, "last_ok_at"),
            UnhealthySince = Time(r, "unhealthy_since"),
        });
    }

    public void RecordHealthSuccess(string uuid)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        using var c = Connect();
        Exec(c, null, """
            INSERT INTO client_health(uuid, consecutive_failures, last_ok_at) VALUES (@u, 0, @now)
            ON CONFLICT(uuid) DO UPDATE SET consecutive_failures = 0, last_ok_at = @now, unhealthy_since = NULL
            """, ("@u", uuid), ("@now", Now));
    }

    public void RecordHealthFailure(string uuid, string error, int consecutiveFailures)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(error);
        using var c = Connect();
        Exec(c, null, """
            INSERT INTO client_health(uuid, consecutive_failures, last_health_error, last_failure_at) VALUES (@u, @n, @e, @now)
            ON CONFLICT(uuid) DO UPDATE SET consecutive_failures = @n, last_health_error = @e, last_failure_at = @now
            """, ("@u", uuid), ("@n", consecutiveFailures), ("@e", Clip(error, 500)), ("@now", Now));
    }

    public bool MarkUnhealthy(string uuid, long sessionId, string reason, int consecutiveFailures, bool closeSession = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(reason);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var open = Scalar<long>(c, tx, "SELECT COUNT(*) FROM sessions WHERE id = @id AND uuid = @u AND closed_at IS NULL", ("@id", sessionId), ("@u", uuid));
        if (open == 0)
        {
            return false;
        }

        var now = Now;
        var error = Clip(reason, 500);
        Exec(c, tx, """
            INSERT INTO client_health(uuid, consecutive_failures, last_health_error, last_failure_at, unhealthy_since) VALUES (@u, @n, @e, @now, @now)
            ON CONFLICT(uuid) DO UPDATE SET consecutive_failures = @n, last_health_error = @e, last_failure_at = @now,
                unhealthy_since = COALESCE(client_health.unhealthy_since, @now)
            """, ("@u", uuid), ("@n", consecutiveFailures), ("@e", error), ("@now", now));
        Emit(c, tx, "client.unhealthy", uuid, new JsonObject
        {
            ["reason"] = error,
            ["consecutive_failures"] = consecutiveFailures,
            ["session_id"] = sessionId,
            ["session_closed"] = closeSession,
        });
        if (closeSession)
        {
            CloseSessionsWhere(c, tx, "id = @id", $"{UnhealthyCloseReason}: {error}", ("@id", sessionId));
        }

        tx.Commit();
        return true;
    }
}
