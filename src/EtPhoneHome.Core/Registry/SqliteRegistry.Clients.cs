using EtPhoneHome.Core.Operations;
using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;

namespace EtPhoneHome.Core.Registry;

// Client administration: attributed key decisions and edits, removal, history, search columns.
public sealed partial class SqliteRegistry
{
    /// <summary>Most tags one client may carry.</summary>
    public const int MaxTags = 50;

    /// <summary>Longest tag, in characters.</summary>
    public const int MaxTagLength = 64;

    /// <summary>Most server-side allowed paths one client may have.</summary>
    public const int MaxAllowedPaths = 100;

    /// <summary>Characters of all allowed paths together: the list travels with every tunnel connection.</summary>
    public const int MaxAllowedPathsTotal = 16 * 1024;

    /// <summary>Longest allowed path, in characters.</summary>
    public const int MaxPathLength = 4096;

    /// <summary>Longest webhook URL, in characters.</summary>
    public const int MaxWebhookUrlLength = 2048;

    /// <summary>Surface recorded for calls that do not name one (tests, tools).</summary>
    private const string RegistrySurface = "registry";

    public ApproveOutcome ApproveKey(string fingerprintOrUuid, string actor) => ApproveKey(fingerprintOrUuid, actor, RegistrySurface);

    public RevokeOutcome RevokeKey(string fingerprintOrUuid, string actor) => RevokeKey(fingerprintOrUuid, actor, RegistrySurface);

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor) => UpdateClient(uuid, update, actor, RegistrySurface);

    public RemoveOutcome RemoveClient(string uuid, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentException.ThrowIfNullOrEmpty(actor);
        ArgumentException.ThrowIfNullOrEmpty(surface);
        var started = Now;
        using var c = Connect();
        using var tx = c.BeginTransaction(deferred: false);
        var client = GetClient(c, tx, uuid) ?? throw new RegistryNotFoundException($"no client with uuid {uuid}");
        if (client.RemovedAt is not null)
        {
            InsertAudit(c, tx, new AuditEntry
            {
                Operation = OperationNames.RemoveClient, Uuid = uuid, Actor = actor, Surface = surface, Status = OperationNames.Wire(OperationStatus.Unchanged),
                Detail = "already removed", DurationMs = Now - started,
            });
            tx.Commit();
            return new RemoveOutcome { Uuid = uuid, DisplayName = client.DisplayName, AlreadyRemoved = true, RemovedAt = client.RemovedAt };
        }

        var now = Now;

        // Every key that could bring this client back: the pinned one, any bound to it, and pending keys claiming it.
        using var select = Command(c, tx, """
            SELECT fingerprint FROM keys
            WHERE status <> 'revoked' AND (fingerprint = $f OR uuid = $u OR (status = 'pending' AND claimed_uuid = $u))
            ORDER BY fingerprint
            """, ("$f", client.KeyFingerprint), ("$u", uuid));
        var revoked = ReadAll(select, r => r.GetString(0));
        foreach (var fingerprint in revoked)
        {
            Exec(c, tx, "UPDATE keys SET status = 'revoked', is_mismatch = 0, decided_at = $now, decided_by = $a WHERE fingerprint = $f",
                ("$now", now), ("$a", actor), ("$f", fingerprint));
        }

        var closed = CloseSessionsWhere(c, tx, "uuid = $u", "removed", ("$u", uuid));
        Exec(c, tx, "UPDATE clients SET removed_at = $now, key_mismatch = 0 WHERE uuid = $u", ("$now", now), ("$u", uuid));
        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.RemoveClient,
            Uuid = uuid,
            Actor = actor,
            Surface = surface,
            Status = OperationNames.Wire(OperationStatus.Succeeded),
            Detail = $"'{client.DisplayName}'; revoked {(revoked.Count == 0 ? "no key" : string.Join(", ", revoked))}; {closed.Count} session(s) closed",
            DurationMs = Now - started,
        });
        tx.Commit();
        return new RemoveOutcome
        {
            Uuid = uuid,
            DisplayName = client.DisplayName,
            RevokedFingerprints = revoked,
            ClosedSessions = closed,
            RemovedAt = DateTimeOffset.FromUnixTimeMilliseconds(now),
        };
    }

    public IReadOnlyList<AuditEntry> QueryHistory(HistoryQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        if (query.Skip < 0)
        {
            throw new RegistryValidationException("skip", $"skip must be 0 or more (got {query.Skip})");
        }

        if (query.Take is < 1 or > HistoryQuery.MaxTake)
        {
            throw new RegistryValidationException("take", $"take must be between 1 and {HistoryQuery.MaxTake} (got {query.Take})");
        }

        using var c = Connect();
        using var cmd = c.CreateCommand();
        var where = HistoryFilter(cmd, query);
        cmd.CommandText = "SELECT * FROM audit" + where.Clause +
                          $" ORDER BY id DESC LIMIT {where.Param(query.Take)} OFFSET {where.Param(query.Skip)}";
        return ReadAll(cmd, ReadAudit);
    }

    /// <summary>How many entries the filters of <paramref name="query"/> match (its paging ignored): Get-EphHistory -IncludeTotalCount.</summary>
    public int CountHistory(HistoryQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        using var c = Connect();
        using var cmd = c.CreateCommand();
        var where = HistoryFilter(cmd, query);
        cmd.CommandText = "SELECT COUNT(*) FROM audit" + where.Clause;
        return Convert.ToInt32(cmd.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
    }

    private static SqlFilter HistoryFilter(SqliteCommand cmd, HistoryQuery query)
    {
        if (query.Since is { } since && query.Until is { } until && until <= since)
        {
            throw new RegistryValidationException("until", $"until ({until:O}) must be later than since ({since:O})");
        }

        var where = new SqlFilter(cmd);
        var P = where.Param;

        if (query.Uuids is { Count: > 0 } uuids)
        {
            where.Add(where.In("uuid", uuids.Distinct(StringComparer.OrdinalIgnoreCase)));
        }

        // Operations and statuses are checked against the vocabulary (a typo is an error, not an empty answer) and
        // written as recorded, so the IN keeps the indexes usable.
        if (query.Operations is { Count: > 0 } operations)
        {
            where.Add(where.In("operation", HistoryFilters.Operations(operations)));
        }

        if (query.Statuses is { Count: > 0 } statuses)
        {
            where.Add(where.In("status", HistoryFilters.Statuses(statuses)));
        }

        if (query.Since is { } from)
        {
            where.Add($"at >= {P(from.ToUnixTimeMilliseconds())}");
        }

        if (query.Until is { } to)
        {
            where.Add($"at < {P(to.ToUnixTimeMilliseconds())}");
        }

        return where;
    }

    private static AuditEntry ReadAudit(SqliteDataReader r) => new()
    {
        At = Time(r, "at"),
        Actor = Str(r, "actor")!,
        Surface = Str(r, "surface")!,
        Operation = Str(r, "operation")!,
        Uuid = Str(r, "uuid"),
        Status = Str(r, "status")!,
        Detail = Str(r, "detail"),
        DurationMs = Long(r, "duration_ms"),
    };

    /// <summary>Rewrites the tag and capability lists kept on the client row from client_tags and client_capabilities.</summary>
    private static void RefreshListColumns(SqliteConnection c, SqliteTransaction tx, string uuid)
    {
        using var tagRead = Command(c, tx, "SELECT tag FROM client_tags WHERE uuid = $u ORDER BY position", ("$u", uuid));
        var tags = ReadAll(tagRead, r => r.GetString(0));
        using var capRead = Command(c, tx, "SELECT capability FROM client_capabilities WHERE uuid = $u ORDER BY capability", ("$u", uuid));
        var caps = ReadAll(capRead, r => r.GetString(0));
        Exec(c, tx, "UPDATE clients SET tags_json = $t, caps_json = $k WHERE uuid = $u",
            ("$t", JsonArray(tags)), ("$k", JsonArray(caps)), ("$u", uuid));
    }

    /// <summary>Tags after an edit: replaced by Tags, then AddTags appended, then RemoveTags taken out (case-insensitive).</summary>
    private static List<string> EditTags(IReadOnlyList<string> current, ClientUpdate update)
    {
        var tags = (update.Tags ?? current).Select(t => t.Trim()).ToList();
        tags.AddRange((update.AddTags ?? []).Select(t => t.Trim()));
        var remove = new HashSet<string>((update.RemoveTags ?? []).Select(t => t.Trim()), StringComparer.OrdinalIgnoreCase);
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var result = tags.Where(t => t.Length > 0 && !remove.Contains(t) && seen.Add(t)).ToList();
        if (result.Count > MaxTags)
        {
            throw new RegistryValidationException("tags", $"a client may carry at most {MaxTags} tags (this edit would leave {result.Count})");
        }

        return result;
    }

    private static string JsonArray(IEnumerable<string> values) =>
        System.Text.Json.JsonSerializer.Serialize(values.ToArray(), EtPhoneHome.Protocol.ProtocolJson.Default.StringArray);

    private static string? NullIfEmpty(string s) => s.Length == 0 ? null : s;

    /// <summary>Absolute on the client, whatever its OS: /path, C:\path or C:/path, or \\server\share.</summary>
    internal static bool IsAbsoluteOnAnyPlatform(string path) =>
        path.StartsWith('/')
        || path.StartsWith(@"\\", StringComparison.Ordinal)
        || (path.Length >= 3 && char.IsAsciiLetter(path[0]) && path[1] == ':' && path[2] is '\\' or '/');

    /// <summary>Limits beyond the basic ones of Validate; each message names the field and the limit.</summary>
    private static void ValidateLimits(ClientUpdate u)
    {
        if (u.ClearAllowedPaths && u.AllowedPaths is { Count: > 0 })
        {
            throw new RegistryValidationException("allowed_paths", "allowed_paths cannot be set and cleared in one edit");
        }

        foreach (var tag in u.RemoveTags ?? [])
        {
            if (string.IsNullOrWhiteSpace(tag))
            {
                throw new RegistryValidationException("tags", "a tag to remove must be a non-empty string");
            }
        }

        if (u.Tags is { } tags && tags.Count > MaxTags)
        {
            throw new RegistryValidationException("tags", $"a client may carry at most {MaxTags} tags (got {tags.Count})");
        }

        if (u.AllowedPaths is { } paths)
        {
            if (paths.Count > MaxAllowedPaths)
            {
                throw new RegistryValidationException("allowed_paths", $"allowed_paths may hold at most {MaxAllowedPaths} paths (got {paths.Count})");
            }

            if (paths.FirstOrDefault(p => p.Length > MaxPathLength) is { } tooLong)
            {
                throw new RegistryValidationException("allowed_paths", $"each allowed path must be at most {MaxPathLength} characters (got {tooLong.Length})");
            }

            if (paths.Sum(p => p.Length) is var total && total > MaxAllowedPathsTotal)
            {
                throw new RegistryValidationException("allowed_paths", $"allowed_paths may hold at most {MaxAllowedPathsTotal} characters in all (got {total})");
            }

            // A relative path is relative to nothing the agent knows: accepted, it would deny everything.
            if (paths.FirstOrDefault(p => !IsAbsoluteOnAnyPlatform(p)) is { } relative)
            {
                throw new RegistryValidationException("allowed_paths", $"allowed paths must be absolute (/srv/app, or C:\\Data on Windows clients); got '{relative}'");
            }
        }

        if (u.WebhookUrl is { Length: > 0 } url)
        {
            if (url.Length > MaxWebhookUrlLength)
            {
                throw new RegistryValidationException("webhook_url", $"webhook_url must be at most {MaxWebhookUrlLength} characters (got {url.Length})");
            }

            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttps && uri.Scheme != Uri.UriSchemeHttp))
            {
                throw new RegistryValidationException("webhook_url", "webhook_url must be an absolute http:// or https:// URL (empty clears it)");
            }
        }
    }
}
