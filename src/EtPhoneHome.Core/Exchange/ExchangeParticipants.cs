using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Exchange;

/// <summary>Turns what an operator typed for a source or destination client into the id transfers are keyed by.</summary>
public static class ExchangeParticipants
{
    /// <summary>
    /// "server" stays "server"; a display name or uuid of exactly one registered client becomes its uuid; anything
    /// else is used literally (a transfer may outlive its client's registration) after the key-safety check.
    /// </summary>
    public static string Resolve(IClientStore? registry, string nameOrUuid, string field)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(nameOrUuid);
        if (nameOrUuid == ExchangeLimits.ServerSource || registry is null)
        {
            return TransferNames.CheckSource(nameOrUuid, field);
        }

        var lookup = ClientQueries.Find(registry, names: [nameOrUuid], ids: null, onlineOnly: false);
        return lookup.Clients.Count == 1 ? lookup.Clients[0].Uuid : TransferNames.CheckSource(nameOrUuid, field);
    }
}
