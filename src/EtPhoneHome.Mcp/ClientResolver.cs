using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Mcp;

/// <summary>Turns a tool's client argument (uuid or display name) or the session's selection into a client.</summary>
public static class ClientResolver
{
    /// <summary>How many clients a CLIENT_NOT_FOUND error suggests.</summary>
    public const int MaxSuggestions = 5;

    /// <summary>
    /// The client named by <paramref name="clientId"/> (uuid, or exact display name, case-insensitive);
    /// without it the session's selected client; without either NO_CLIENT_SELECTED. Never guesses.
    /// </summary>
    public static ClientRecord Resolve(IClientStore registry, McpSession session, string? clientId, string parameter = "client_id")
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(session);
        var id = ToolArguments.OptionalId(parameter, clientId);
        if (id is not null)
        {
            return Find(registry, id);
        }

        if (session.SelectedUuid is not { } selected)
        {
            throw new ToolFailure(ToolErrorCodes.NoClientSelected,
                $"no client given and none selected in this session; pass {parameter} or call select_client first",
                "Call list_clients or find_client, then select_client with a uuid, or pass client_id to this tool.",
                new Dictionary<string, object?> { ["available_clients"] = Suggestions(registry) });
        }

        return registry.GetClient(selected) is { RemovedAt: null } client
            ? client
            : throw NotFound(registry, selected, "the selected client no longer exists");
    }

    /// <summary>The client with uuid or display name <paramref name="id"/>, or CLIENT_NOT_FOUND listing a few that exist.</summary>
    public static ClientRecord Find(IClientStore registry, string id)
    {
        ArgumentNullException.ThrowIfNull(registry);
        if (registry.GetClient(id) is { RemovedAt: null } byUuid)
        {
            return byUuid;
        }

        var byName = registry.QueryClients(new ClientQuery { Names = [id] })
            .Where(c => ClientNameKey.Same(c.DisplayName, id) || string.Equals(c.Uuid, id, StringComparison.OrdinalIgnoreCase))
            .ToList();
        return byName.Count switch
        {
            1 => byName[0],
            0 => throw NotFound(registry, id, $"no client has the uuid or name '{id}'"),
            _ => throw new ToolFailure(ToolErrorCodes.InvalidArgument,
                $"{byName.Count} clients are named '{id}'; use a uuid",
                "Pass one of the uuids listed in 'matches'.",
                new Dictionary<string, object?> { ["matches"] = byName.Take(MaxSuggestions).Select(Suggestion).ToList() }),
        };
    }

    private static ToolFailure NotFound(IClientStore registry, string id, string message) =>
        new(ToolErrorCodes.ClientNotFound, message,
            "Use one of 'available_clients' (uuid or display name), or call list_clients / find_client.",
            new Dictionary<string, object?> { ["client_id"] = id, ["available_clients"] = Suggestions(registry) });

    /// <summary>Up to five clients, online ones first, so the model can correct a typo.</summary>
    internal static IReadOnlyList<ClientSuggestion> Suggestions(IClientStore registry) =>
        registry.QueryClients(new ClientQuery())
            .OrderByDescending(c => c.Online)
            .ThenBy(c => c.DisplayName, StringComparer.OrdinalIgnoreCase)
            .Take(MaxSuggestions)
            .Select(Suggestion)
            .ToList();

    private static ClientSuggestion Suggestion(ClientRecord c) => new(Tools.Views.Text(c.DisplayName), c.Uuid, c.Online);

    /// <summary>
    /// The client as a target with an online session, ready to be contacted; KEY_MISMATCH when its key may not
    /// be used, CLIENT_OFFLINE when it has no online session. Nothing is sent to the agent here.
    /// </summary>
    public static FleetTarget OnlineTarget(RegistryStores registry, ClientRecord client)
    {
        ArgumentNullException.ThrowIfNull(client);
        var target = FleetTargets.FromClients(registry, [client])[0];
        if (target.DeniedReason is { } reason)
        {
            throw new ToolFailure(ToolErrorCodes.KeyMismatch, $"{target.Describe()} cannot be used: {reason}",
                "Check the machine, then accept_key (see list_pending_keys) if its new key is legitimate.");
        }

        if (target.Session is null)
        {
            throw new ToolFailure(ToolErrorCodes.ClientOffline, $"{target.Describe()} is offline (last seen {Tools.Views.Time(client.LastSeen)})",
                "Wait for it to reconnect, or pick an online client (find_client with online_only: true).",
                new Dictionary<string, object?> { ["client"] = new Tools.ClientRef(client.Uuid, client.DisplayName) });
        }

        return target;
    }

    /// <summary>"client 'web-01' (3f2a9c1e…)".</summary>
    public static string Describe(ClientRecord client) => ClientText.Describe(client.DisplayName, client.Uuid);
}

/// <summary>A client named in an error so the model can pick the right one.</summary>
public sealed record ClientSuggestion(string DisplayName, string Uuid, bool Online);
