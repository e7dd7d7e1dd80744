using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Copies the registry while the hub keeps running (SQLite's online backup), then checks the copy.</summary>
[Cmdlet(VerbsData.Backup, "EphRegistry", HelpUri = HelpLinks.Base + "Backup-EphRegistry.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Low)]
[OutputType(typeof(EphRegistryCheck))]
public sealed class BackupEphRegistryCommand : EphCmdlet
{
    /// <summary>The file to write (mode 0600); relative paths are relative to the current location.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Replace the file when it exists.</summary>
    [Parameter]
    public SwitchParameter Force { get; set; }

    protected override void EndProcessing()
    {
        var target = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        var dir = ModuleConfiguration.ResolveDataDirectory().Directory;
        if (!ShouldProcess(target, string.Format(CultureInfo.CurrentCulture, Strings.BackupRegistryAction, dir.RegistryFile)))
        {
            return;
        }

        try
        {
            WriteObject(new EphRegistryCheck(RegistryMaintenance.Backup(dir, RegistrySource.Resolve(dir, Settings.Registry), target, Force.IsPresent)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
        {
            ThrowTerminatingError(NewError(Strings.RegistryBackupFailedId, ErrorCategory.WriteError, target, ex.Message, ex));
        }
    }
}

/// <summary>
/// Puts a backup in place of the registry: refused while a hub runs on the data directory and when the backup fails the
/// check; the file it replaces is kept beside it.
/// </summary>
[Cmdlet(VerbsData.Restore, "EphRegistry", HelpUri = HelpLinks.Base + "Restore-EphRegistry.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.High)]
[OutputType(typeof(EphRegistryCheck))]
public sealed class RestoreEphRegistryCommand : EphCmdlet
{
    /// <summary>The backup file (from Backup-EphRegistry or eph-server backup).</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    protected override void EndProcessing()
    {
        var source = SessionState.Path.GetUnresolvedProviderPathFromPSPath(Path);
        var dir = ModuleConfiguration.ResolveDataDirectory().Directory;
        try
        {
            var registry = RegistrySource.Resolve(dir, Settings.Registry);
            if (registry.IsPostgres)
            {
                RegistryMaintenance.Restore(dir, registry, source, _ => true); // refuses, saying what to use instead
            }

            // Checked before the prompt: nobody is asked to confirm putting a damaged file in place.
            var report = RegistryMaintenance.Check(source);
            if (!report.Ok)
            {
                ThrowTerminatingError(NewError(Strings.RegistryRestoreFailedId, ErrorCategory.InvalidData, source,
                    string.Format(CultureInfo.CurrentCulture, Strings.RegistryBackupUnsound, source, string.Join("; ", report.Problems))));
            }

            if (!ShouldProcess(dir.RegistryFile, string.Format(CultureInfo.CurrentCulture, Strings.RestoreRegistryAction, source)))
            {
                return;
            }

            WriteObject(new EphRegistryCheck(RegistryMaintenance.Restore(dir, registry, source, EtPhoneHome.Core.HubPresence.IsRunning)));
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or InvalidOperationException or ArgumentException)
        {
            ThrowTerminatingError(NewError(Strings.RegistryRestoreFailedId, ErrorCategory.InvalidOperation, source, ex.Message, ex));
        }
    }
}

/// <summary>A registry file as the check saw it.</summary>
public sealed class EphRegistryCheck
{
    internal EphRegistryCheck(RegistryCheckReport report)
    {
        Path = report.File;
        Ok = report.Ok;
        SchemaVersion = report.SchemaVersion;
        SizeBytes = report.SizeBytes;
        Clients = report.Clients;
        Keys = report.Keys;
        Problems = EphList.Of(report.Problems);
    }

    public string Path { get; }
    public bool Ok { get; }
    public int SchemaVersion { get; }
    public long SizeBytes { get; }
    public long Clients { get; }
    public long Keys { get; }
    public EphList<string> Problems { get; }
}
