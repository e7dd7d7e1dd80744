using EtPhoneHome.Core;

namespace EtPhoneHome;

/// <summary>Where the effective data directory came from.</summary>
public enum EphSettingSource
{
    /// <summary>Set-EphConfiguration in this PowerShell process.</summary>
    Session,
    /// <summary>The ETPHONEHOME_DATA_DIR environment variable.</summary>
    Environment,
    /// <summary>~/.etphonehome-server.</summary>
    Default,
}

/// <summary>
/// The module's settings, without global variables: one immutable snapshot in a static holder, replaced as a
/// whole by Set-EphConfiguration. It lives as long as the module's assembly, that is the PowerShell process;
/// every runspace of the process sees the same settings (a binary module's assembly cannot be loaded twice).
/// Every cmdlet and completer reads the registry location from here. New settings (rate-limit mode, exchange)
/// become new properties of <see cref="ModuleSettings"/> and parameters of Set-EphConfiguration.
/// </summary>
internal static class ModuleConfiguration
{
    private static ModuleSettings s_settings = new();

    public static ModuleSettings Current
    {
        get => Volatile.Read(ref s_settings);
        set => Volatile.Write(ref s_settings, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>The data directory in effect: the session's, else $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server.</summary>
    public static (DataDirectory Directory, EphSettingSource Source) ResolveDataDirectory()
    {
        var session = Current.DataDirectory;
        if (!string.IsNullOrWhiteSpace(session))
        {
            return (new DataDirectory(session), EphSettingSource.Session);
        }

        var source = string.IsNullOrWhiteSpace(System.Environment.GetEnvironmentVariable(DataDirectory.EnvironmentVariable))
            ? EphSettingSource.Default
            : EphSettingSource.Environment;
        return (DataDirectory.Resolve(null), source);
    }
}

/// <summary>The settings a PowerShell session may override; null means "not set here".</summary>
internal sealed record ModuleSettings
{
    /// <summary>Full path of the server data directory, or null to use the environment or the default.</summary>
    public string? DataDirectory { get; init; }
}
