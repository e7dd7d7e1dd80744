using System.Text.Json.Nodes;

namespace EtPhoneHome.Core.Registry;

/// <summary>The per-client rate-limit counters every process shares, and the completion of the requests they admitted.</summary>
public interface IRateLimitLedger
{
    /// <summary>
    /// Counts a request against the client's limits across every process (rolling 60 s window and in-flight
    /// rows). Over a limit in warn mode the request is admitted and the warning counted; in enforce mode it is
    /// refused: nothing is counted in the window or in flight, and <paramref name="refusal"/> is written to the
    /// history in the same transaction.
    /// </summary>
    RateLimitAdmission BeginRequest(string uuid, RateLimitPolicy policy, AuditEntry refusal);

    /// <summary>
    /// Ends a request: releases its in-flight row (0 = none) and writes its history entry and, when
    /// <paramref name="eventType"/> is given, its outbox event, all in one transaction.
    /// </summary>
    void CompleteRequest(long inflightId, AuditEntry entry, string? eventType = null, JsonObject? eventData = null);

    /// <summary>
    /// <see cref="BeginRequest"/> for callers that should not block a thread while the registry takes the write: a
    /// ledger may write the requests that start at the same time in one transaction (the same result as one after the
    /// other). The history attribution of the caller's scope is taken when it is called.
    /// </summary>
    Task<RateLimitAdmission> BeginRequestAsync(string uuid, RateLimitPolicy policy, AuditEntry refusal) =>
        Task.FromResult(BeginRequest(uuid, policy, HistoryAttribution.Apply(refusal)));

    /// <summary><see cref="CompleteRequest"/> without blocking a thread; requests that end together may share a transaction.</summary>
    Task CompleteRequestAsync(long inflightId, AuditEntry entry, string? eventType = null, JsonObject? eventData = null)
    {
        CompleteRequest(inflightId, HistoryAttribution.Apply(entry), eventType, eventData);
        return Task.CompletedTask;
    }

    /// <summary>Counters of the given clients (every registered client when null), stale in-flight rows removed first.</summary>
    IReadOnlyList<RateLimitStats> GetRateLimitStats(IReadOnlyList<string>? uuids, RateLimitPolicy policy);
}
