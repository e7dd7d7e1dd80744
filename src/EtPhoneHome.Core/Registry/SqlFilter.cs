using System.Globalization;
using System.Data.Common;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Builds the WHERE clause of one query: conditions joined by AND, every value bound as a numbered
/// parameter of the command (never spliced into the SQL text).
/// </summary>
internal sealed class SqlFilter(DbCommand command)
{
    private readonly List<string> _conditions = [];
    private int _next;

    /// <summary>Binds <paramref name="value"/> and returns its parameter name.</summary>
    public string Param(object? value)
    {
        var name = "@f" + _next++.ToString(CultureInfo.InvariantCulture);
        command.Parameters.AddWithValue(name, value ?? DBNull.Value);
        return name;
    }

    /// <summary><c>column IN (@f0,@f1,…)</c> over the given values.</summary>
    public string In(string column, IEnumerable<object?> values) => $"{column} IN ({string.Join(",", values.Select(Param))})";

    public void Add(string condition) => _conditions.Add(condition);

    /// <summary>" WHERE a AND b", or nothing when no condition was added.</summary>
    public string Clause => _conditions.Count > 0 ? " WHERE " + string.Join(" AND ", _conditions) : "";
}
