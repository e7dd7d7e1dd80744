using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Fleet registry verbs: clients (search), set, remove, history.</summary>
internal static class RegistryVerbs
{
    /// <summary>The confirmation prompt of the command tree the verb was parsed by.</summary>
    private static OperatorPrompt Prompt(ParseResult pr) => (pr.RootCommandResult.Command as EphRootCommand)?.Prompt ?? OperatorPrompt.None;

    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(ClientsCommand());
        root.Subcommands.Add(SetCommand());
        root.Subcommands.Add(RemoveCommand());
        root.Subcommands.Add(HistoryCommand());
    }

    /// <summary>How long `clients` waits for the hub's answer before it searches the registry itself.</summary>
    internal static readonly TimeSpan HubAnswerTimeout = TimeSpan.FromSeconds(3);

    private static Option<string?> DataOption() => new("--data") { Description = "Data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)." };

    private static Option<bool> JsonOption() => new("--json") { Description = "One JSON object per line (snake_case fields) instead of a table." };

    private static Option<string[]> Repeatable(string name, string description) => new(name) { Description = description, AllowMultipleArgumentsPerToken = false };

    // ----- command definitions -----

    private static Command ClientsCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var name = Repeatable("--name", "Display name or uuid, wildcards * and ? allowed (repeat: any may match).");
        var query = new Option<string?>("--query") { Description = "Case-insensitive text in the display name, purpose, hostname or tags." };
        var purpose = new Option<string?>("--purpose") { Description = "Case-insensitive text in the purpose." };
        var tag = Repeatable("--tag", "Only clients with this tag (repeat: all must match).");
        var capability = Repeatable("--capability", "Only clients with this capability, such as docker (repeat: all must match).");
        var online = new Option<bool>("--online") { Description = "Only clients with an online session." };
        var cmd = new Command("clients", "List and search registered clients; all given filters intersect.") { data, name, query, purpose, tag, capability, online, json };
        cmd.SetAction(async (ParseResult pr, CancellationToken ct) =>
        {
            var search = new ClientQuery
            {
                Names = NonEmpty(pr.GetValue(name)),
                Query = pr.GetValue(query),
                Purpose = pr.GetValue(purpose),
                Tags = NonEmpty(pr.GetValue(tag)),
                Capabilities = NonEmpty(pr.GetValue(capability)),
                OnlineOnly = pr.GetValue(online),
            };

            // The running hub keeps every client indexed: asking it spares this process reading them all (about 0.85 s
            // at 100,000). Without a hub, or when it does not answer in time, the registry is searched here; so it is
            // when this invocation names a registry of its own (--registry, $ETPHONEHOME_REGISTRY): the hub may serve another.
            var ownRegistry = !string.IsNullOrEmpty(EphConfiguration.Registry)
                || !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(RegistrySource.EnvironmentVariable));
            if (!ownRegistry && await HubClientSearch.TryAsync(DataDirectory.Resolve(pr.GetValue(data)), search, HubAnswerTimeout, ct).ConfigureAwait(false) is { } answered)
            {
                return ClientsOutput(answered, pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error);
            }

            return OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
                Clients(registry.Clients, search, pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error));
        });
        return cmd;
    }

    private static Command SetCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var client = new Argument<string>("client") { Description = "The client's uuid or display name (must name exactly one client)." };
        var displayName = new Option<string?>("--display-name") { Description = "New display name (1–100 characters)." };
        var purpose = new Option<string?>("--purpose") { Description = "New purpose (at most 200 characters; empty clears it)." };
        var tag = Repeatable("--tag", "Replace the tags with these (repeat for more).");
        var addTag = Repeatable("--add-tag", "Add this tag (repeat for more).");
        var removeTag = Repeatable("--remove-tag", "Remove this tag (repeat for more).");
        var allowedPath = Repeatable("--allowed-path", "Replace the server-side allowed paths with these (repeat for more).");
        var clearAllowed = new Option<bool>("--clear-allowed-paths") { Description = "Allow all paths again (no server-side restriction)." };
        var webhook = new Option<string?>("--webhook-url") { Description = "Per-client webhook URL (http or https); empty falls back to the global one." };
        var rpm = new Option<int?>("--rate-limit-rpm") { Description = "Requests per rolling minute (1–1000)." };
        var concurrent = new Option<int?>("--rate-limit-concurrent") { Description = "Requests in flight at once (1–100)." };
        rpm.Validators.Add(r => Range(r, "--rate-limit-rpm", 1, 1000));
        concurrent.Validators.Add(r => Range(r, "--rate-limit-concurrent", 1, 100));
        var cmd = new Command("set", "Edit a client's operator fields; a reconnect keeps them.")
        {
            data, client, displayName, purpose, tag, addTag, removeTag, allowedPath, clearAllowed, webhook, rpm, concurrent, json,
        };
        cmd.Validators.Add(r =>
        {
            if (r.GetValue(clearAllowed) && (r.GetValue(allowedPath)?.Length ?? 0) > 0)
            {
                r.AddError("use either --allowed-path or --clear-allowed-paths, not both");
            }
        });
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry => Set(registry.Clients, pr.GetValue(client)!, new ClientUpdate
        {
            DisplayName = pr.GetValue(displayName),
            Purpose = pr.GetValue(purpose),
            Tags = NonEmpty(pr.GetValue(tag)),
            AddTags = NonEmpty(pr.GetValue(addTag)),
            RemoveTags = NonEmpty(pr.GetValue(removeTag)),
            AllowedPaths = NonEmpty(pr.GetValue(allowedPath)),
            ClearAllowedPaths = pr.GetValue(clearAllowed),
            WebhookUrl = pr.GetValue(webhook),
            RateLimitRpm = pr.GetValue(rpm),
            RateLimitConcurrent = pr.GetValue(concurrent),
        }, pr.GetValue(json), pr.InvocationConfiguration.Output)));
        return cmd;
    }

    private static Command RemoveCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var client = new Argument<string>("client") { Description = "The client's uuid or display name (must name exactly one client)." };
        var yes = new Option<bool>("--yes", "-y") { Description = "Do not ask for confirmation (required when no one can answer a prompt)." };
        var cmd = new Command("remove", "Decommission a client: revoke its key, disconnect it now, hide it; its history stays.") { data, client, yes, json };
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
            Remove(registry.Clients, pr.GetValue(client)!, pr.GetValue(yes), pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error, Prompt(pr))));
        return cmd;
    }

    private static Command HistoryCommand()
    {
        var data = DataOption();
        var json = JsonOption();
        var client = Repeatable("--client", "Entries about this client: uuid or display name, wildcards allowed (repeat: any).");
        var operation = Repeatable("--operation", "Entries of this operation, such as run_command, update_client, approve, revoke, remove (repeat: any).");
        var status = Repeatable("--status", "Entries with this status, such as ok, succeeded, failed, denied (repeat: any).");
        var since = new Option<string?>("--since") { Description = "Entries at or after this time: ISO-8601 (UTC unless an offset is given) or an age such as 90m, 12h, 7d." };
        var until = new Option<string?>("--until") { Description = "Entries before this time (same forms as --since)." };
        var limit = new Option<int>("--limit") { Description = $"Most entries to print (1–{HistoryQuery.MaxTake}).", DefaultValueFactory = _ => 50 };
        var skip = new Option<int>("--skip") { Description = "Newest entries to skip first (paging).", DefaultValueFactory = _ => 0 };
        limit.Validators.Add(r => Range(r, "--limit", 1, HistoryQuery.MaxTake));
        skip.Validators.Add(r => Range(r, "--skip", 0, int.MaxValue));
        since.Validators.Add(TimeValidator);
        until.Validators.Add(TimeValidator);
        var cmd = new Command("history", "Show the history of operations on clients (who, surface, what, result, duration), newest first.")
        {
            data, client, operation, status, since, until, limit, skip, json,
        };
        cmd.SetAction((ParseResult pr) => OperatorVerbs.RunWithRegistry(pr, pr.GetValue(data), registry =>
        {
            var now = DateTimeOffset.UtcNow;
            return History(registry, new HistoryRequest
            {
                Clients = pr.GetValue(client) ?? [],
                Operations = pr.GetValue(operation) ?? [],
                Statuses = pr.GetValue(status) ?? [],
                Since = pr.GetValue(since) is { } s ? ClientHistory.ParseTime(s, now) : null,
                Until = pr.GetValue(until) is { } u ? ClientHistory.ParseTime(u, now) : null,
                Limit = pr.GetValue(limit),
                Skip = pr.GetValue(skip),
            }, pr.GetValue(json), pr.InvocationConfiguration.Output, pr.InvocationConfiguration.Error);
        }));
        return cmd;
    }

    private static void TimeValidator(OptionResult result)
    {
        if (result.GetValueOrDefault<string?>() is { } text)
        {
            try
            {
                ClientHistory.ParseTime(text, DateTimeOffset.UtcNow);
            }
            catch (FormatException ex)
            {
                result.AddError($"{result.Option.Name}: {ex.Message}");
            }
        }
    }

    private static void Range(OptionResult result, string name, int min, int max)
    {
        var value = result.GetValueOrDefault<object?>();
        if (value is int v && (v < min || v > max))
        {
            result.AddError($"{name} must be between {min} and {max}, got {v}");
        }
    }

    private static string[]? NonEmpty(string[]? values) => values is { Length: > 0 } ? values : null;

    // ----- verb bodies (tested directly) -----

    /// <summary>Prints the clients a search finds; exit 1 when a literal --name names no client (the others still print).</summary>
    internal static int Clients(IClientStore clients, ClientQuery query, bool json, TextWriter output, TextWriter error)
    {
        return ClientsOutput(ClientQueries.Search(clients, query), json, output, error);
    }

    /// <summary>Prints a search's clients as <c>clients</c> does; exit 1 when a literal name found nothing.</summary>
    internal static int ClientsOutput(ClientLookup lookup, bool json, TextWriter output, TextWriter error)
    {
        var rows = lookup.Clients.Select(ClientRow.From).ToList();
        if (json)
        {
            rows.ForEach(r => output.WriteLine(OperatorRows.JsonLine(r)));
        }
        else if (rows.Count == 0)
        {
            output.WriteLine("No clients.");
        }
        else
        {
            output.Write(OperatorRows.Table(
                ["NAME", "ONLINE", "HOSTNAME", "PLATFORM", "TAGS", "LAST SEEN", "UUID"],
                rows.Select(r => new[] { r.DisplayName, r.Online ? "yes" : "no", r.Hostname, r.Platform, string.Join(",", r.Tags), r.LastSeen, r.Uuid })));
        }

        foreach (var missing in lookup.NotFound)
        {
            error.WriteLine($"eph-server clients: no client named '{missing}'");
        }

        return lookup.NotFound.Count == 0 ? 0 : 1;
    }

    internal static int Set(IClientStore clients, string uuidOrName, ClientUpdate update, bool json, TextWriter output)
    {
        var client = ClientQueries.Single(clients, uuidOrName);
        var updated = ClientAdministration.Set(clients, client.Uuid, update, OperatorVerbs.Operator);
        return SetOutput(updated, json, output);
    }

    /// <summary>Prints an updated client as <c>set</c> does.</summary>
    internal static int SetOutput(ClientRecord updated, bool json, TextWriter output)
    {
        if (json)
        {
            output.WriteLine(OperatorRows.JsonLine(ClientRow.From(updated)));
        }
        else
        {
            output.WriteLine($"Updated {ClientText.Describe(updated.DisplayName, updated.Uuid)}: " +
                $"tags [{string.Join(", ", updated.Tags)}], purpose '{updated.Purpose}', " +
                $"allowed paths {(updated.AllowedPaths is null ? "all" : "[" + string.Join(", ", updated.AllowedPaths) + "]")}, " +
                $"webhook {(updated.WebhookUrl is null ? "global" : "own")}, " +
                $"limits {updated.RateLimitRpm?.ToString(CultureInfo.InvariantCulture) ?? "default"} rpm / {updated.RateLimitConcurrent?.ToString(CultureInfo.InvariantCulture) ?? "default"} concurrent.");
        }

        return 0;
    }

    internal static int Remove(IClientStore clients, string uuidOrName, bool yes, bool json, TextWriter output, TextWriter error, OperatorPrompt prompt, Func<int, bool>? terminate = null)
    {
        var client = ClientQueries.Single(clients, uuidOrName);
        var who = ClientText.Describe(client.DisplayName, client.Uuid);
        if (!yes)
        {
            if (!prompt.IsInteractive())
            {
                error.WriteLine($"eph-server remove: refusing to remove {who} without confirmation; add --yes to remove it (nothing was changed)");
                return OperatorVerbs.UsageError;
            }

            output.Write($"Remove {who}? Its key is revoked and it is disconnected now; its history stays. [y/N] ");
            output.Flush();
            if (prompt.ReadAnswer()?.Trim().ToLowerInvariant() is not ("y" or "yes"))
            {
                output.WriteLine("Not removed.");
                return 1;
            }
        }

        var report = ClientAdministration.Remove(clients, client.Uuid, OperatorVerbs.Operator, terminate);
        output.WriteLine(json ? RegistryRows.JsonLine(RemoveRow.From(report)) : ClientAdministration.Describe(report));
        return 0;
    }

    internal sealed record HistoryRequest
    {
        public IReadOnlyList<string> Clients { get; init; } = [];
        public IReadOnlyList<string> Operations { get; init; } = [];
        public IReadOnlyList<string> Statuses { get; init; } = [];
        public DateTimeOffset? Since { get; init; }
        public DateTimeOffset? Until { get; init; }
        public int Limit { get; init; } = 50;
        public int Skip { get; init; }
    }

    internal static int History(RegistryStores registry, HistoryRequest request, bool json, TextWriter output, TextWriter error)
    {
        var clients = ClientHistory.ResolveClients(registry.Clients, request.Clients);
        if (clients.NotFound.Count > 0)
        {
            error.WriteLine($"eph-server history: no client named {string.Join(", ", clients.NotFound.Select(n => $"'{n}'"))}");
            return OperatorVerbs.UsageError;
        }

        var entries = registry.History.QueryHistory(new HistoryQuery
        {
            Uuids = request.Clients.Count > 0 ? clients.Uuids : null,
            Operations = request.Operations.Count > 0 ? request.Operations : null,
            Statuses = request.Statuses.Count > 0 ? request.Statuses : null,
            Since = request.Since,
            Until = request.Until,
            Take = request.Limit,
            Skip = request.Skip,
        });
        var names = ClientHistory.DisplayNames(registry.Clients, entries.Select(e => e.Uuid));
        return HistoryOutput(entries, names, json, output);
    }

    /// <summary>Prints history entries as <c>history</c> does.</summary>
    internal static int HistoryOutput(IEnumerable<AuditEntry> entries, IReadOnlyDictionary<string, string> names, bool json, TextWriter output)
    {
        var rows = entries.Select(e => HistoryRow.From(e, e.Uuid is { } u ? names.GetValueOrDefault(u) : null)).ToList();
        if (json)
        {
            rows.ForEach(r => output.WriteLine(RegistryRows.JsonLine(r)));
            return 0;
        }

        if (rows.Count == 0)
        {
            output.WriteLine("No history entries.");
            return 0;
        }

        output.Write(OperatorRows.Table(
            ["AT", "CLIENT", "OPERATION", "STATUS", "WHO", "DURATION", "DETAIL"],
            rows.Select(r => new[]
            {
                r.At, r.Client ?? r.Uuid, r.Operation, r.Status, $"{r.Actor}/{r.Surface}{(r.Role is null ? "" : "/" + r.Role)}",
                r.DurationMs is { } ms ? ms.ToString(CultureInfo.InvariantCulture) + " ms" : "", r.Detail,
            }),
            maxCell: 60));
        return 0;
    }
}

/// <summary>One line of <c>history --json</c>.</summary>
internal sealed record HistoryRow(
    string At,
    string? Uuid,
    string? Client,
    string Operation,
    string Status,
    string Actor,
    string Surface,
    long? DurationMs,
    string? Detail,
    string? Role,
    string? Source)
{
    public static HistoryRow From(AuditEntry entry, string? displayName) => new(
        OperatorRows.Time(entry.At ?? DateTimeOffset.UnixEpoch),
        entry.Uuid,
        displayName,
        entry.Operation,
        entry.Status,
        entry.Actor,
        entry.Surface,
        entry.DurationMs,
        entry.Detail,
        entry.Role,
        entry.Source);
}

/// <summary>The line of <c>remove --json</c>.</summary>
internal sealed record RemoveRow(
    string Uuid,
    string DisplayName,
    bool AlreadyRemoved,
    IReadOnlyList<string> RevokedFingerprints,
    int ClosedSessions,
    int Disconnected,
    string? RemovedAt)
{
    public static RemoveRow From(RemoveReport report) => new(
        report.Outcome.Uuid,
        report.Outcome.DisplayName,
        report.Outcome.AlreadyRemoved,
        report.Outcome.RevokedFingerprints,
        report.Outcome.ClosedSessions.Count,
        report.SignalledGatePids.Count,
        report.Outcome.RemovedAt is { } at ? OperatorRows.Time(at) : null);
}

/// <summary>JSON lines of the registry verbs, in the style of <see cref="OperatorRows"/>.</summary>
internal static class RegistryRows
{
    private static readonly RegistryJson Json = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    public static string JsonLine(HistoryRow row) => JsonSerializer.Serialize(row, Json.HistoryRow);

    public static string JsonLine(RemoveRow row) => JsonSerializer.Serialize(row, Json.RemoveRow);
}

/// <summary>Snake-case JSON for the registry verbs; nulls are written so every line has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(HistoryRow))]
[JsonSerializable(typeof(RemoveRow))]
internal sealed partial class RegistryJson : JsonSerializerContext;
