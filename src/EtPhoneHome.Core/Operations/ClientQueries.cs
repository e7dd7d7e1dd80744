using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Client lookups of the operator surfaces (Get-EphClient, Invoke-EphCommand, completers).</summary>
public static class ClientQueries
{
    /// <summary>
    /// Clients matching any name (display name or uuid, wildcards) or id (exact uuid), sorted by display name;
    /// every client when neither is given. Literal names and ids that match nothing are in NotFound.
    /// </summary>
    public static ClientLookup Find(IClientStore registry, IReadOnlyList<string>? names, IReadOnlyList<string>? ids, bool onlineOnly)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return ClientNameMatcher.Select(registry.QueryClients(new ClientQuery { OnlineOnly = onlineOnly }), names, ids);
    }

    /// <summary>
    /// The search of Get-EphClient, the clients verb and MCP's find_client. Names (display name or uuid,
    /// wildcards) and ids (exact uuids) pick clients; Query, Purpose, Tags (ALL), Capabilities (ALL) and
    /// OnlineOnly filter; everything given intersects. Sorted by display name. A literal name or id that
    /// names no registered client at all is in NotFound; one that exists but is filtered out is not (a
    /// filter that matches nothing returns nothing).
    /// </summary>
    public static ClientLookup Search(IClientStore registry, ClientQuery query)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(query);
        var names = query.Names is { Count: > 0 } n ? n : null;
        var ids = query.Ids is { Count: > 0 } i ? i : null;

        // The registry narrows by name or id too (same matching, already sorted); when both are given they are
        // alternatives, not filters that intersect, so only the matcher below applies them.
        var filtered = registry.QueryClients(query with
        {
            Names = ids is null ? names : null,
            Ids = names is null ? ids : null,
        });
        var lookup = ClientNameMatcher.Select(filtered, names, ids);
        if (lookup.NotFound.Count == 0 || !HasFilters(query))
        {
            return lookup;
        }

        // Filters hide clients; a literal that names a registered client is "filtered out", not "not found".
        var notFound = lookup.NotFound
            .Where(literal => registry.QueryClients(new ClientQuery { Names = [literal] }).Count == 0
                              && registry.QueryClients(new ClientQuery { Ids = [literal] }).Count == 0)
            .ToList();
        return lookup with { NotFound = notFound };
    }

    /// <summary>True when the query filters beyond names and ids.</summary>
    public static bool HasFilters(ClientQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        return !string.IsNullOrEmpty(query.Query) || !string.IsNullOrEmpty(query.Purpose) || query.Tags is { Count: > 0 }
               || query.Capabilities is { Count: > 0 } || query.OnlineOnly;
    }

    /// <summary>
    /// The one client a single-target request names (eph-server set/remove): an exact uuid, or a display name
    /// or pattern that matches exactly one client.
    /// </summary>
    /// <exception cref="RegistryNotFoundException">Nothing matches.</exception>
    /// <exception cref="InvalidOperationException">More than one client matches.</exception>
    public static ClientRecord Single(IClientStore registry, string uuidOrName)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentException.ThrowIfNullOrWhiteSpace(uuidOrName);
        var id = uuidOrName.Trim();
        if (registry.GetClient(id) is { RemovedAt: null } exact)
        {
            return exact;
        }

        var matches = Search(registry, new ClientQuery { Names = [id] }).Clients;
        return matches.Count switch
        {
            0 => throw new RegistryNotFoundException($"no client named '{id}'; eph-server clients lists them"),
            1 => matches[0],
            _ => throw new InvalidOperationException(
                $"'{id}' matches {matches.Count} clients ({string.Join(", ", matches.Take(5).Select(c => ClientText.Describe(c.DisplayName, c.Uuid)))}{(matches.Count > 5 ? ", …" : "")}); name one by its uuid"),
        };
    }

    /// <summary>Clients whose display name starts with <paramref name="word"/> (quotes ignored, wildcards honoured).</summary>
    public static IEnumerable<ClientRecord> Complete(IEnumerable<ClientRecord> clients, string? word)
    {
        var prefix = (word ?? "").Trim('\'', '"');
        var pattern = prefix + "*";
        return clients
            .Where(c => ClientNameMatcher.IsNameMatch(pattern, c.DisplayName))
            .OrderBy(c => c.DisplayName, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Single-quotes a name that PowerShell would otherwise split or interpret.</summary>
    public static string QuoteIfNeeded(string name) =>
        name.Length > 0 && name.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.')
            ? name
            : "'" + name.Replace("'", "''", StringComparison.Ordinal) + "'";
}
