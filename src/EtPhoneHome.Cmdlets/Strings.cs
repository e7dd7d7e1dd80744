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

    // ----- registry: client metadata, keys, removal, history -----
    public const string InvalidClientFieldId = "InvalidClientField";
    public const string KeyNotFoundId = "KeyNotFound";
    public const string InvalidHistoryQueryId = "InvalidHistoryQuery";

    public const string KeyNotFound = "No key or client matches '{0}'. Get-EphClientKey lists the keys.";
    public const string InvalidClientField = "{0}: {1}";
    public const string SetClientAction = "Set {0}";
    public const string ApproveKeyAction = "Approve key (the client may connect and open its tunnel)";
    public const string RevokeKeyAction = "Revoke key and disconnect its client now";
    public const string RemoveClientAction = "Remove client: revoke its key, disconnect it now, hide it (its history stays)";
    public const string KeyTarget = "key {0}";
    public const string KeyTargetOfClient = "key {0} of {1}";
    public const string VerboseRevoked = "Revoked key {0}: closed {1} session(s), disconnected {2}.";
    public const string VerboseAlreadyRevoked = "Key {0} was already revoked.";
}
