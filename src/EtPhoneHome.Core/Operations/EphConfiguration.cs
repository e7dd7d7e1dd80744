using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// Where operator surfaces (cmdlets, eph-server verbs) get their registry. The opener is a seam: the
/// SQLite registry by default; tests plug in fakes.
/// </summary>
public static class EphConfiguration
{
    private static Func<DataDirectory, RegistryStores> s_registryOpener = directory => RegistryStores.Of(SqliteRegistry.Open(directory));

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
