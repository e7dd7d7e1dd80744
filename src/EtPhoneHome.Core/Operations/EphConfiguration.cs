using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// Where operator surfaces (cmdlets, eph-server verbs) get their registry. The opener is a seam: the
/// SQLite registry by default; tests plug in fakes.
/// </summary>
public static class EphConfiguration
{
    private static Func<DataDirectory, RegistryStores> s_registryOpener = directory => RegistryStores.Of(OpenRegistryOf(directory));

    private static readonly AsyncLocal<string?> s_registry = new();

    /// <summary>
    /// The registry named by options (eph-server --registry, Set-EphConfiguration -Registry), or null: then
    /// $ETPHONEHOME_REGISTRY, the data directory's registry.conf, else SQLite (<see cref="RegistrySource.Resolve(DataDirectory, string?)"/>). Set
    /// for the calling flow (an async local), so one invocation's option never reaches another's.
    /// </summary>
    public static string? Registry
    {
        get => s_registry.Value;
        set => s_registry.Value = value;
    }

    /// <summary>Opens the registry of <paramref name="directory"/> on the engine configuration names for it.</summary>
    public static SqliteRegistry OpenRegistryOf(DataDirectory directory)
    {
        ArgumentNullException.ThrowIfNull(directory);
        return SqliteRegistry.Open(directory, RegistrySource.Resolve(directory, Registry));
    }

    /// <summary>
    /// <see cref="OpenRegistry(DataDirectory?)"/> with the registry a PowerShell session set (Set-EphConfiguration
    /// -Registry), which takes the place of the process's for this call.
    /// </summary>
    public static RegistryStores OpenRegistry(DataDirectory? directory, string? registry)
    {
        var previous = Registry;
        Registry = registry ?? previous;
        try
        {
            return OpenRegistry(directory);
        }
        finally
        {
            Registry = previous;
        }
    }

    /// <summary>Opens the registry of a data directory.</summary>
    public static Func<DataDirectory, RegistryStores> RegistryOpener
    {
        get => Volatile.Read(ref s_registryOpener);
        set => Volatile.Write(ref s_registryOpener, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Opens the registry of <paramref name="directory"/>, or of the default data directory.</summary>
    public static RegistryStores OpenRegistry(DataDirectory? directory = null) =>
        RegistryOpener(directory ?? DataDirectory.Resolve(null));
}
