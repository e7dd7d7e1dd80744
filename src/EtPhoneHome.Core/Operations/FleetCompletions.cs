using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Operations;

/// <summary>One tab-completion answer: what is inserted, what the menu lists, and its tooltip.</summary>
public sealed record Completion(string Text, string ListItem, string ToolTip);

/// <summary>
/// Tab completion from the registry for the operator surfaces (PowerShell argument completers today). Matching
/// is a case-insensitive prefix of what was typed (quotes ignored, * and ? honoured); answers are sorted and
/// quoted where PowerShell would otherwise split them.
/// </summary>
public static class FleetCompletions
{
    /// <summary>Display names of registered clients.</summary>
    public static IReadOnlyList<Completion> ClientNames(IFleetRegistry registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return [.. ClientQueries.Complete(registry.QueryClients(new ClientQuery()), word)
            .Select(c => new Completion(ClientQueries.QuoteIfNeeded(c.DisplayName), UntrustedText.ForTerminal(c.DisplayName), UntrustedText.ForTerminal($"{c.DisplayName} ({c.Uuid})")))];
    }

    /// <summary>Uuids of clients whose uuid or display name starts with the word; the tooltip names the client.</summary>
    public static IReadOnlyList<Completion> ClientIds(IFleetRegistry registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        // A name pattern matches the uuid or the display name; the registry returns its matches in client order.
        return [.. registry.QueryClients(new ClientQuery { Names = [Unquote(word) + "*"] })
            .Select(c => new Completion(c.Uuid, UntrustedText.ForTerminal($"{c.Uuid} ({c.DisplayName})"), UntrustedText.ForTerminal($"{c.DisplayName} ({c.Uuid})")))];
    }

    /// <summary>Tags in use, with how many clients carry each.</summary>
    public static IReadOnlyList<Completion> Tags(IFleetRegistry registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return Values(registry.QueryClients(new ClientQuery()).SelectMany(c => c.Tags.Distinct(StringComparer.OrdinalIgnoreCase)), word);
    }

    /// <summary>Capabilities the agents detected, with how many clients have each.</summary>
    public static IReadOnlyList<Completion> Capabilities(IFleetRegistry registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return Values(registry.QueryClients(new ClientQuery()).SelectMany(c => c.Capabilities.Distinct(StringComparer.OrdinalIgnoreCase)), word);
    }

    private static IReadOnlyList<Completion> Values(IEnumerable<string> values, string? word)
    {
        var pattern = Unquote(word) + "*";
        return [.. values
            .Where(v => ClientNameMatcher.IsMatch(pattern, v))
            .GroupBy(v => v, StringComparer.OrdinalIgnoreCase)
            .OrderBy(g => g.Key, StringComparer.OrdinalIgnoreCase)
            .Select(g => new Completion(ClientQueries.QuoteIfNeeded(g.Key), g.Key, $"{g.Key} ({g.Count()} client(s))"))];
    }

    private static string Unquote(string? word) => (word ?? "").Trim('\'', '"');
}
