using System.Collections.ObjectModel;

namespace EtPhoneHome;

/// <summary>
/// The collection type of every collection property of the module's output types. PowerShell enumerates it like an
/// array (<c>$c.Tags -contains 'web'</c>, <c>-join</c>, <c>ForEach-Object</c>); its <see cref="ToString"/> is the values
/// joined with <see cref="EphList.Separator"/>, so Export-Csv and ConvertTo-Csv write <c>web;prod</c> instead of
/// a type name.
/// </summary>
public sealed class EphList<T> : ReadOnlyCollection<T>
{
    internal EphList(IEnumerable<T> items)
        : base(items is T[] array ? array : [.. items])
    {
    }

    /// <summary>The values joined with ';' (tags cannot contain it).</summary>
    public override string ToString() => string.Join(EphList.Separator, this);
}

/// <summary>Builds <see cref="EphList{T}"/>s.</summary>
public static class EphList
{
    /// <summary>What joins the values of a collection property in CSV and in ToString().</summary>
    public const string Separator = ";";

    internal static EphList<T> Of<T>(IEnumerable<T> items) => new(items);
}

/// <summary>
/// The type of dictionary properties of the output types (exchange metadata): indexable by key, case-insensitive, and
/// written to CSV as <c>key=value</c> pairs joined with ';', keys in order.
/// </summary>
public sealed class EphMap : ReadOnlyDictionary<string, string>
{
    internal EphMap(IEnumerable<KeyValuePair<string, string>> pairs)
        : base(new Dictionary<string, string>(pairs, StringComparer.OrdinalIgnoreCase))
    {
    }

    /// <summary>key=value pairs joined with ';', keys in ordinal order.</summary>
    public override string ToString() =>
        string.Join(EphList.Separator, this.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => $"{p.Key}={p.Value}"));
}
