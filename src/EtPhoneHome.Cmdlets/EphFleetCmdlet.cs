using EtPhoneHome.Core.Services;
using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>
/// Base of the file cmdlets: targets come from the pipeline (Get-EphClient objects, or anything with a ClientId/Uuid/Id
/// property), -ClientId, or -All (a parameter set of its own), are collected in ProcessRecord and fanned out once in
/// EndProcessing. Each cmdlet declares the target parameters, because their sets combine with its own.
/// </summary>
public abstract class EphFleetCmdlet : EphAsyncCmdlet
{
    private readonly List<string> _ids = [];

    /// <summary>-ClientId as bound.</summary>
    private protected abstract string[]? TargetIds { get; }

    /// <summary>-InputObject as bound.</summary>
    private protected abstract EphClient[]? TargetClients { get; }

    /// <summary>-All.</summary>
    private protected abstract bool TargetAll { get; }

    /// <summary>Most clients contacted at once.</summary>
    [Parameter]
    [ValidateRange(FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit)]
    public int ThrottleLimit { get; set; } = FleetOptions.DefaultThrottleLimit;

    protected sealed override Task ProcessRecordAsync(CancellationToken ct)
    {
        _ids.AddRange(TargetClients?.Select(c => c.Uuid) ?? []);
        _ids.AddRange(TargetIds ?? []);
        return Task.CompletedTask;
    }

    protected sealed override async Task EndProcessingAsync(CancellationToken ct)
    {
        if (Remote is not null)
        {
            // Connected: the same targets resolved by the server, the work through its operator service.
            var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
            var remoteTargets = await ResolveRemoteTargetsAsync(op, _ids, TargetAll, ct).ConfigureAwait(false);
            if (remoteTargets.Count > 0)
            {
                await RunRemoteAsync(remoteTargets, op, ct).ConfigureAwait(false);
            }

            return;
        }

        using var registry = OpenRegistry();
        var targets = ResolveTargets(registry, _ids, TargetAll);
        if (targets.Count > 0)
        {
            await RunAsync(targets, NewServices(registry), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Does the work over every resolved target (offline and denied ones included: they get their error).</summary>
    private protected abstract Task RunAsync(IReadOnlyList<FleetTarget> targets, OperatorServices services, CancellationToken ct);

    /// <summary>
    /// The work through the server (cmdlets that declare <see cref="EphCmdlet.SupportsRemote"/>); the others never get
    /// here, they are refused before any work.
    /// </summary>
    private protected virtual Task RunRemoteAsync(IReadOnlyList<FleetTarget> targets, EtPhoneHome.Core.Remote.RemoteOperator remote, CancellationToken ct) =>
        throw new EphTerminatingException(NotAvailableRemotelyError(MyInvocation.MyCommand.Name, Remote!));

    /// <summary>The resolved targets as the server's selection: by uuid, so the server runs on exactly these.</summary>
    private protected static TargetSelection Selection(IReadOnlyList<FleetTarget> targets) => new() { Clients = [.. targets.Select(t => t.Uuid)] };

    /// <summary>A non-terminating error for a target that did not succeed, with an ID by cause.</summary>
    private protected ErrorRecord OutcomeError<T>(FleetFileOutcome<T> outcome, string path)
        where T : class
    {
        var (id, category) = outcome.Failure switch
        {
            FailureKind.Offline => (Strings.ClientOfflineId, ErrorCategory.ResourceUnavailable),
            FailureKind.Denied => (Strings.PathDeniedId, ErrorCategory.PermissionDenied),
            FailureKind.TimedOut => (Strings.FileOperationFailedId, ErrorCategory.OperationTimeout),
            FailureKind.NotFound => (Strings.FileNotFoundId, ErrorCategory.ObjectNotFound),
            FailureKind.TooLarge => (Strings.FileTooLargeId, ErrorCategory.LimitsExceeded),
            FailureKind.ChecksumMismatch => (Strings.ChecksumMismatchId, ErrorCategory.InvalidResult),
            FailureKind.RateLimited => (Strings.FileOperationFailedId, ErrorCategory.QuotaExceeded),
            FailureKind.Unreachable => (Strings.FileOperationFailedId, ErrorCategory.ConnectionError),
            FailureKind.Invalid => (Strings.FileOperationFailedId, ErrorCategory.InvalidArgument),
            _ => (Strings.FileOperationFailedId, ErrorCategory.NotSpecified),
        };
        return NewError(id, category, $"{outcome.Target.DisplayName}:{path}",
            string.Format(CultureInfo.CurrentCulture, Strings.FileOperationFailed, outcome.Target.Describe(), outcome.Error));
    }
}

/// <summary>
/// A file cmdlet with no parameter sets of its own: the clients (-ClientId, piped clients) are one set, -All the other.
/// </summary>
public abstract class EphFleetTargetCmdlet : EphFleetCmdlet
{
    public const string ClientIdSet = "ClientId";
    public const string AllSet = "All";

    /// <summary>Client uuids or display names.</summary>
    [Parameter(ParameterSetName = ClientIdSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ParameterSetName = ClientIdSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>Every registered client: the whole fleet is never a default, it is asked for.</summary>
    [Parameter(ParameterSetName = AllSet, Mandatory = true)]
    public SwitchParameter All { get; set; }

    private protected sealed override string[]? TargetIds => ClientId;

    private protected sealed override EphClient[]? TargetClients => InputObject;

    private protected sealed override bool TargetAll => All.IsPresent;
}

