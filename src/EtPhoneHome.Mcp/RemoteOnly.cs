using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Mcp;

/// <summary>
/// The tools' remote side (<see cref="McpFleet.Remote"/>): client lookups with the same rules and errors as
/// <see cref="ClientResolver"/>, and the server's errors as the tools' documented ones.
/// </summary>
internal static class RemoteOnly
{
    /// <summary>The answer of a tool that has no operation in the server's operator service.</summary>
    public static ToolFailure NotAvailable() => new(ToolErrorCodes.NotAvailableRemotely,
        "this tool is not available through a server's operator service (eph-server mcp --server); it runs only on the server host",
        "Use the tools that are available remotely (clients, commands, files, metrics, rate limits, history, keys, exchange), or run eph-server mcp on the server host.");

    /// <summary>A server error as a tool failure: FORBIDDEN names the role needed, NOT_FOUND is CLIENT_NOT_FOUND.</summary>
    public static ToolFailure Failure(OperatorRemoteException ex) => ex.Code switch
    {
        OperatorErrorCodes.Forbidden => new ToolFailure(ToolErrorCodes.Forbidden, ex.Message,
            $"Your operator key has a role that does not allow this; an admin can grant the {ex.Error.Needs ?? "needed"} role (eph-server operators set-role).",
            new Dictionary<string, object?> { ["needs"] = ex.Error.Needs }),
        OperatorErrorCodes.NotFound => new ToolFailure(ToolErrorCodes.ClientNotFound, ex.Message,
            "Fix the client names (list_clients or find_client) and call again.",
            new Dictionary<string, object?> { ["not_found"] = ex.Error.Names }),
        OperatorErrorCodes.InvalidArgument => ToolFailure.Invalid(ex.Error.Field ?? "arguments", ex.Message),
        OperatorErrorCodes.RateLimited or OperatorErrorCodes.Busy => new ToolFailure(ToolErrorCodes.RateLimited, ex.Message, "Wait a little and try again."),
        OperatorErrorCodes.ConnectionLost => new ToolFailure(ToolErrorCodes.ServerUnreachable, ex.Message, "The next call reconnects."),
        _ => new ToolFailure(ToolErrorCodes.Internal, ex.Message, "Try again; if it keeps failing, check the server's log."),
    };

    public static async Task<IReadOnlyList<ClientRecord>> SearchAsync(RemoteServer server, ClientQuery query, CancellationToken ct)
    {
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        return (await remote.SearchAsync(query, ct).ConfigureAwait(false)).Clients;
    }

    /// <summary><see cref="ClientResolver.Resolve"/> through the server.</summary>
    public static async Task<ClientRecord> ResolveAsync(RemoteServer server, McpSession session, string? clientId, CancellationToken ct, string parameter = "client_id")
    {
        var id = ToolArguments.OptionalId(parameter, clientId);
        if (id is not null)
        {
            return await FindAsync(server, id, ct).ConfigureAwait(false);
        }

        if (session.SelectedUuid is not { } selected)
        {
            throw new ToolFailure(ToolErrorCodes.NoClientSelected,
                $"no client given and none selected in this session; pass {parameter} or call select_client first",
                "Call list_clients or find_client, then select_client with a uuid, or pass client_id to this tool.",
                new Dictionary<string, object?> { ["available_clients"] = await SuggestionsAsync(server, ct).ConfigureAwait(false) });
        }

        return await FindAsync(server, selected, ct).ConfigureAwait(false);
    }

    /// <summary><see cref="ClientResolver.Find"/> through the server: a uuid or an exact display name; never a guess.</summary>
    public static async Task<ClientRecord> FindAsync(RemoteServer server, string id, CancellationToken ct)
    {
        var found = (await SearchAsync(server, new ClientQuery { Names = [id] }, ct).ConfigureAwait(false))
            .Where(c => c.RemovedAt is null && (ClientNameKey.Same(c.DisplayName, id) || string.Equals(c.Uuid, id, StringComparison.OrdinalIgnoreCase)))
            .ToList();
        return found.Count switch
        {
            1 => found[0],
            0 => throw new ToolFailure(ToolErrorCodes.ClientNotFound, $"no client has the uuid or name '{id}'",
                "Use one of 'available_clients' (uuid or display name), or call list_clients / find_client.",
                new Dictionary<string, object?> { ["client_id"] = id, ["available_clients"] = await SuggestionsAsync(server, ct).ConfigureAwait(false) }),
            _ => throw new ToolFailure(ToolErrorCodes.InvalidArgument, $"{found.Count} clients are named '{id}'; use a uuid",
                "Pass one of the uuids listed in 'matches'.",
                new Dictionary<string, object?> { ["matches"] = found.Take(ClientResolver.MaxSuggestions).Select(Suggestion).ToList() }),
        };
    }

    private static async Task<IReadOnlyList<ClientSuggestion>> SuggestionsAsync(RemoteServer server, CancellationToken ct) =>
        (await SearchAsync(server, new ClientQuery(), ct).ConfigureAwait(false))
            .OrderByDescending(c => c.Online)
            .ThenBy(c => c.DisplayName, StringComparer.OrdinalIgnoreCase)
            .Take(ClientResolver.MaxSuggestions)
            .Select(Suggestion)
            .ToList();

    private static ClientSuggestion Suggestion(ClientRecord c) => new(Tools.Views.Text(c.DisplayName), c.Uuid, c.Online);

    /// <summary>CLIENT_OFFLINE before anything is sent, as <see cref="ClientResolver.OnlineTarget"/> answers.</summary>
    public static FleetTarget Online(ClientRecord client)
    {
        if (!client.Online)
        {
            throw new ToolFailure(ToolErrorCodes.ClientOffline, $"{ClientResolver.Describe(client)} is offline (last seen {Tools.Views.Time(client.LastSeen)})",
                "Wait for it to reconnect, or pick an online client (find_client with online_only: true).",
                new Dictionary<string, object?> { ["client"] = new Tools.ClientRef(client.Uuid, client.DisplayName) });
        }

        return new FleetTarget(client.Uuid, client.DisplayName, null);
    }
}
