namespace EtPhoneHome;

/// <summary>Stable error IDs and every user-facing string of the cmdlets, in one place.</summary>
internal static class Strings
{
    // Error IDs: stable, documented, safe to match in scripts.
    public const string ClientNotFoundId = "ClientNotFound";
    public const string RegistryUnavailableId = "RegistryUnavailable";
    public const string InvalidMaxErrorsId = "InvalidMaxErrors";
    public const string InvalidCommandRequestId = "InvalidCommandRequest";
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
    public const string SetRegistryAction = "Use registry {0}";
    public const string RegistryInvalidId = "RegistryInvalid";
    public const string ResetConfigurationAction = "Reset to $env:ETPHONEHOME_DATA_DIR or the default";
    // ----- health and metrics -----
    public const string VerboseMetricsTargets = "Asking {0} client(s) for metrics with throttle {1} and timeout {2} s.";
    // ----- exchange -----
    public const string ExchangeNotConfiguredId = "ExchangeNotConfigured";
    public const string ExchangeFailedId = "ExchangeFailed";
    public const string LocalFileErrorId = "LocalFileError";
    public const string ExchangeHostNotAllowedId = "ExchangeHostNotAllowed";
    public const string ExchangeChecksumMismatchId = "ExchangeChecksumMismatch";
    public const string ExchangeInvalidArgumentId = "ExchangeInvalidArgument";
    public const string ExchangeFileNotFoundId = "ExchangeFileNotFound";
    public const string ExchangeTransferNotFoundId = "ExchangeTransferNotFound";
    public const string ExchangeDeliveryFailedId = "ExchangeDeliveryFailed";

    public const string ExchangeUploadAction = "Upload to the exchange bucket (URL valid {0} h)";
    public const string ExchangeDeliverAction = "Write transfer '{0}' to '{1}'";
    public const string ExchangeCollectAction = "Upload '{0}' through the exchange and download it to '{1}'";
    public const string ExchangeDownloadAction = "Download to '{0}'";
    public const string ExchangeRemoveAction = "Delete transfer from the exchange bucket";
    public const string ExchangeInitializeAction = "Install lifecycle rule '{0}' (delete {1} after {2} days)";
    public const string ExchangeOfServer = "the exchange bucket of {0}";
    public const string ExchangeRemotePathNeedsClient = "-RemotePath needs -DestinationClient (or clients piped in): the client(s) to write the file to.";
    public const string ExchangeNotDeleted = "Transfer '{0}' does not exist (already deleted or expired); nothing was deleted.";
    public const string ExchangeProgressActivity = "EtPhoneHome exchange";
    public const string ExchangeProgressStatus = "{0}: {1:N0} of {2:N0} bytes";
    // ----- webhooks and rate limits -----
    public const string WebhookDeliveryNotFoundId = "WebhookDeliveryNotFound";
    public const string WebhookDeliveryQueuedId = "WebhookDeliveryAlreadyQueued";
    public const string WebhookNotConfiguredId = "WebhookNotConfigured";
    public const string WebhookUrlInvalidId = "WebhookUrlInvalid";
    public const string AmbiguousClientId = "AmbiguousClient";

    public const string WebhookDeliveryNotFound = "No webhook delivery has the id '{0}'. Get-EphWebhookDelivery lists them.";
    public const string WebhookDeliveryQueued = "{0}";
    public const string WebhookNotConfigured = "{0}";
    public const string WebhookUrlInvalid = "{0}";
    public const string AmbiguousClient = "'{0}' matches {1} clients; name exactly one.";
    public const string ResendAction = "Queue webhook delivery again";
    public const string ResendTarget = "delivery {0} ({1}, {2})";
    public const string ResendTargetRemote = "delivery {0} on {1}";
    public const string TestWebhookAction = "Send a signed webhook.test event";
    // ----- registry: client metadata, keys, removal, history -----
    public const string InvalidClientFieldId = "InvalidClientField";
    public const string ClientNameTakenId = "ClientNameTaken";
    public const string KeyNotFoundId = "KeyNotFound";
    public const string KeyDecisionNeededId = "KeyDecisionNeeded";
    public const string InvalidHistoryQueryId = "InvalidHistoryQuery";

    public const string KeyNotFound = "No key or client matches '{0}'. Get-EphClientKey lists the keys.";
    public const string InvalidClientField = "{0}: {1}";
    public const string SetClientAction = "Set {0}";
    public const string ApproveKeyAction = "Approve key (the client may connect and open its tunnel)";
    public const string RevokeKeyAction = "Revoke key and disconnect its client now";
    public const string RemoveClientAction = "Remove client: revoke its key, disconnect it now, hide it (its history stays)";
    public const string KeyTarget = "key {0}";
    public const string BackupRegistryAction = "Back up the registry {0} to this file";
    public const string RestoreRegistryAction = "Replace the registry with the backup {0} (the current file is kept beside it)";
    public const string RegistryBackupUnsound = "The backup {0} is not a sound registry ({1}); nothing was changed.";
    public const string RegistryBackupFailedId = "RegistryBackupFailed";
    public const string RegistryRestoreFailedId = "RegistryRestoreFailed";
    // ----- operators -----
    public const string OperatorNotFoundId = "OperatorNotFound";
    public const string InvalidOperatorId = "InvalidOperator";
    public const string OperatorNotFound = "No active operator is named '{0}' or has that key fingerprint. Get-EphOperator lists the operators.";
    public const string AddOperatorAction = "Add operator with role {0} (its key reaches the operator service through sshd)";
    public const string SetOperatorAction = "Set the operator's role to {0}";
    public const string RemoveOperatorAction = "Remove operator (sshd refuses its key from then on)";
    public const string OperatorTarget = "operator '{0}' (key {1})";
    public const string KeyReplacesTarget = "key {0}, which claims {1}: {1} will trust {0} instead of its key {2} (revoked)";
    public const string KeyTargetOfClient = "key {0} of {1}";
    public const string VerboseRevoked = "Revoked key {0}: closed {1} session(s), disconnected {2}.";
    public const string VerboseAlreadyRevoked = "Key {0} was already revoked.";
    public const string InvalidKeyAgeId = "InvalidKeyAge";
    public const string PurgePendingKeysAction = "Purge pending keys (an agent that comes back is recorded as pending again)";
    public const string PendingKeysTarget = "{0} pending key(s) unseen for more than {1}: {2}";
    public const string PendingKeyInTarget = "{0} ({1})";
    // ----- files and transfers -----
    public const string NoClientId = "NoClient";
    public const string ClientOfflineId = "ClientOffline";
    public const string CommandTimedOutId = "CommandTimedOut";
    public const string ClientDeniedId = "ClientDenied";
    public const string RateLimitedId = "RateLimited";
    public const string ClientUnreachableId = "ClientUnreachable";
    public const string TargetUnreachable = "{0}: {1}: {2}";
    public const string PathDeniedId = "PathDenied";
    public const string FileNotFoundId = "FileNotFound";
    public const string FileTooLargeId = "FileTooLarge";
    public const string ChecksumMismatchId = "ChecksumMismatch";
    public const string FileOperationFailedId = "FileOperationFailed";
    public const string LocalFileNotFoundId = "LocalFileNotFound";

    public const string NoClient = "No client given: pipe clients from Get-EphClient, name them with -ClientId, or use -All for every registered client.";
    public const string ClientsNotFound = "No client matches {0}; nothing was run. Get-EphClient lists the registered clients.";
    public const string FileOperationFailed = "{0}: {1}";
    public const string LocalFileNotFound = "The local file '{0}' does not exist.";
    public const string WriteFileAction = "Write {0} bytes to '{1}'";
    public const string UploadAction = "Copy '{0}' ({1} bytes) to '{2}'";
    public const string TransferProgressActivity = "Copy-EphFile";
    public const string TransferProgressStatus = "{0} of {1} clients done, {2:N0} of {3:N0} bytes";
    public const string VerboseTransferSummary = "Copy-EphFile: {0}";
    public const string VerboseRetry = "{0}: connection dropped ({1}); resuming";
    // ----- remote sessions (Connect-EphServer) -----
    public const string NotAvailableRemotelyId = "NotAvailableRemotely";
    public const string NotAvailableRemotely = "{0} is not available through a server connection (connected to {1}): it would act on this machine, not the server. Run it on the server host, or Disconnect-EphServer to work locally.";
    public const string OperatorRoleRequiredId = "OperatorRoleRequired";
    public const string OperatorRoleRequired = "The server refused: {0} (connected as '{1}' with the {2} role; this needs the {3} role, which an admin grants with eph-server operators set-role).";
    public const string RemoteInvalidArgumentId = "InvalidArgument";
    public const string RemoteRateLimitedId = "RateLimited";
    public const string RemoteOperationFailedId = "RemoteOperationFailed";
    public const string RemoteOperationCancelledId = "RemoteOperationCancelled";
    public const string ServerConnectionFailedId = "ServerConnectionFailed";
    public const string ServerConnectionFailed = "The connection to the server {0} failed: {1}";
    public const string HostKeyChangedId = "ServerHostKeyChanged";
    public const string HostKeyNotTrustedId = "ServerHostKeyNotTrusted";
    public const string HostKeyMismatchId = "ServerHostKeyMismatch";
    public const string SshAuthenticationFailedId = "SshAuthenticationFailed";
    public const string HostKeyConfirmNonInteractive = "The host key of {0} is not pinned yet and this session cannot ask whether to trust it. Check the server's fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server) and pass it: Connect-EphServer -HostName {1} -HostKeyFingerprint SHA256:...";
    public const string HostKeyConfirmCaption = "Trust the server's host key?";
    public const string HostKeyConfirmQuery = "The server {0} is not known yet. Its {1} host key has the fingerprint\n    {2}\nCompare it with the one its operator gives you (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server). Pin this key and connect?";
    public const string SavedConnectionNotFoundId = "SavedConnectionNotFound";
    public const string SavedConnectionNotFound = "No connection is saved as '{0}'. Get-EphServerConnection -ListSaved lists the saved ones; Connect-EphServer -HostName ... -Name {0} -Save saves one.";
    public const string InvalidServerAddressId = "InvalidServerAddress";
    public const string ProfileErrorId = "ConnectionProfileError";
    public const string NotConnectedId = "NotConnected";
    public const string HostKeyPinNotFoundId = "HostKeyPinNotFound";
    public const string HostKeyPinNotFound = "No host key is pinned for {0}.";
    public const string ForgetHostKeyAction = "Forget the pinned host key {0} (the next Connect-EphServer asks again or needs -HostKeyFingerprint)";
    public const string ConnectAction = "Connect to the operator service as {0}";
    public const string VerboseConnected = "Connected to {0} as operator '{1}' ({2}) on server host '{3}', host key {4}.";
    public const string VerboseDisconnected = "Disconnected from {0}; this session works locally again.";
    public const string VerboseRemote = "{0}: through the server connection to {1} as '{2}' ({3}).";
}
