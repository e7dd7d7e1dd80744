using System.Management.Automation;

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
        var info = new EphConfigurationInfo(directory.Path, source, directory.RegistryFile, File.Exists(directory.RegistryFile));
        if (settings.Remote is not { } remote)
        {
            return info;
        }

        var who = remote.Server.Identity;
        return new EphConfigurationInfo(directory.Path, source, directory.RegistryFile, File.Exists(directory.RegistryFile))
        {
            Mode = EphSessionMode.Remote,
            Server = remote.Describe(),
            Operator = who?.Operator,
            Role = who?.Role.ToString().ToLowerInvariant(),
        };
    }
}
