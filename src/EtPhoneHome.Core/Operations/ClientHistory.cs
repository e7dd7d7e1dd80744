using System.Globalization;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>Clients named for a history query, and the literal names that named no client.</summary>
public sealed record HistoryClients(IReadOnlyList<string> Uuids, IReadOnlyList<string> NotFound);

/// <summary>History lookups shared by Get-EphHistory, the history verb and MCP.</summary>
public static class ClientHistory
{
    /// <summary>
    /// Turns uuids or display names (wildcards allowed) into uuids, removed clients included (their history
    /// stays). A uuid-shaped literal that names no client is kept: history may outlive the client record.
    /// </summary>
    public static HistoryClients ResolveClients(IClientStore registry, IReadOnlyList<string> uuidsOrNames)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(uuidsOrNames);
        if (uuidsOrNames.Count == 0)
        {
            return new HistoryClients([], []);
        }

        var all = registry.QueryClients(new ClientQuery { IncludeRemoved = true });
        var lookup = ClientNameMatcher.Select(all, uuidsOrNames, ids: null);
        var uuids = lookup.Clients.Select(c => c.Uuid).ToList();
        var notFound = new List<string>();
        foreach (var literal in lookup.NotFound)
        {
            if (Guid.TryParse(literal, out _))
            {
                uuids.Add(literal.Trim().ToLowerInvariant());
            }
            else
            {
                notFound.Add(literal);
            }
        }

        return new HistoryClients(uuids.Distinct(StringComparer.OrdinalIgnoreCase).ToList(), notFound);
    }

    /// <summary>Display names of the given clients (removed ones included), for showing history entries.</summary>
    public static IReadOnlyDictionary<string, string> DisplayNames(IClientStore registry, IEnumerable<string?> uuids)
    {
        ArgumentNullException.ThrowIfNull(registry);
        var wanted = uuids.OfType<string>().Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (wanted.Count == 0)
        {
            return new Dictionary<string, string>();
        }

        return registry.QueryClients(new ClientQuery { Ids = wanted, IncludeRemoved = true })
            .ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>
    /// A point in time given as ISO-8601 ("2025-03-04T05:06:07Z"; no offset means UTC) or as an age before
    /// <paramref name="now"/>: a number and s, m, h or d ("90m", "7d").
    /// </summary>
    /// <exception cref="FormatException">Neither form.</exception>
    public static DateTimeOffset ParseTime(string text, DateTimeOffset now)
    {
        ArgumentNullException.ThrowIfNull(text);
        var t = text.Trim();
        if (t.Length >= 2 && char.IsAsciiLetter(t[^1])
            && long.TryParse(t.AsSpan(0, t.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var amount))
        {
            double? seconds = char.ToLowerInvariant(t[^1]) switch
            {
                's' => amount,
                'm' => amount * 60.0,
                'h' => amount * 3600.0,
                'd' => amount * 86400.0,
                _ => null,
            };
            if (seconds is { } s)
            {
                // An age past the calendar's start (99999999999d) is a mistake to name, not an overflow to crash on.
                if (s > (now - DateTimeOffset.MinValue).TotalSeconds - 1)
                {
                    throw new FormatException($"'{text}' reaches back before year 1; use a smaller age or an ISO-8601 time");
                }

                return now - TimeSpan.FromSeconds(s);
            }
        }

        if (DateTimeOffset.TryParse(t, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var at))
        {
            return at;
        }

        throw new FormatException($"'{text}' is not a time: use ISO-8601 (2025-03-04T05:06:07Z) or an age such as 90m, 12h or 7d");
    }
}
