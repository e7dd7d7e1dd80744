using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Base of every EtPhoneHome cmdlet: registry access and error records with stable IDs.</summary>
public abstract class EphCmdlet : PSCmdlet
{
    private ModuleSettings? _settings;

    /// <summary>
    /// The settings of the session this command runs in, read on the pipeline thread the first time (the async base
    /// reads it before any work goes to the thread pool, where no runspace is current).
    /// </summary>
    internal ModuleSettings Settings => _settings ??= ModuleConfiguration.Current;

    /// <summary>The session's server connection (Connect-EphServer); null in local mode.</summary>
    internal EphRemoteSession? Remote => Settings.Remote;

    /// <summary>
    /// Whether this cmdlet goes through the operator service when the session is connected to a server. Cmdlets that do
    /// not refuse with NotAvailableRemotely before doing anything, so nothing ever acts on a local registry while connected.
    /// </summary>
    private protected virtual bool SupportsRemote => false;

    /// <summary>
    /// Refuses to run while connected when this cmdlet has no remote operation. Called on the pipeline thread before
    /// any work (the async base does it in BeginProcessing; synchronous cmdlets through <see cref="BeginProcessing"/>).
    /// </summary>
    internal void RefuseIfRemoteUnsupported()
    {
        if (!SupportsRemote && Remote is { } remote)
        {
            throw new EphTerminatingException(NotAvailableRemotelyError(MyInvocation?.MyCommand?.Name ?? GetType().Name, remote));
        }
    }

    internal static ErrorRecord NotAvailableRemotelyError(string cmdlet, EphRemoteSession remote) =>
        NewError(Strings.NotAvailableRemotelyId, ErrorCategory.InvalidOperation, cmdlet, NotAvailableRemotelyMessage(cmdlet, remote));

    internal static string NotAvailableRemotelyMessage(string cmdlet, EphRemoteSession remote) =>
        string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.NotAvailableRemotely, cmdlet, remote.Describe());

    protected override void BeginProcessing()
    {
        try
        {
            RefuseIfRemoteUnsupported();
        }
        catch (EphTerminatingException ex)
        {
            ThrowTerminatingError(ex.Record);
        }
    }

    /// <summary>
    /// Opens the registry of the module's data directory (Set-EphConfiguration, else $ETPHONEHOME_DATA_DIR, else
    /// ~/.etphonehome-server).
    /// </summary>
    internal RegistryStores OpenRegistry()
    {
        if (Remote is { } remote)
        {
            // Defence in depth: a connected session never reads or changes the local registry.
            throw new EphTerminatingException(NotAvailableRemotelyError(MyInvocation?.MyCommand?.Name ?? GetType().Name, remote));
        }

        try
        {
            return EphConfiguration.OpenRegistry(ModuleConfiguration.ResolveDataDirectory(Settings).Directory, Settings.Registry);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException
                                       or EtPhoneHome.Core.Registry.RegistryUnavailableException or ArgumentException)
        {
            // Without a registry nothing can work: a terminating error.
            throw new EphTerminatingException(NewError(Strings.RegistryUnavailableId, ErrorCategory.ResourceUnavailable, null,
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.RegistryUnavailable, ex.Message), ex));
        }
    }

    /// <summary>
    /// The targets of a cmdlet that contacts clients. Upstream that delivered nothing means nothing to do (an empty
    /// list); no target at all without -All is a terminating NoClient error, never the whole fleet; names are
    /// resolved by Core's one rule, so any unknown literal name refuses the whole operation (ClientNotFound, naming
    /// every unknown name) before anything runs.
    /// </summary>
    internal IReadOnlyList<FleetTarget> ResolveTargets(RegistryStores registry, IReadOnlyList<string> names, bool all)
    {
        if (!all && names.Count == 0)
        {
            return MyInvocation.ExpectingInput
                ? []
                : throw new EphTerminatingException(NewError(Strings.NoClientId, ErrorCategory.InvalidArgument, null, Strings.NoClient));
        }

        try
        {
            return FleetTargets.ResolveOrRefuse(registry, all ? new TargetSelection { All = true } : new TargetSelection { Clients = names });
        }
        catch (UnknownClientsException ex)
        {
            throw new EphTerminatingException(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, ex.Names.ToArray(),
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.ClientsNotFound,
                    string.Join(", ", ex.Names.Select(n => $"'{n}'"))), ex));
        }
    }

    /// <summary>
    /// The non-terminating error of a target that was not reached (Core's <see cref="CommandStatuses.IsUnreachable"/>),
    /// written beside its result object so -ErrorAction Stop stops a rollout and $? is false. IDs: ClientOffline,
    /// CommandTimedOut, ClientDenied, RateLimited, ClientUnreachable.
    /// </summary>
    internal static ErrorRecord UnreachableError(CommandStatus status, string uuid, string displayName, string? error)
    {
        var (id, category) = status switch
        {
            CommandStatus.Offline => (Strings.ClientOfflineId, ErrorCategory.ResourceUnavailable),
            CommandStatus.TimedOut => (Strings.CommandTimedOutId, ErrorCategory.OperationTimeout),
            CommandStatus.Denied => (Strings.ClientDeniedId, ErrorCategory.PermissionDenied),
            CommandStatus.RateLimited => (Strings.RateLimitedId, ErrorCategory.LimitsExceeded),
            _ => (Strings.ClientUnreachableId, ErrorCategory.ConnectionError),
        };
        return NewError(id, category, displayName, string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.TargetUnreachable,
            ClientText.Describe(displayName, uuid), status, error ?? status.ToString()));
    }

    internal static ErrorRecord NewError(string id, ErrorCategory category, object? target, string message, Exception? exception = null) =>
        new(exception ?? new InvalidOperationException(message), id, category, target)
        {
            ErrorDetails = new ErrorDetails(message),
        };
}

/// <summary>
/// A terminating error raised on a worker thread; the async base rethrows it on the pipeline thread through
/// ThrowTerminatingError, which PowerShell only accepts there.
/// </summary>
internal sealed class EphTerminatingException(ErrorRecord record) : Exception(record.ErrorDetails?.Message ?? record.Exception.Message)
{
    public ErrorRecord Record { get; } = record;
}
