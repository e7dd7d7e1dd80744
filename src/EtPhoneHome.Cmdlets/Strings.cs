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

    // ----- files and transfers -----
    public const string NoClientId = "NoClient";
    public const string ClientOfflineId = "ClientOffline";
    public const string PathDeniedId = "PathDenied";
    public const string FileNotFoundId = "FileNotFound";
    public const string FileTooLargeId = "FileTooLarge";
    public const string ChecksumMismatchId = "ChecksumMismatch";
    public const string FileOperationFailedId = "FileOperationFailed";
    public const string LocalFileNotFoundId = "LocalFileNotFound";

    public const string NoClient = "No client given: pipe clients from Get-EphClient or use -ClientId.";
    public const string FileOperationFailed = "{0}: {1}";
    public const string LocalFileNotFound = "The local file '{0}' does not exist.";
    public const string WriteFileAction = "Write {0} bytes to '{1}'";
    public const string UploadAction = "Copy '{0}' ({1} bytes) to '{2}'";
    public const string TransferProgressActivity = "Copy-EphFile";
    public const string TransferProgressStatus = "{0} of {1} clients done, {2:N0} of {3:N0} bytes";
    public const string VerboseTransferSummary = "Copy-EphFile: {0}";
    public const string VerboseRetry = "{0}: connection dropped ({1}); resuming";
}
