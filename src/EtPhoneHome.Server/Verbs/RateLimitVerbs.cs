using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Server.Verbs;

/// <summary><c>limits</c>: each client's rate-limit counters, shared by every process that talks to clients.</summary>
internal static class RateLimitVerbs
{
    public static void Register(RootCommand root) => root.Subcommands.Add(LimitsCommand());

    private static Command LimitsCommand()
    {
        var data = new Option<string?>("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };
        var json = new Option<bool>("--json") { Description = "One JSON object per line (snake_case fields) instead of a table." };
        var clients = new Argument<string[]>("client") { Description = "Client uuids or display names (wildcards * and ?); every client when omitted.", Arity = ArgumentArity.ZeroOrMore };
        var cmd = new Command("limits", "Show rate-limit counters: requests in the last 60 s, requests in flight, limits, warnings and the mode (warn or enforce).")
        {
            data, clients, json,
        };
        cmd.SetAction((ParseResult pr) =>
        {
            var error = pr.InvocationConfiguration.Error;
            try
            {
                using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
                var registry = services.Registry;
                return Limits(registry, pr.GetValue(clients) ?? [], pr.GetValue(json), pr.InvocationConfiguration.Output, error);
            }
            catch (Exception ex) when (ex is InvalidOperationException or IOException or ArgumentException)
            {
                error.WriteLine($"eph-server limits: {ex.Message}");
                return 1;
            }
        });
        return cmd;
    }

    internal static int Limits(RegistryStores registry, IReadOnlyList<string> names, bool json, TextWriter output, TextWriter error)
    {
        var lookup = ClientQueries.Find(registry.Clients, names.Count > 0 ? names : null, null, onlineOnly: false);
        return LimitsOutput(lookup, lookup.Clients.Count == 0 ? [] : registry.RateLimits.GetRateLimitStats(lookup.Clients.Select(c => c.Uuid).ToList(), new RateLimitPolicy()),
            json, output, error);
    }

    /// <summary>The limits verb's output for the clients found and their counters (here and through --server).</summary>
    internal static int LimitsOutput(ClientLookup lookup, IReadOnlyList<RateLimitStats> stats, bool json, TextWriter output, TextWriter error)
    {
        foreach (var missing in lookup.NotFound)
        {
            error.WriteLine($"eph-server limits: no client named '{UntrustedText.ForTerminal(missing, 100)}'");
        }

        var display = lookup.Clients.ToDictionary(c => c.Uuid, c => c.DisplayName, StringComparer.Ordinal);
        var rows = stats
                .Select(s => LimitRow.From(s, display.GetValueOrDefault(s.Uuid)))
                .OrderBy(r => r.DisplayName, StringComparer.OrdinalIgnoreCase)
                .ToList();
        if (json)
        {
            rows.ForEach(r => output.WriteLine(JsonSerializer.Serialize(r, VerbJson.Default.LimitRow)));
        }
        else if (rows.Count == 0)
        {
            output.WriteLine("No clients.");
        }
        else
        {
            string N(long v) => v.ToString(CultureInfo.InvariantCulture);
            output.Write(OperatorRows.Table(
                ["NAME", "RPM", "RPM LIMIT", "IN FLIGHT", "CONCURRENT LIMIT", "RPM WARNINGS", "CONCURRENT WARNINGS", "MODE", "UUID"],
                rows.Select(r => new[]
                {
                    r.DisplayName, N(r.RequestsPerMinute), N(r.RpmLimit), N(r.CurrentConcurrent), N(r.ConcurrentLimit),
                    N(r.RpmWarnings), N(r.ConcurrentWarnings), r.Mode, r.Uuid,
                })));
        }

        return lookup.NotFound.Count > 0 ? OperatorVerbs.UsageError : 0;
    }
}
