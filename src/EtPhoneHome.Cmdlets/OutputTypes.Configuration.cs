namespace EtPhoneHome;

/// <summary>The module's settings in effect, as Get-EphConfiguration writes them.</summary>
public sealed class EphConfigurationInfo
{
    internal EphConfigurationInfo(string dataDirectory, EphSettingSource dataDirectorySource, string registryFile, bool registryExists)
    {
        DataDirectory = dataDirectory;
        DataDirectorySource = dataDirectorySource;
        RegistryFile = registryFile;
        RegistryExists = registryExists;
    }

    /// <summary>The server data directory the cmdlets use.</summary>
    public string DataDirectory { get; }
    /// <summary>Where <see cref="DataDirectory"/> came from: Session, Environment or Default.</summary>
    public EphSettingSource DataDirectorySource { get; }
    /// <summary>The registry database inside the data directory.</summary>
    public string RegistryFile { get; }
    /// <summary>True when the registry database exists.</summary>
    public bool RegistryExists { get; }

    public override string ToString() => DataDirectory;
}
