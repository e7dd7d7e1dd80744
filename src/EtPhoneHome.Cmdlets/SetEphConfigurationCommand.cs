using System.Globalization;
using System.Management.Automation;

namespace EtPhoneHome;

/// <summary>Changes the module's settings for this PowerShell session (runspace); other sessions of the process keep theirs.</summary>
[Cmdlet(VerbsCommon.Set, "EphConfiguration", HelpUri = HelpLinks.Base + "Set-EphConfiguration.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low, DefaultParameterSetName = RegistrySet)]
[OutputType(typeof(EphConfigurationInfo))]
public sealed class SetEphConfigurationCommand : EphCmdlet
{
    public const string UpdateSet = "Update";
    public const string ResetSet = "Reset";
    public const string RegistrySet = "Registry";

    /// <summary>The server data directory (holding registry.db); relative paths resolve against the current location.</summary>
    [Parameter(ParameterSetName = UpdateSet, Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    public string DataDirectory { get; set; } = "";

    /// <summary>
    /// The registry for this session: sqlite, a postgresql:// URI or connection string without its password, or
    /// file:FILE holding one (mode 0600). A password written here is refused: it would land in the history.
    /// </summary>
    [Parameter(ParameterSetName = UpdateSet)]
    [Parameter(ParameterSetName = RegistrySet, Mandatory = true)]
    [ValidateNotNullOrEmpty]
    public string? Registry { get; set; }

    /// <summary>Forgets this session's settings: $env:ETPHONEHOME_DATA_DIR or the default apply again.</summary>
    [Parameter(ParameterSetName = ResetSet, Mandatory = true)]
    public SwitchParameter Reset { get; set; }

    /// <summary>Writes the settings in effect afterwards.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (Reset.IsPresent)
        {
            if (ShouldProcess(Strings.ConfigurationTarget, Strings.ResetConfigurationAction))
            {
                ModuleConfiguration.Current = new ModuleSettings();
            }
        }
        else if (ParameterSetName == UpdateSet)
        {
            var path = SessionState.Path.GetUnresolvedProviderPathFromPSPath(DataDirectory);
            if (!Directory.Exists(path))
            {
                ThrowTerminatingError(NewError(Strings.DataDirectoryNotFoundId, ErrorCategory.ObjectNotFound, DataDirectory,
                    string.Format(CultureInfo.CurrentCulture, Strings.DataDirectoryNotFound, path)));
            }

            if (ShouldProcess(Strings.ConfigurationTarget, string.Format(CultureInfo.CurrentCulture, Strings.SetDataDirectoryAction, path)))
            {
                ModuleConfiguration.Current = ModuleConfiguration.Current with { DataDirectory = Path.GetFullPath(path) };
            }
        }

        if (Registry is { } registry)
        {
            EtPhoneHome.Core.Registry.RegistrySource source;
            try
            {
                source = EtPhoneHome.Core.Registry.RegistrySource.Parse(registry, inlinePassword: false);
            }
            catch (ArgumentException ex)
            {
                // The message never quotes the value: it may hold a password.
                ThrowTerminatingError(NewError(Strings.RegistryInvalidId, ErrorCategory.InvalidArgument, null, ex.Message));
                return;
            }

            if (ShouldProcess(Strings.ConfigurationTarget, string.Format(CultureInfo.CurrentCulture, Strings.SetRegistryAction, source)))
            {
                ModuleConfiguration.Current = ModuleConfiguration.Current with { Registry = registry };
            }
        }

        if (PassThru.IsPresent)
        {
            WriteObject(GetEphConfigurationCommand.Describe());
        }
    }
}
