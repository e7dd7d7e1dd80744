using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// One target of a fan-out. <see cref="Session"/> is null when the client is offline; a target with
/// <see cref="DeniedReason"/> set is answered <see cref="CommandStatus.Denied"/> without contacting it.
/// </summary>
public sealed record FleetTarget(string Uuid, string DisplayName, SessionRecord? Session)
{
    /// <summary>Why the target must not be contacted (for example its key is revoked or mismatched).</summary>
    public string? DeniedReason { get; init; }

    /// <summary>
    /// The client's server-side policy as the registry held it when the target was resolved; sent with each tunnel
    /// connection, so an allowed_paths edit applies to the next request without a reconnect. Null: the welcome's copy.
    /// </summary>
    public EtPhoneHome.Protocol.ServerPolicy? Policy { get; init; }

    public bool IsOnline => Session is not null && DeniedReason is null;

    /// <summary>How a person recognises the target: "client 'web-01' (3f2a9c1e…)".</summary>
    public string Describe() => ClientText.Describe(DisplayName, Uuid);
}

/// <summary>Which clients an operator asked for.</summary>
public sealed record TargetSelection
{
    /// <summary>Every client that is not removed.</summary>
    public bool All { get; init; }

    /// <summary>Uuids or display names (wildcards allowed); any may match.</summary>
    public IReadOnlyList<string> Clients { get; init; } = [];

    /// <summary>Clients carrying ALL of these tags.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];
}

/// <summary>Targets of a selection, and the literal names that matched no client.</summary>
public sealed record TargetResolution(IReadOnlyList<FleetTarget> Targets, IReadOnlyList<string> NotFound);

/// <summary>Turns registry clients into fan-out targets.</summary>
public static class FleetTargets
{
    /// <summary>
    /// Builds a target per client: an online client with an open session becomes a target with that session;
    /// anything else is offline. A client whose key is revoked or mismatched is denied.
    /// </summary>
    public static IReadOnlyList<FleetTarget> FromClients(RegistryStores registry, IEnumerable<ClientRecord> clients)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return FromClients(registry.Keys, registry.Sessions, clients);
    }

    /// <summary><see cref="FromClients(RegistryStores, IEnumerable{ClientRecord})"/> with the two stores it reads.</summary>
    public static IReadOnlyList<FleetTarget> FromClients(IKeyStore keys, ISessionStore sessions, IEnumerable<ClientRecord> clients)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(clients);
        var targets = new List<FleetTarget>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var client in clients)
        {
            if (!seen.Add(client.Uuid))
            {
                continue;
            }

            targets.Add(ToTarget(keys, sessions, client));
        }

        return targets;
    }

    /// <summary>
    /// The targets an operator named, by the one rule every surface follows (the cmdlets, the eph-server verbs and
    /// the MCP tools): when any literal name matches no client the whole operation is refused before anything runs
    /// — a typo must not run a command on fewer machines than intended — and the refusal names every unknown name.
    /// A wildcard that matches nothing is not an error. The whole fleet is never a default: it takes
    /// <see cref="TargetSelection.All"/>.
    /// </summary>
    /// <exception cref="UnknownClientsException">Some literal name matched no client; nothing may run.</exception>
    /// <exception cref="ArgumentException">The selection names no client, no tag and not All.</exception>
    public static IReadOnlyList<FleetTarget> ResolveOrRefuse(RegistryStores registry, TargetSelection selection)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return ResolveOrRefuse(registry.Clients, registry.Keys, registry.Sessions, selection);
    }

    /// <summary><see cref="ResolveOrRefuse(RegistryStores, TargetSelection)"/> with the three stores it reads.</summary>
    public static IReadOnlyList<FleetTarget> ResolveOrRefuse(IClientStore clients, IKeyStore keys, ISessionStore sessions, TargetSelection selection)
    {
        var resolution = Resolve(clients, keys, sessions, selection);
        if (resolution.NotFound.Count > 0)
        {
            throw new UnknownClientsException(resolution.NotFound);
        }

        return resolution.Targets;
    }

    /// <summary>
    /// Resolves a selection against the registry (see <see cref="TargetSelection"/>); the literal names that match
    /// nothing are returned, not refused (<see cref="ResolveOrRefuse(RegistryStores, TargetSelection)"/> is the rule for acting on them).
    /// </summary>
    /// <exception cref="ArgumentException">The selection names no client, no tag and not All.</exception>
    public static TargetResolution Resolve(RegistryStores registry, TargetSelection selection)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return Resolve(registry.Clients, registry.Keys, registry.Sessions, selection);
    }

    /// <summary><see cref="Resolve(RegistryStores, TargetSelection)"/> with the three stores it reads.</summary>
    public static TargetResolution Resolve(IClientStore clients, IKeyStore keys, ISessionStore sessions, TargetSelection selection)
    {
        ArgumentNullException.ThrowIfNull(clients);
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(sessions);
        ArgumentNullException.ThrowIfNull(selection);
        if (!selection.All && selection.Clients.Count == 0 && selection.Tags.Count == 0)
        {
            // An empty selection is a caller's bug (an empty pipeline, a forgotten option), never "every client".
            throw new ArgumentException("the selection names no client and no tag; the whole fleet takes All", nameof(selection));
        }

        var selected = clients.QueryClients(new ClientQuery
        {
            Tags = selection.Tags.Count > 0 ? selection.Tags : null,
        });

        if (selection.Clients.Count == 0)
        {
            return new TargetResolution(FromClients(keys, sessions, selected), []);
        }

        var lookup = ClientNameMatcher.Select(selected, selection.Clients, ids: null);
        return new TargetResolution(FromClients(keys, sessions, lookup.Clients), lookup.NotFound);
    }

    private static FleetTarget ToTarget(IKeyStore keys, ISessionStore sessions, ClientRecord client)
    {
        if (client.KeyMismatch)
        {
            return new FleetTarget(client.Uuid, client.DisplayName, null)
            {
                DeniedReason = "key mismatch: a different key claims this client; approve or revoke it first",
            };
        }

        if (client.KeyFingerprint is { } fingerprint && keys.GetKey(fingerprint) is { Status: not KeyStatus.Approved } key)
        {
            return new FleetTarget(client.Uuid, client.DisplayName, null)
            {
                DeniedReason = $"key {key.Status.ToString().ToLowerInvariant()}: the client's key is not approved",
            };
        }

        if (!client.Online || client.RemovedAt is not null)
        {
            return new FleetTarget(client.Uuid, client.DisplayName, null);
        }

        var session = sessions.GetOpenSession(client.Uuid);
        return new FleetTarget(client.Uuid, client.DisplayName, session is { ClosedAt: null } ? session : null)
        {
            Policy = new EtPhoneHome.Protocol.ServerPolicy { AllowedPaths = client.AllowedPaths?.ToArray() },
        };
    }
}

/// <summary>
/// Names an operator gave that match no client. The operation was refused as a whole: nothing ran on any client.
/// </summary>
public sealed class UnknownClientsException : Exception
{
    public UnknownClientsException(IReadOnlyList<string> names)
        : base(Describe(names))
    {
        Names = names;
    }

    public UnknownClientsException()
        : this([])
    {
    }

    public UnknownClientsException(string message)
        : base(message)
    {
        Names = [];
    }

    public UnknownClientsException(string message, Exception innerException)
        : base(message, innerException)
    {
        Names = [];
    }

    /// <summary>Every literal name that matched no client, as given.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>"no client named 'ghost', 'web-1'; nothing was run".</summary>
    public static string Describe(IReadOnlyList<string> names)
    {
        ArgumentNullException.ThrowIfNull(names);
        return $"no client named {string.Join(", ", names.Select(n => $"'{n}'"))}; nothing was run";
    }
}
