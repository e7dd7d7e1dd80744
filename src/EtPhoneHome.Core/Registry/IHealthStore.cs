namespace EtPhoneHome.Core.Registry;

/// <summary>What the hub's health monitor records about each client, and what the status views read.</summary>
public interface IHealthStore
{
    /// <summary>Health state of every client the monitor has recorded.</summary>
    IReadOnlyList<ClientHealth> ListHealth();

    /// <summary>A check answered: the failure count resets and the client is no longer unhealthy.</summary>
    void RecordHealthSuccess(string uuid);

    /// <summary>A check failed: stores the error and the count of consecutive failures.</summary>
    void RecordHealthFailure(string uuid, string error, int consecutiveFailures);

    /// <summary>
    /// In one transaction: marks the client unhealthy, emits client.unhealthy with the reason and, unless
    /// <paramref name="closeSession"/> is false, closes the session (client.disconnected). False, with nothing changed,
    /// when the session is already closed.
    /// </summary>
    bool MarkUnhealthy(string uuid, long sessionId, string reason, int consecutiveFailures, bool closeSession = true);
}
