using System.Management.Automation;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Shows the module's settings in effect and where each came from.</summary>
[Cmdlet(VerbsCommon.Get, "EphConfiguration", HelpUri = HelpLinks.Base + "Get-EphConfiguration.md")]
[OutputType(typeof(EphConfigurationInfo))]
public sealed class GetEphConfigurationCommand : EphCmdlet
{
    private protected override bool SupportsRemote => true;

    protected override void EndProcessing() => WriteObject(Describe());

    internal static EphConfigurationInfo Describe()
    {
        var settings = ModuleConfiguration.Current;
        var (directory, source) = ModuleConfiguration.ResolveDataDirectory(settings);
        var (registry, engine, origin) = DescribeRegistry(directory, settings.Registry);
        var remote = settings.Remote;
        var who = remote?.Server.Identity;
        return new EphConfigurationInfo(directory.Path, source, directory.RegistryFile, File.Exists(directory.RegistryFile))
        {
            Registry = registry,
            RegistryEngine = engine,
            RegistrySource = origin,
            Mode = remote is null ? EphSessionMode.Local : EphSessionMode.Remote,
            Server = remote?.Describe(),
            Operator = who?.Operator,
            Role = who?.Role.ToString().ToLowerInvariant(),
        };
    }

    /// <summary>
    /// The registry local mode opens and where that choice came from, as <see cref="RegistrySource.Resolve(DataDirectory, string?)"/>
    /// decides it. Shown without a password; a registry that cannot be read is named by the reason, not the value.
    /// </summary>
    private static (string Registry, string Engine, EphRegistrySource Origin) DescribeRegistry(DataDirectory directory, string? option)
    {
        var origin = !string.IsNullOrWhiteSpace(option) ? EphRegistrySource.Session
            : Environment.GetEnvironmentVariable(RegistrySource.EnvironmentVariable) is { Length: > 0 } ? EphRegistrySource.Environment
            : File.Exists(Path.Combine(directory.Path, RegistrySource.FileName)) ? EphRegistrySource.DataDirectory
            : EphRegistrySource.Default;
        try
        {
            var registry = RegistrySource.Resolve(directory, option);
            return (registry.IsPostgres ? registry.ToString() : directory.RegistryFile, registry.IsPostgres ? "PostgreSQL" : "SQLite", origin);
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or UnauthorizedAccessException or FormatException)
        {
            return ($"(cannot be read: {ex.Message})", "Unknown", origin);
        }
    }
}
