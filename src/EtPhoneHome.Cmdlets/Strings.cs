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
    public const string TestWebhookAction = "Send a signed webhook.test event";
}
