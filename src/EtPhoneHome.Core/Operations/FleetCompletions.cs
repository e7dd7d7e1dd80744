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
    public static IReadOnlyList<Completion> ClientNames(IClientStore registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return [.. ClientQueries.Complete(registry.QueryClients(new ClientQuery()), word)
            .Select(c => new Completion(ClientQueries.QuoteIfNeeded(c.DisplayName), UntrustedText.ForTerminal(c.DisplayName), UntrustedText.ForTerminal($"{c.DisplayName} ({c.Uuid})")))];
    }

    /// <summary>Uuids of clients whose uuid or display name starts with the word; the tooltip names the client.</summary>
    public static IReadOnlyList<Completion> ClientIds(IClientStore registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        // A name pattern matches the uuid or the display name; the registry returns its matches in client order.
        return [.. registry.QueryClients(new ClientQuery { Names = [Unquote(word) + "*"] })
            .Select(c => new Completion(c.Uuid, UntrustedText.ForTerminal($"{c.Uuid} ({c.DisplayName})"), UntrustedText.ForTerminal($"{c.DisplayName} ({c.Uuid})")))];
    }

    /// <summary>Tags in use, with how many clients carry each.</summary>
    public static IReadOnlyList<Completion> Tags(IClientStore registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return Values(registry.QueryClients(new ClientQuery()).SelectMany(c => c.Tags.Distinct(StringComparer.OrdinalIgnoreCase)), word);
    }

    /// <summary>Capabilities the agents detected, with how many clients have each.</summary>
    public static IReadOnlyList<Completion> Capabilities(IClientStore registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return Values(registry.QueryClients(new ClientQuery()).SelectMany(c => c.Capabilities.Distinct(StringComparer.OrdinalIgnoreCase)), word);
    }

    /// <summary>The operations the history records, by prefix.</summary>
    public static IReadOnlyList<Completion> HistoryOperations(string? word)
    {
        var pattern = Unquote(word) + "*";
        return [.. OperationNames.Operations.Where(o => ClientNameMatcher.IsMatch(pattern, o)).Order(StringComparer.Ordinal).Select(o => new Completion(o, o, o))];
    }

    /// <summary>Key fingerprints, pending keys first, with the host each claims.</summary>
    public static IReadOnlyList<Completion> KeyFingerprints(IKeyStore registry, string? word)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var pattern = Unquote(word) + "*";
        return [.. registry.ListKeys()
            .Where(k => ClientNameMatcher.IsMatch(pattern, k.Fingerprint))
            .OrderBy(k => k.Status != KeyStatus.Pending).ThenBy(k => k.Fingerprint, StringComparer.Ordinal)
            .Select(k => new Completion(IsBareWord(k.Fingerprint) ? k.Fingerprint : ClientQueries.QuoteIfNeeded(k.Fingerprint), k.Fingerprint,
                $"{k.Fingerprint} ({k.Status.ToString().ToLowerInvariant()}, {k.ClaimedHostname ?? k.Uuid ?? "unknown host"})"))];
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

    /// <summary>True when PowerShell reads the fingerprint as one argument without quotes (SHA256: and base64).</summary>
    private static bool IsBareWord(string fingerprint) =>
        fingerprint.All(c => char.IsAsciiLetterOrDigit(c) || c is ':' or '+' or '/' or '=' or '-' or '_');

    private static string Unquote(string? word) => (word ?? "").Trim('\'', '"');
}
