using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>
/// Base of the file cmdlets: targets come from the pipeline (Get-EphClient objects, or anything with a ClientId/Uuid/Id
/// property) or -ClientId, are collected in ProcessRecord and fanned out once in EndProcessing.
/// </summary>
public abstract class EphFleetCmdlet : EphAsyncCmdlet
{
    private readonly List<string> _ids = [];

    /// <summary>Client uuids or display names.</summary>
    [Parameter(ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>
    /// Every registered client. The whole fleet is never a default; -All cannot be combined with -ClientId or piped
    /// clients (a switch rather than a parameter set of its own: these cmdlets' sets already say what is done).
    /// </summary>
    [Parameter]
    public SwitchParameter All { get; set; }

    /// <summary>Most clients contacted at once.</summary>
    [Parameter]
    [ValidateRange(1, 1024)]
    public int ThrottleLimit { get; set; } = FleetOptions.DefaultThrottleLimit;

    protected sealed override Task ProcessRecordAsync(CancellationToken ct)
    {
        _ids.AddRange(InputObject?.Select(c => c.Uuid) ?? []);
        _ids.AddRange(ClientId ?? []);
        return Task.CompletedTask;
    }

    protected sealed override async Task EndProcessingAsync(CancellationToken ct)
    {
        if (All.IsPresent && (_ids.Count > 0 || MyInvocation.ExpectingInput))
        {
            throw new EphTerminatingException(NewError(Strings.AllWithClientsId, ErrorCategory.InvalidArgument, null, Strings.AllWithClients));
        }

        using var registry = OpenRegistry();
        var targets = ResolveTargets(registry, _ids, All.IsPresent);
        if (targets.Count > 0)
        {
            await RunAsync(targets, NewGuard(registry), ct).ConfigureAwait(false);
        }
    }

    /// <summary>Does the work over every resolved target (offline and denied ones included: they get their error).</summary>
    private protected abstract Task RunAsync(IReadOnlyList<FleetTarget> targets, OperationGuard guard, CancellationToken ct);

    /// <summary>A non-terminating error for a target that did not succeed, with an ID by cause.</summary>
    private protected ErrorRecord OutcomeError<T>(FleetFileOutcome<T> outcome, string path)
        where T : class
    {
        var (id, category) = outcome.Status switch
        {
            CommandStatus.Offline => (Strings.ClientOfflineId, ErrorCategory.ResourceUnavailable),
            CommandStatus.Denied => (Strings.PathDeniedId, ErrorCategory.PermissionDenied),
            CommandStatus.TimedOut => (Strings.FileOperationFailedId, ErrorCategory.OperationTimeout),
            _ when outcome.Error?.StartsWith(RpcErrorCodes.Name(RpcErrorCodes.NotFound), StringComparison.Ordinal) == true => (Strings.FileNotFoundId, ErrorCategory.ObjectNotFound),
            _ when outcome.Error?.StartsWith(RpcErrorCodes.Name(RpcErrorCodes.TooLarge), StringComparison.Ordinal) == true => (Strings.FileTooLargeId, ErrorCategory.LimitsExceeded),
            _ when outcome.Error?.StartsWith(RpcErrorCodes.Name(FileLimits.ChecksumMismatch), StringComparison.Ordinal) == true => (Strings.ChecksumMismatchId, ErrorCategory.InvalidResult),
            _ => (Strings.FileOperationFailedId, ErrorCategory.NotSpecified),
        };
        return NewError(id, category, $"{outcome.Target.DisplayName}:{path}",
            string.Format(CultureInfo.CurrentCulture, Strings.FileOperationFailed, outcome.Target.Describe(), outcome.Error));
    }
}

/// <summary>The file operations the cmdlets use; a seam for tests.</summary>
internal static class FileOperationsFactory
{
    public static Func<OperationGuard, RemoteFileOperations> Create { get; set; } = guard => new RemoteFileOperations { Guard = guard };

    public static Func<OperationGuard, Action<int, Exception>?, FileTransferClient> CreateTransfers { get; set; } =
        (guard, onRetry) => new FileTransferClient { Guard = guard, OnRetry = onRetry };
}
