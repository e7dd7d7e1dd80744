using System.Globalization;
using System.Text;
using System.Data.Common;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The registry's ADO helpers in one place: commands with named parameters on a connection and its transaction, scalars,
/// row reading by column name, and the text helpers of its SQL (LIKE patterns, clipped values).
/// </summary>
internal static class Sql
{
    internal static DbCommand Command(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in args)
        {
            cmd.Parameters.AddWithValue(name, value);
        }

        return cmd;
    }

    /// <summary>Adds a named parameter (null as DBNull) to a command of either engine.</summary>
    internal static DbParameter AddWithValue(this DbParameterCollection parameters, string name, object? value)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        var parameter = parameters switch
        {
            Microsoft.Data.Sqlite.SqliteParameterCollection => (DbParameter)new Microsoft.Data.Sqlite.SqliteParameter(),
            _ => new Npgsql.NpgsqlParameter(),
        };
        parameter.ParameterName = name;
        parameter.Value = value ?? DBNull.Value;
        parameters.Add(parameter);
        return parameter;
    }

    internal static void Exec(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        cmd.ExecuteNonQuery();
    }

    internal static T? Scalar<T>(DbConnection c, DbTransaction? tx, string sql, params (string Name, object? Value)[] args)
    {
        using var cmd = Command(c, tx, sql, args);
        var value = cmd.ExecuteScalar();
        return value is null or DBNull ? default : (T)Convert.ChangeType(value, typeof(T), CultureInfo.InvariantCulture);
    }

    internal static List<T> ReadAll<T>(DbCommand cmd, Func<DbDataReader, T> read)
    {
        using var r = cmd.ExecuteReader();
        var list = new List<T>();
        while (r.Read())
        {
            list.Add(read(r));
        }

        return list;
    }

    internal static string? Str(DbDataReader r, string column)
    {
        var i = r.GetOrdinal(column);
        return r.IsDBNull(i) ? null : r.GetString(i);
    }

    internal static long? Long(DbDataReader r, string column)
    {
        var i = r.GetOrdinal(column);
        return r.IsDBNull(i) ? null : r.GetInt64(i);
    }

    internal static DateTimeOffset? Time(DbDataReader r, string column)
        => Long(r, column) is { } ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : null;

    internal static string Clip(string s, int max) => s.Length <= max ? s : s[..max];

    internal static string WildcardToLike(string pattern)
    {
        var sb = new StringBuilder(pattern.Length);
        foreach (var ch in pattern)
        {
            switch (ch)
            {
                case '*': sb.Append('%'); break;
                case '?': sb.Append('_'); break;
                case '%' or '_' or '\\': sb.Append('\\').Append(ch); break;
                default: sb.Append(ch); break;
            }
        }

        return sb.ToString();
    }

    /// <summary>Each row of a query as one line: its values as invariant text, space-separated (PRAGMA checks).</summary>
    internal static List<string> RowTexts(DbConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        using var reader = cmd.ExecuteReader();
        var rows = new List<string>();
        while (reader.Read())
        {
            var values = new object[reader.FieldCount];
            reader.GetValues(values);
            rows.Add(string.Join(" ", values.Select(v => Convert.ToString(v, System.Globalization.CultureInfo.InvariantCulture))));
        }

        return rows;
    }

    /// <summary>The first column of the first row as a number (0 when there is none).</summary>
    internal static long LongScalar(DbConnection c, string sql)
    {
        using var cmd = c.CreateCommand();
        cmd.CommandText = sql;
        return Convert.ToInt64(cmd.ExecuteScalar() ?? 0L, System.Globalization.CultureInfo.InvariantCulture);
    }
}
