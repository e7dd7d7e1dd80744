using static EtPhoneHome.Core.Registry.Sql;

namespace EtPhoneHome.Core.Registry;

/// <summary>A client to write straight into a registry (benchmarks and tests; no key decision involved).</summary>
internal sealed record ClientSeed
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public string? Purpose { get; init; }
    public string? Hostname { get; init; }
    public string? Platform { get; init; }
    public string? Username { get; init; }
    public IReadOnlyList<string> Tags { get; init; } = [];
    public IReadOnlyList<string> Capabilities { get; init; } = [];
    /// <summary>Gives the client an online session (tunnel port and a zero secret unless given below).</summary>
    public bool Online { get; init; }
    /// <summary>The online session's tunnel port (a listener that answers as the agent); a made-up one when null.</summary>
    public int? TunnelPort { get; init; }
    /// <summary>The online session's tunnel secret; 32 zero bytes when null.</summary>
    public byte[]? Secret { get; init; }
    /// <summary>The hub that holds the online session (several hubs on one registry); none when null.</summary>
    public string? HubId { get; init; }
}

public sealed partial class SqliteRegistry
{
    /// <summary>
    /// Writes many clients, each with an approved key, in ONE transaction with prepared statements — the way to
    /// fill a registry with a fleet of 100,000 for the search benchmark in seconds.
    /// </summary>
    internal int SeedClients(IEnumerable<ClientSeed> clients)
    {
        ArgumentNullException.ThrowIfNull(clients);
        using var c = Connect();
        using var tx = BeginWrite(c);
        using var insertKey = Command(c, tx, """
            INSERT INTO keys(fingerprint, status, uuid, first_seen, last_seen, decided_at, decided_by)
            VALUES (@f, 'approved', @u, @now, @now, @now, 'seed')
            """, ("@f", ""), ("@u", ""), ("@now", 0L));
        using var insertClient = Command(c, tx, """
            INSERT INTO clients(uuid, display_name, name_key, purpose, hostname, platform, username, key_fingerprint, first_seen, last_seen,
                                connection_count, tags_json, caps_json)
            VALUES (@u, @dn, @nk, @pu, @h, @p, @un, @f, @now, @now, 1, @tj, @cj)
            """, ("@u", ""), ("@dn", ""), ("@nk", ""), ("@pu", null), ("@h", null), ("@p", null), ("@un", null), ("@f", ""), ("@now", 0L), ("@tj", "[]"), ("@cj", "[]"));
        using var insertTag = Command(c, tx, "INSERT INTO client_tags(uuid, tag_lower, tag, position) VALUES (@u, @l, @t, @p)",
            ("@u", ""), ("@l", ""), ("@t", ""), ("@p", 0));
        using var insertCap = Command(c, tx, "INSERT INTO client_capabilities(uuid, capability) VALUES (@u, @c)", ("@u", ""), ("@c", ""));
        using var insertSession = Command(c, tx, """
            INSERT INTO sessions(uuid, fingerprint, host, tunnel_port, secret, hub_id, connected_at, online_at, last_heartbeat)
            VALUES (@u, @f, 'localhost', @tp, @s, @hub, @now, @now, @now)
            """, ("@u", ""), ("@f", ""), ("@tp", 0), ("@s", new byte[32]), ("@hub", null), ("@now", 0L));

        static void Run(System.Data.Common.DbCommand cmd, params object?[] values)
        {
            for (var i = 0; i < values.Length; i++)
            {
                cmd.Parameters[i].Value = values[i] ?? DBNull.Value;
            }

            cmd.ExecuteNonQuery();
        }

        var now = Now;
        var count = 0;
        foreach (var seed in clients)
        {
            var fingerprint = "SHA256:seed-" + seed.Uuid;
            var tags = seed.Tags.Distinct(StringComparer.OrdinalIgnoreCase).ToList();
            var caps = seed.Capabilities.Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase).ToList();
            Run(insertKey, fingerprint, seed.Uuid, now);
            Run(insertClient, seed.Uuid, seed.DisplayName, ClientNameKey.Of(seed.DisplayName), seed.Purpose, seed.Hostname, seed.Platform, seed.Username, fingerprint, now,
                JsonArray(tags), JsonArray(caps));
            for (var i = 0; i < tags.Count; i++)
            {
                Run(insertTag, seed.Uuid, tags[i].ToLowerInvariant(), tags[i], i);
            }

            foreach (var capability in caps)
            {
                Run(insertCap, seed.Uuid, capability);
            }

            if (seed.Online)
            {
                Run(insertSession, seed.Uuid, fingerprint, seed.TunnelPort ?? 20_000 + (count % 40_000), seed.Secret ?? new byte[32], seed.HubId, now);
            }

            count++;
        }

        tx.Commit();

        // One transaction of this size leaves a WAL as large as the data; fold it into the database file.
        _engine.AfterBulkWrite(c);
        return count;
    }
}
