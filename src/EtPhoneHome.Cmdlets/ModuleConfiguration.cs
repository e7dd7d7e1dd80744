using System.Management.Automation.Runspaces;
using System.Runtime.CompilerServices;
using EtPhoneHome.Core;

namespace EtPhoneHome;

/// <summary>Where the effective data directory came from.</summary>
public enum EphSettingSource
{
    /// <summary>Set-EphConfiguration in this PowerShell session (runspace).</summary>
    Session,
    /// <summary>The ETPHONEHOME_DATA_DIR environment variable.</summary>
    Environment,
    /// <summary>~/.etphonehome-server.</summary>
    Default,
}

/// <summary>
/// The module's settings, without global variables: one immutable snapshot per PowerShell session (runspace),
/// replaced as a whole by Set-EphConfiguration. The module's assembly is shared by every runspace of the process
/// (ForEach-Object -Parallel, thread jobs, a host's runspace pool), so the snapshots are keyed by the runspace and
/// die with it: a setting made in one session is not seen by another, as with variables and $PSDefaultParameterValues.
/// Code that runs without a runspace (hosts calling the cmdlets' helpers) shares one process-wide snapshot.
/// Every cmdlet and completer reads the registry location from here. New settings (rate-limit mode, exchange)
/// become new properties of <see cref="ModuleSettings"/> and parameters of Set-EphConfiguration.
/// </summary>
internal static class ModuleConfiguration
{
    private static readonly ConditionalWeakTable<Runspace, ModuleSettings> s_sessions = [];
    private static ModuleSettings s_noRunspace = new();

    /// <summary>
    /// The settings of the runspace of the calling thread. Only the pipeline thread has one: cmdlets that work on the
    /// thread pool read <see cref="EphCmdlet.Settings"/>, captured before their work starts.
    /// </summary>
    public static ModuleSettings Current
    {
        get => Runspace.DefaultRunspace is { } runspace
            ? s_sessions.TryGetValue(runspace, out var settings) ? settings : new ModuleSettings()
            : Volatile.Read(ref s_noRunspace);
        set
        {
            ArgumentNullException.ThrowIfNull(value);
            if (Runspace.DefaultRunspace is { } runspace)
            {
                s_sessions.AddOrUpdate(runspace, value);
            }
            else
            {
                Volatile.Write(ref s_noRunspace, value);
            }
        }
    }

    /// <summary>The data directory in effect for the calling thread's session.</summary>
    public static (DataDirectory Directory, EphSettingSource Source) ResolveDataDirectory() => ResolveDataDirectory(Current);

    /// <summary>The data directory in effect under <paramref name="settings"/>: the session's, else $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server.</summary>
    public static (DataDirectory Directory, EphSettingSource Source) ResolveDataDirectory(ModuleSettings settings)
    {
        var session = settings.DataDirectory;
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

    /// <summary>The registry (Set-EphConfiguration -Registry), or null for $ETPHONEHOME_REGISTRY, the data directory's registry.conf, else SQLite.</summary>
    public string? Registry { get; init; }

    /// <summary>
    /// The server connection of this session (Connect-EphServer); null means local mode: the cmdlets open the registry
    /// of the data directory. While it is set every cmdlet goes through the server or refuses (NotAvailableRemotely).
    /// </summary>
    public EphRemoteSession? Remote { get; init; }
}
