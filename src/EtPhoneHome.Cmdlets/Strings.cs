namespace EtPhoneHome;

/// <summary>Stable error IDs and every user-facing string of the cmdlets, in one place.</summary>
internal static class Strings
{
    // Error IDs: stable, documented, safe to match in scripts.
    public const string ClientNotFoundId = "ClientNotFound";
    public const string RegistryUnavailableId = "RegistryUnavailable";
    public const string InvalidMaxErrorsId = "InvalidMaxErrors";
    public const string CommandFailedId = "CommandFailed";

    public const string ClientNotFound = "No client matches '{0}'. Get-EphClient lists the registered clients.";
    public const string RegistryUnavailable = "The fleet registry cannot be opened: {0}";
    public const string InvalidMaxErrors = "-MaxErrors '{0}' is not valid: {1}";
    public const string TargetFailed = "{0}: {1} ({2})";

    public const string RunCommandAction = "Run command '{0}'";
    public const string ProgressActivity = "Invoke-EphCommand";
    public const string ProgressStatus = "{0} of {1} done, {2} not succeeded";
    public const string VerboseTargets = "Running on {0} client(s) with throttle {1} and timeout {2} s.";
    public const string VerboseSummary = "Invoke-EphCommand: {0}";

    // ----- configuration (Get-/Set-EphConfiguration) -----
    public const string DataDirectoryNotFoundId = "DataDirectoryNotFound";
    public const string DataDirectoryNotFound = "The data directory '{0}' does not exist. Give the directory that holds registry.db (eph-server init creates it).";
    public const string ConfigurationTarget = "EtPhoneHome module configuration";
    public const string SetDataDirectoryAction = "Use data directory '{0}'";
    public const string ResetConfigurationAction = "Reset to $env:ETPHONEHOME_DATA_DIR or the default";
    // ----- health and metrics -----
    public const string VerboseMetricsTargets = "Asking {0} client(s) for metrics with throttle {1} and timeout {2} s.";
}
