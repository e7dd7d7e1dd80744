using System.Text;
using System.Text.Json;
using EtPhoneHome.Protocol;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using SQLitePCL;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Reads client rows (the columns of <see cref="Select"/>, in that order) straight through the SQLite C API on a
/// connection Microsoft.Data.Sqlite opened, inside whatever transaction that connection is in. The first search
/// of a process reads every client; through the data reader that cost about 4 µs a row (two checked calls per
/// column and a string for every text), here it is the decoding alone.
/// </summary>
internal static class ClientRowReader
{
    /// <summary>The columns every client read takes, in the order <see cref="Read"/> decodes them.</summary>
    public const string Select = """
        SELECT c.uuid, c.display_name, c.purpose, c.tags_json, c.allowed_paths, c.webhook_url, c.rate_limit_rpm,
               c.rate_limit_concurrent, c.hostname, c.platform, c.username, c.agent_version, c.caps_json, c.key_fingerprint,
               c.key_mismatch, c.first_seen, c.last_seen, c.connection_count, c.removed_at,
               s.id, s.tunnel_port, s.online_at, s.last_heartbeat
        FROM clients c
        LEFT JOIN sessions s ON s.uuid = c.uuid AND s.closed_at IS NULL
        """;

    /// <summary>
    /// The rows of <c>Select + where</c>, parameter 1 bound to <paramref name="parameter"/> when given. A client is
    /// online when its open session came online and its heartbeat is later than <paramref name="staleBefore"/>
    /// (<see cref="long.MinValue"/>: the session alone decides). With a <paramref name="pool"/>, words repeated
    /// across clients (tags, capabilities, platform, user, agent version) are kept once.
    /// </summary>
    public static List<ClientRecord> Read(DbConnection connection, DbTransaction? tx, string where, object? parameter, long staleBefore, Dictionary<string, string>? pool)
    {
        if (connection is not SqliteConnection sqlite)
        {
            return ReadThroughProvider(connection, tx, where, parameter, staleBefore, pool);
        }

        var db = sqlite.Handle ?? throw new InvalidOperationException("the registry connection is not open");
        Check(db, raw.sqlite3_prepare_v2(db, Select + where, out var stmt));
        using (stmt)
        {
            switch (parameter)
            {
                case null:
                    break;
                case long number:
                    Check(db, raw.sqlite3_bind_int64(stmt, 1, number));
                    break;
                case string text:
                    Check(db, raw.sqlite3_bind_text(stmt, 1, text));
                    break;
                default:
                    throw new ArgumentException($"cannot bind a {parameter.GetType().Name}", nameof(parameter));
            }

            var rows = new List<ClientRecord>();
            int step;
            while ((step = raw.sqlite3_step(stmt)) == raw.SQLITE_ROW)
            {
                rows.Add(Decode(stmt, staleBefore, pool));
            }

            if (step != raw.SQLITE_DONE)
            {
                Check(db, step);
            }

            return rows;
        }
    }

    /// <summary>The same rows through the ADO.NET reader of another engine (PostgreSQL); parameter 1 is <c>@p</c>.</summary>
    private static List<ClientRecord> ReadThroughProvider(DbConnection connection, DbTransaction? tx, string where, object? parameter, long staleBefore, Dictionary<string, string>? pool)
    {
        using var cmd = connection.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = Select + where;
        if (parameter is not null)
        {
            cmd.Parameters.AddWithValue("@p", parameter);
        }

        using var r = cmd.ExecuteReader();
        var rows = new List<ClientRecord>();
        while (r.Read())
        {
            rows.Add(Decode(new ProviderRow(r), staleBefore, pool));
        }

        return rows;
    }

    /// <summary>One row's columns; a struct type argument, so the SQLite path's calls stay direct.</summary>
    private interface IRow
    {
        bool Null(int i);

        string Text(int i);

        long Number(int i);
    }

    private readonly struct SqliteRow(sqlite3_stmt stmt) : IRow
    {
        public bool Null(int i) => raw.sqlite3_column_type(stmt, i) == raw.SQLITE_NULL;

        public string Text(int i) => Encoding.UTF8.GetString(raw.sqlite3_column_blob(stmt, i));

        public long Number(int i) => raw.sqlite3_column_int64(stmt, i);
    }

    private readonly struct ProviderRow(DbDataReader reader) : IRow
    {
        public bool Null(int i) => reader.IsDBNull(i);

        public string Text(int i) => reader.GetString(i);

        public long Number(int i) => reader.GetInt64(i);
    }

    private static ClientRecord Decode(sqlite3_stmt stmt, long staleBefore, Dictionary<string, string>? pool)
        => Decode(new SqliteRow(stmt), staleBefore, pool);

    private static ClientRecord Decode<TRow>(TRow row, long staleBefore, Dictionary<string, string>? pool)
        where TRow : struct, IRow
    {
        bool Null(int i) => row.Null(i);
        string? S(int i) => Null(i) ? null : row.Text(i);
        long? L(int i) => Null(i) ? null : row.Number(i);
        DateTimeOffset? T(int i) => L(i) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;
        string? Shared(string? s)
        {
            if (s is null || pool is null)
            {
                return s;
            }

            if (pool.TryGetValue(s, out var kept))
            {
                return kept;
            }

            pool[s] = s;
            return s;
        }

        string[] Words(int i)
        {
            var words = ParseArray(S(i));
            for (var k = 0; k < words.Length; k++)
            {
                words[k] = Shared(words[k])!;
            }

            return words;
        }

        var sessionId = L(19);
        var online = sessionId is not null && !Null(21) && L(22) > staleBefore;
        var allowed = S(4);
        return new ClientRecord
        {
            Uuid = S(0)!,
            DisplayName = S(1)!,
            Purpose = S(2),
            Tags = Words(3),
            AllowedPaths = allowed is null ? null : ParseArray(allowed),
            WebhookUrl = S(5),
            RateLimitRpm = (int?)L(6),
            RateLimitConcurrent = (int?)L(7),
            Hostname = S(8),
            Platform = Shared(S(9)),
            Username = Shared(S(10)),
            AgentVersion = Shared(S(11)),
            Capabilities = Words(12),
            KeyFingerprint = S(13),
            KeyMismatch = L(14) == 1,
            FirstSeen = T(15)!.Value,
            LastSeen = T(16)!.Value,
            ConnectionCount = (int)(L(17) ?? 0),
            RemovedAt = T(18),
            Online = online,
            TunnelPort = online ? (int?)L(20) : null,
            SessionId = online ? sessionId : null,
        };
    }

    /// <summary>A JSON array of strings; plain words are split by hand, anything escaped goes through the parser.</summary>
    internal static string[] ParseArray(string? json)
    {
        if (string.IsNullOrEmpty(json) || json == "[]")
        {
            return [];
        }

        if (json.Length > 4 && json.StartsWith("[\"", StringComparison.Ordinal) && json.EndsWith("\"]", StringComparison.Ordinal)
            && !json.Contains('\\', StringComparison.Ordinal))
        {
            return json[2..^2].Split("\",\"");
        }

        return JsonSerializer.Deserialize(json, ProtocolJson.Default.StringArray) ?? [];
    }

    private static void Check(sqlite3 db, int rc)
    {
        if (rc != raw.SQLITE_OK)
        {
            throw new SqliteException(raw.sqlite3_errmsg(db).utf8_to_string(), rc);
        }
    }
}
