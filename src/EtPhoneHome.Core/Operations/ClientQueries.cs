using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Client lookups of the operator surfaces (Get-EphClient, Invoke-EphCommand, completers).</summary>
public static class ClientQueries
{
    /// <summary>
    /// Clients matching any name (display name or uuid, wildcards) or id (exact uuid), sorted by display name;
    /// every client when neither is given. Literal names and ids that match nothing are in NotFound.
    /// </summary>
    public static ClientLookup Find(IFleetRegistry registry, IReadOnlyList<string>? names, IReadOnlyList<string>? ids, bool onlineOnly)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var clients = registry.QueryClients(new ClientQuery { OnlineOnly = onlineOnly })
            .OrderBy(c => c.DisplayName, StringComparer.OrdinalIgnoreCase)
            .ThenBy(c => c.Uuid, StringComparer.Ordinal)
            .ToList();
        return ClientNameMatcher.Select(clients, names, ids);
    }

    /// <summary>Clients whose display name starts with <paramref name="word"/> (quotes ignored, wildcards honoured).</summary>
    public static IEnumerable<ClientRecord> Complete(IEnumerable<ClientRecord> clients, string? word)
    {
        var prefix = (word ?? "").Trim('\'', '"');
        var pattern = prefix + "*";
        return clients
            .Where(c => ClientNameMatcher.IsMatch(pattern, c.DisplayName))
            .OrderBy(c => c.DisplayName, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Single-quotes a name that PowerShell would otherwise split or interpret.</summary>
    public static string QuoteIfNeeded(string name) =>
        name.Length > 0 && name.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.')
            ? name
            : "'" + name.Replace("'", "''", StringComparison.Ordinal) + "'";
}
