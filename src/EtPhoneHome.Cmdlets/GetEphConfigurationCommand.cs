using System.Management.Automation;

namespace EtPhoneHome;

/// <summary>Shows the module's settings in effect and where each came from.</summary>
[Cmdlet(VerbsCommon.Get, "EphConfiguration", HelpUri = HelpLinks.Base + "Get-EphConfiguration.md")]
[OutputType(typeof(EphConfigurationInfo))]
public sealed class GetEphConfigurationCommand : EphCmdlet
{
    protected override void EndProcessing() => WriteObject(Describe());

    internal static EphConfigurationInfo Describe()
    {
        var (directory, source) = ModuleConfiguration.ResolveDataDirectory();
        return new EphConfigurationInfo(directory.Path, source, directory.RegistryFile, File.Exists(directory.RegistryFile));
    }
}
