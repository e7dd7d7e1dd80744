using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>What a removal did: the registry's outcome and the gate processes that were signalled.</summary>
public sealed record RemoveReport(RemoveOutcome Outcome, IReadOnlyList<int> SignalledGatePids);

/// <summary>
/// Operator edits and decommissioning of clients, shared by the cmdlets, eph-server and MCP. Every call is
/// recorded in the history with the operator's OS user and surface, in the same transaction as the change.
/// </summary>
public static class ClientAdministration
{
    /// <summary>Applies an edit (see <see cref="ClientUpdate"/>); returns the client as it is now.</summary>
    /// <exception cref="RegistryValidationException">A field breaks its limit; nothing was changed.</exception>
    /// <exception cref="RegistryNotFoundException">No such client, or it was removed.</exception>
    public static ClientRecord Set(IClientStore registry, string uuid, ClientUpdate update, OperatorContext context)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(update);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrWhiteSpace(uuid);
        return registry.UpdateClient(uuid.Trim(), update, context.Actor, context.Surface);
    }

    /// <summary>
    /// Decommissions a client: its keys are revoked, its sessions closed and their SSH connections cut now,
    /// and it is hidden from queries; its history stays.
    /// </summary>
    /// <param name="registry">The fleet registry.</param>
    /// <param name="uuid">The client's uuid.</param>
    /// <param name="context">Who removes it, through which surface.</param>
    /// <param name="terminate">Sends the signal to a gate pid; tests replace it.</param>
    /// <exception cref="RegistryNotFoundException">No such client.</exception>
    public static RemoveReport Remove(IClientStore registry, string uuid, OperatorContext context, Func<int, bool>? terminate = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrWhiteSpace(uuid);
        var outcome = registry.RemoveClient(uuid.Trim(), context.Actor, context.Surface);
        return new RemoveReport(outcome, KeyAdministration.SignalGates(outcome.ClosedSessions, terminate));
    }

    /// <summary>A sentence describing a removal, for text output.</summary>
    public static string Describe(RemoveReport report)
    {
        ArgumentNullException.ThrowIfNull(report);
        var o = report.Outcome;
        var who = ClientText.Describe(o.DisplayName, o.Uuid);
        if (o.AlreadyRemoved)
        {
            return $"{char.ToUpperInvariant(who[0])}{who[1..]} was already removed.";
        }

        var keys = o.RevokedFingerprints.Count == 0 ? "no key to revoke" : $"revoked {string.Join(", ", o.RevokedFingerprints)}";
        var sessions = o.ClosedSessions.Count == 0 ? "it was offline" : $"disconnected {o.ClosedSessions.Count} session(s)";
        return $"Removed {who}: {keys}; {sessions}; its history is kept.";
    }
}
