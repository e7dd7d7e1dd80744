namespace EtPhoneHome.Core.Registry;

/// <summary>The registered clients: admission of an approved key's hello, operator edits, removal, queries.</summary>
public interface IClientStore
{
    ClientRecord? GetClient(string uuid);

    /// <summary>Clients passing every filter of the query (the rules of ClientIndex), sorted by <see cref="ClientOrder"/>.</summary>
    IReadOnlyList<ClientRecord> QueryClients(ClientQuery query);

    /// <summary>
    /// Admits an approved key's hello: binds the key to a new client on first use (operator fields from the
    /// agent's defaults), or updates only the agent-owned fields of the bound client. Returns the client.
    /// </summary>
    ClientRecord AdmitClient(string fingerprint, AgentIdentity identity);

    /// <summary>Applies an operator edit after validating limits. Returns the updated client.</summary>
    ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor);

    /// <summary><see cref="UpdateClient(string, ClientUpdate, string)"/>, recorded in the history with the surface that asked.</summary>
    ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface);

    /// <summary>
    /// Decommissions a client: revokes its keys, closes its open sessions (returned, so the caller can cut
    /// their SSH connections) and marks it removed. Its history stays; queries hide it unless IncludeRemoved.
    /// </summary>
    RemoveOutcome RemoveClient(string uuid, string actor, string surface);
}
