using System.Text.Json;
using EtPhoneHome.Protocol;
using System.Data.Common;
using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

// Clients: admission of a hello, operator edits and their limits, removal, queries and search columns (IClientStore).
public sealed partial class SqliteRegistry
{
    public ClientRecord? GetClient(string uuid)
    {
        using var c = Connect();
        return GetClient(c, null, uuid);
    }

    /// <summary>
    /// The clients passing every filter of <paramref name="query"/> (the rules of <see cref="ClientIndex"/>), sorted by
    /// <see cref="ClientOrder"/>. Searches the process's in-memory copy of the clients (<see cref="ClientSnapshot"/>),
    /// brought up to date first: the rows changed since the last search, and the online sessions whose heartbeat went
    /// stale, are read in one read transaction.
    /// </summary>
    public IReadOnlyList<ClientRecord> QueryClients(ClientQuery query)
    {
        ArgumentNullException.ThrowIfNull(query);
        var (clients, stale) = CurrentClients();
        return clients.Search(query, stale);
    }

    /// <summary>This process's in-memory copy of the clients of this file (tests and benchmarks).</summary>
    internal ClientSnapshot ClientCopy => _clientCopy;

    /// <summary>The current copy of every client (online = open session that came online) and the uuids whose online session's heartbeat is stale.</summary>
    private (ClientIndex Clients, HashSet<string> Stale) CurrentClients()
    {
        using var c = Connect();
        using var tx = BeginRead(c);
        using var counter = Command(c, tx, "SELECT instance, seq FROM client_changes WHERE id = 1");
        var (instance, seq) = ReadAll(counter, r => (r.GetString(0), r.GetInt64(1))).Single();
        var clients = _clientCopy.Get(instance, seq, since => ReadClientRows(c, tx, since));
        using var staleRead = Command(c, tx,
            "SELECT uuid FROM sessions WHERE closed_at IS NULL AND last_heartbeat <= @stale AND online_at IS NOT NULL",
            ("@stale", StaleBefore(c, tx)));
        var stale = new HashSet<string>(ReadAll(staleRead, r => r.GetString(0)), StringComparer.Ordinal);
        tx.Commit();
        return (clients, stale);
    }

    /// <summary>
    /// Client rows stamped after <paramref name="since"/> (every row when null), online taken from the session alone;
    /// read on the connection, so inside the transaction it is in.
    /// </summary>
    private static List<ClientRecord> ReadClientRows(DbConnection c, DbTransaction tx, long? since)
    {
        return since is null
            ? ClientRowReader.Read(c, tx, "", null, long.MinValue, new Dictionary<string, string>(StringComparer.Ordinal))
            : ClientRowReader.Read(c, tx, " WHERE c.change_seq > @p", since.Value, long.MinValue, new Dictionary<string, string>(StringComparer.Ordinal));
    }

    public ClientRecord AdmitClient(string fingerprint, AgentIdentity identity)
    {
        ArgumentException.ThrowIfNullOrEmpty(fingerprint);
        ArgumentNullException.ThrowIfNull(identity);
        identity = ClaimedIdentityRules.Normalise(identity);
        using var c = Connect();
        using var tx = BeginWrite(c);
        var key = GetKey(c, tx, fingerprint) ?? throw new InvalidOperationException($"key {fingerprint} is unknown; it must be approved before a client is admitted");
        if (key.Status != KeyStatus.Approved)
        {
            throw new InvalidOperationException($"key {fingerprint} is {StatusText(key.Status)}; only an approved key admits a client");
        }

        var now = Now;
        string uuid;
        if (key.Uuid is null || Scalar<long>(c, tx, "SELECT COUNT(*) FROM clients WHERE uuid = @u", ("@u", key.Uuid)) == 0)
        {
            uuid = key.Uuid ?? Guid.NewGuid().ToString();
            // The claimed identity is already neutralised and within the limits of operator edits.
            var claimedName = identity.DisplayName ?? identity.Hostname ?? $"client-{uuid[..8]}";
            var displayName = UniqueClaimedName(c, tx, uuid, claimedName);
            Exec(c, tx, """
                INSERT INTO clients(uuid, display_name, name_key, purpose, hostname, platform, username, agent_version, key_fingerprint,
                                    key_mismatch, first_seen, last_seen, connection_count)
                VALUES (@u, @dn, @nk, @pu, @h, @p, @un, @v, @f, 0, @now, @now, 1)
                """,
                ("@u", uuid), ("@dn", displayName), ("@nk", ClientNameKey.Of(displayName)), ("@pu", identity.Purpose),
                ("@h", identity.Hostname), ("@p", identity.Platform), ("@un", identity.Username), ("@v", identity.AgentVersion),
                ("@f", fingerprint), ("@now", now));
            WriteTags(c, tx, uuid, identity.Tags.Select(t => t.Trim()).Where(ClientFieldRules.IsValidTag)); // an agent's bad tag is dropped, not fatal
            Exec(c, tx, "UPDATE keys SET uuid = @u, last_seen = @now WHERE fingerprint = @f", ("@u", uuid), ("@now", now), ("@f", fingerprint));
        }
        else
        {
            uuid = key.Uuid;
            if (GetClient(c, tx, uuid) is { RemovedAt: not null } returning)
            {
                // A removed client holds no claim on its name; coming back, it takes a free one.
                var name = UniqueClaimedName(c, tx, uuid, returning.DisplayName);
                Exec(c, tx, "UPDATE clients SET display_name = @dn, name_key = @nk WHERE uuid = @u",
                    ("@dn", name), ("@nk", ClientNameKey.Of(name)), ("@u", uuid));
            }

            Exec(c, tx, """
                UPDATE clients SET hostname = @h, platform = @p, username = @un, agent_version = @v, key_fingerprint = @f,
                    last_seen = @now, connection_count = connection_count + 1, removed_at = NULL
                WHERE uuid = @u
                """,
                ("@u", uuid), ("@h", identity.Hostname), ("@p", identity.Platform), ("@un", identity.Username),
                ("@v", identity.AgentVersion), ("@f", fingerprint), ("@now", now));
            Exec(c, tx, "UPDATE keys SET last_seen = @now WHERE fingerprint = @f", ("@now", now), ("@f", fingerprint));
        }

        Exec(c, tx, "DELETE FROM client_capabilities WHERE uuid = @u", ("@u", uuid));
        foreach (var cap in identity.Capabilities.Where(x => !string.IsNullOrWhiteSpace(x)).Distinct(StringComparer.OrdinalIgnoreCase))
        {
            Exec(c, tx, "INSERT INTO client_capabilities(uuid, capability) VALUES (@u, @c)", ("@u", uuid), ("@c", cap));
        }

        RefreshListColumns(c, tx, uuid);
        var client = GetClient(c, tx, uuid)!;
        tx.Commit();
        return client;
    }

    /// <summary>Actor of the history entry that records an admitted client's name differing from its claim.</summary>
    internal const string AdmissionActor = "admission";

    /// <summary>
    /// The claimed name when no other live client has it (after normalisation, <see cref="ClientNameKey"/>), else the
    /// first free "name (2)", "name (3)"…; a renamed claim is written to the history naming the client that has it.
    /// </summary>
    private string UniqueClaimedName(DbConnection c, DbTransaction tx, string uuid, string claimed)
    {
        bool Taken(string key) => Scalar<long>(c, tx,
            "SELECT COUNT(*) FROM clients WHERE name_key = @k AND removed_at IS NULL AND uuid <> @u", ("@k", key), ("@u", uuid)) > 0;

        var name = ClientNameKey.Unique(claimed, Taken);
        if (name != claimed && NamedAlike(c, tx, uuid, claimed) is { } holder)
        {
            InsertAudit(c, tx, new AuditEntry
            {
                Operation = OperationNames.UpdateClient,
                Uuid = uuid,
                Actor = AdmissionActor,
                Surface = RegistrySurface,
                Status = OperationNames.Wire(OperationStatus.Succeeded),
                Detail = Clip($"display_name='{name}': the name '{claimed}' belongs to {ClientText.Describe(holder.DisplayName, holder.Uuid)}", 500),
            });
        }

        return name;
    }

    /// <summary>The live client other than <paramref name="uuid"/> whose name has the key of <paramref name="name"/>.</summary>
    private ClientRecord? NamedAlike(DbConnection c, DbTransaction tx, string uuid, string name)
    {
        using var read = Command(c, tx, "SELECT uuid FROM clients WHERE name_key = @k AND removed_at IS NULL AND uuid <> @u LIMIT 1",
            ("@k", ClientNameKey.Of(name)), ("@u", uuid));
        return ReadAll(read, r => r.GetString(0)).FirstOrDefault() is { } other ? GetClient(c, tx, other) : null;
    }

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentNullException.ThrowIfNull(update);
        Validate(update);
        var started = Now;
        using var c = Connect();
        using var tx = BeginWrite(c);
        var current = GetClient(c, tx, uuid) ?? throw new RegistryNotFoundException($"no client with uuid {uuid}");
        if (current.RemovedAt is not null)
        {
            throw new RegistryNotFoundException($"client {uuid} was removed; a removed client cannot be edited");
        }

        // Only fields whose value differs are written and named in the history.
        var changed = new List<string>();
        void Set(string column, object? value, string description)
        {
            Exec(c, tx, $"UPDATE clients SET {column} = @v WHERE uuid = @u", ("@v", value), ("@u", uuid));
            changed.Add(description);
        }

        if (update.DisplayName is { } dn && dn.Trim() != current.DisplayName)
        {
            var name = dn.Trim();
            if (NamedAlike(c, tx, uuid, name) is { } holder)
            {
                throw new ClientNameTakenException(
                    $"the name '{ClientFieldRules.Printable(name)}' is taken: {ClientText.Describe(holder.DisplayName, holder.Uuid)} (uuid {holder.Uuid}) " +
                    "is named alike; names are unique ignoring case, Unicode compatibility forms and invisible characters",
                    holder.Uuid, holder.DisplayName);
            }

            Set("display_name", name, $"display_name='{name}'");
            Exec(c, tx, "UPDATE clients SET name_key = @k WHERE uuid = @u", ("@k", ClientNameKey.Of(name)), ("@u", uuid));
        }

        if (update.Purpose is { } pu && NullIfEmpty(pu) != current.Purpose)
        {
            Set("purpose", NullIfEmpty(pu), $"purpose='{pu}'");
        }

        if (update.ClearAllowedPaths)
        {
            if (current.AllowedPaths is not null)
            {
                Set("allowed_paths", null, "allowed_paths=all");
            }
        }
        else if (update.AllowedPaths is { } paths && (current.AllowedPaths is null || !paths.SequenceEqual(current.AllowedPaths, StringComparer.Ordinal)))
        {
            Set("allowed_paths", JsonSerializer.Serialize(paths.ToArray(), ProtocolJson.Default.StringArray), $"allowed_paths=[{string.Join(", ", paths)}]");
        }

        if (update.WebhookUrl is { } url && NullIfEmpty(url) != current.WebhookUrl)
        {
            // The URL itself stays out of the history: webhook URLs often embed a token.
            Set("webhook_url", NullIfEmpty(url), url.Length == 0 ? "webhook_url=global" : "webhook_url=set");
        }

        if (update.RateLimitRpm is { } rpm && rpm != current.RateLimitRpm)
        {
            Set("rate_limit_rpm", rpm, $"rate_limit_rpm={rpm}");
        }

        if (update.RateLimitConcurrent is { } conc && conc != current.RateLimitConcurrent)
        {
            Set("rate_limit_concurrent", conc, $"rate_limit_concurrent={conc}");
        }

        if (update.Tags is not null || update.AddTags is not null || update.RemoveTags is not null)
        {
            var final = EditTags(current.Tags, update);
            if (!final.SequenceEqual(current.Tags, StringComparer.Ordinal))
            {
                WriteTags(c, tx, uuid, final);
                changed.Add($"tags=[{string.Join(", ", final)}]");
            }
        }

        if (changed.Count > 0)
        {
            RefreshListColumns(c, tx, uuid);
        }

        InsertAudit(c, tx, new AuditEntry
        {
            Operation = OperationNames.UpdateClient,
            Uuid = uuid,
            Actor = actor,
            Surface = surface,
            Status = OperationNames.Wire(changed.Count == 0 ? OperationStatus.Unchanged : OperationStatus.Succeeded),
            Detail = Clip(changed.Count == 0 ? "no change" : string.Join("; ", changed), 500),
            DurationMs = Now - started,
        });
        var result = GetClient(c, tx, uuid)!;
        tx.Commit();
        return result;
    }

    private static void Validate(ClientUpdate u)
    {
        if (u.DisplayName is { } dn && dn.Trim().Length is < 1 or > ClaimedIdentityRules.MaxDisplayNameLength)
        {
            throw new RegistryValidationException("display_name", $"display_name must be 1 to {ClaimedIdentityRules.MaxDisplayNameLength} characters (got {dn.Trim().Length})");
        }

        if (u.DisplayName is { } named && !ClientFieldRules.IsValidDisplayName(named.Trim()))
        {
            throw new RegistryValidationException("display_name", $"display_name must not contain control characters (got \"{ClientFieldRules.Printable(named)}\")");
        }

        if (u.Purpose is { Length: > ClaimedIdentityRules.MaxPurposeLength } pu)
        {
            throw new RegistryValidationException("purpose", $"purpose must be at most {ClaimedIdentityRules.MaxPurposeLength} characters (got {pu.Length})");
        }

        // The same characters are refused from an operator as are neutralised in an agent's claim (ClaimedIdentityRules).
        foreach (var (field, text) in new[] { ("display_name", u.DisplayName), ("purpose", u.Purpose) }
                     .Concat((u.Tags ?? []).Concat(u.AddTags ?? []).Select(t => ("tags", (string?)t))))
        {
            if (text is not null && ClaimedIdentityRules.CheckOperatorText(field, text) is { } refusal)
            {
                throw new RegistryValidationException(field, refusal);
            }
        }

        if (u.RateLimitRpm is { } rpm && rpm is < 1 or > 1000)
        {
            throw new RegistryValidationException("rate_limit_rpm", $"rate_limit_rpm must be between 1 and 1000 (got {rpm})");
        }

        if (u.RateLimitConcurrent is { } conc && conc is < 1 or > 100)
        {
            throw new RegistryValidationException("rate_limit_concurrent", $"rate_limit_concurrent must be between 1 and 100 (got {conc})");
        }

        foreach (var tag in (u.Tags ?? []).Concat(u.AddTags ?? []))
        {
            if (!ClientFieldRules.IsValidTag(tag?.Trim()))
            {
                throw new RegistryValidationException("tags", $"{ClientFieldRules.TagRule} (got \"{ClientFieldRules.Printable(tag)}\")");
            }
        }

        if (u.AllowedPaths is { } paths && paths.Any(string.IsNullOrWhiteSpace))
        {
            throw new RegistryValidationException("allowed_paths", "allowed_paths entries must be non-empty paths");
        }

        ValidateLimits(u);
    }

    private static void WriteTags(DbConnection c, DbTransaction tx, string uuid, IEnumerable<string> tags)
    {
        Exec(c, tx, "DELETE FROM client_tags WHERE uuid = @u", ("@u", uuid));
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var position = 0;
        foreach (var tag in tags)
        {
            var lower = tag.ToLowerInvariant();
            if (tag.Length == 0 || !seen.Add(lower))
            {
                continue;
            }

            Exec(c, tx, "INSERT INTO client_tags(uuid, tag_lower, tag, position) VALUES (@u, @l, @t, @p)",
                ("@u", uuid), ("@l", lower), ("@t", tag), ("@p", position++));
        }
    }

    private ClientRecord? GetClient(DbConnection c, DbTransaction? tx, string uuid)
    {
        return ClientRowReader.Read(c, tx, " WHERE c.uuid = @p", uuid, StaleBefore(c, tx), pool: null).FirstOrDefault();
    }

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

    public ClientRecord UpdateClient(string uuid, ClientUpdate update, string actor) => UpdateClient(uuid, update, actor, RegistrySurface);

    public RemoveOutcome RemoveClient(string uuid, string actor, string surface)
    {
        ArgumentException.ThrowIfNullOrEmpty(uuid);
        ArgumentException.ThrowIfNullOrEmpty(actor);
        ArgumentException.ThrowIfNullOrEmpty(surface);
        var started = Now;
        using var c = Connect();
        using var tx = BeginWrite(c);
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
            WHERE status <> 'revoked' AND (fingerprint = @f OR uuid = @u OR (status = 'pending' AND claimed_uuid = @u))
            ORDER BY fingerprint
            """, ("@f", client.KeyFingerprint), ("@u", uuid));
        var revoked = ReadAll(select, r => r.GetString(0));
        foreach (var fingerprint in revoked)
        {
            Exec(c, tx, "UPDATE keys SET status = 'revoked', is_mismatch = 0, decided_at = @now, decided_by = @a WHERE fingerprint = @f",
                ("@now", now), ("@a", actor), ("@f", fingerprint));
        }

        var closed = CloseSessionsWhere(c, tx, "uuid = @u", "removed", ("@u", uuid));
        Exec(c, tx, "UPDATE clients SET removed_at = @now, key_mismatch = 0 WHERE uuid = @u", ("@now", now), ("@u", uuid));
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

    /// <summary>Rewrites the tag and capability lists kept on the client row from client_tags and client_capabilities.</summary>
    private static void RefreshListColumns(DbConnection c, DbTransaction tx, string uuid)
    {
        using var tagRead = Command(c, tx, "SELECT tag FROM client_tags WHERE uuid = @u ORDER BY position", ("@u", uuid));
        var tags = ReadAll(tagRead, r => r.GetString(0));
        using var capRead = Command(c, tx, "SELECT capability FROM client_capabilities WHERE uuid = @u ORDER BY capability", ("@u", uuid));
        var caps = ReadAll(capRead, r => r.GetString(0));
        Exec(c, tx, "UPDATE clients SET tags_json = @t, caps_json = @k WHERE uuid = @u",
            ("@t", JsonArray(tags)), ("@k", JsonArray(caps)), ("@u", uuid));
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
