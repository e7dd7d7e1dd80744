using EtPhoneHome.Core.Services;
using System.Diagnostics;
using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>Runs a command on many clients at once; one result per client, written as each finishes.</summary>
[Cmdlet(VerbsLifecycle.Invoke, "EphCommand", HelpUri = HelpLinks.Base + "Invoke-EphCommand.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ClientIdSet)]
[OutputType(typeof(EphCommandResult))]
public sealed class InvokeEphCommandCommand : EphAsyncCmdlet
{
    public const string ClientIdSet = "ClientId";
    public const string InputObjectSet = "InputObject";
    public const string AllSet = "All";

    /// <summary>Stable progress activity id, so nested progress from other modules does not collide.</summary>
    public const int ProgressActivityId = 0x4550;

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);
    private readonly List<string> _clientIds = [];
    private readonly List<EphClient> _clients = [];

    /// <summary>The command line, run by the client's shell.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Command { get; set; } = "";

    /// <summary>Client uuids (or display names).</summary>
    [Parameter(ParameterSetName = ClientIdSet, Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ParameterSetName = InputObjectSet, Mandatory = true, ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>Every registered client: the whole fleet is never a default, it is asked for.</summary>
    [Parameter(ParameterSetName = AllSet, Mandatory = true)]
    public SwitchParameter All { get; set; }

    /// <summary>Most clients running at once.</summary>
    [Parameter]
    [ValidateRange(FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit)]
    public int ThrottleLimit { get; set; } = FleetOptions.DefaultThrottleLimit;

    /// <summary>Per-client command timeout in seconds.</summary>
    [Parameter]
    [ValidateRange(CommandLimits.MinTimeoutSeconds, CommandLimits.MaxTimeoutSeconds)]
    public int TimeoutSec { get; set; } = CommandLimits.DefaultTimeoutSeconds;

    /// <summary>Stop launching after this many errors: a count (5) or a percentage (10%).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? MaxErrors { get; set; }

    /// <summary>Environment variables for the command: names to values.</summary>
    [Parameter]
    [ValidateNotNull]
    public System.Collections.Hashtable? Environment { get; set; }

    /// <summary>The shell that runs the command (default sh on Unix, cmd on Windows).</summary>
    [Parameter]
    public EphShell? Shell { get; set; }

    /// <summary>Text written to the command's standard input.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? InputText { get; set; }

    /// <summary>Absolute working directory on the client (checked against its allowed paths).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? WorkingDirectory { get; set; }

    protected override Task BeginProcessingAsync(CancellationToken ct)
    {
        // Checked before any client is contacted; parsed again where it is used (no Core value type may be a field
        // of a cmdlet: PowerShell reads the cmdlet types before the module's dependency resolver is registered).
        _ = ParseMaxErrors();
        _ = Request();
        return Task.CompletedTask;
    }

    /// <summary>The request, checked by Core's one rule for every surface; a broken limit stops the cmdlet before any client is contacted.</summary>
    private CommandRequest Request()
    {
        var request = new CommandRequest
        {
            Command = Command,
            TimeoutSeconds = TimeoutSec,
            Environment = Environment?.Cast<System.Collections.DictionaryEntry>().ToDictionary(
                e => Convert.ToString(e.Key, CultureInfo.InvariantCulture) ?? "",
                e => Convert.ToString(e.Value, CultureInfo.InvariantCulture) ?? "",
                StringComparer.Ordinal),
            Shell = Shell?.ToString(),
            Stdin = InputText,
            WorkingDirectory = WorkingDirectory,
        };
        try
        {
            _ = request.ToParams();
            return request;
        }
        catch (InvalidCommandRequestException ex)
        {
            throw new EphTerminatingException(NewError(Strings.InvalidCommandRequestId, ErrorCategory.InvalidArgument, ex.Field, ex.Message, ex));
        }
    }

    private ErrorLimit? ParseMaxErrors()
    {
        if (MaxErrors is { } text)
        {
            try
            {
                return ErrorLimit.Parse(text);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException)
            {
                throw new EphTerminatingException(NewError(Strings.InvalidMaxErrorsId, ErrorCategory.InvalidArgument, text,
                    string.Format(CultureInfo.CurrentCulture, Strings.InvalidMaxErrors, text, ex.Message), ex));
            }
        }

        return null;
    }

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        // Collect only: the fan-out runs once over everything in EndProcessing.
        if (InputObject is not null)
        {
            _clients.AddRange(InputObject);
        }

        if (ParameterSetName == ClientIdSet && ClientId is not null)
        {
            _clientIds.AddRange(ClientId);
        }

        return Task.CompletedTask;
    }

    private protected override bool SupportsRemote => true;

    private protected override string? RemoteInvalidArgumentId => Strings.InvalidCommandRequestId;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        var names = _clientIds.Concat(_clients.Select(c => c.Uuid)).ToList();
        var remote = Remote is null ? null : await RemoteOperatorAsync(ct).ConfigureAwait(false);
        IReadOnlyList<FleetTarget> candidates;
        if (remote is not null)
        {
            candidates = await ResolveRemoteTargetsAsync(remote, names, ParameterSetName == AllSet, ct).ConfigureAwait(false);
        }
        else
        {
            using var registry = OpenRegistry();
            candidates = ResolveTargets(registry, names, ParameterSetName == AllSet);
        }

        var action = string.Format(CultureInfo.CurrentCulture, Strings.RunCommandAction, Command);
        var targets = new List<FleetTarget>(candidates.Count);
        foreach (var target in candidates)
        {
            if (await ShouldProcessAsync(target.Describe(), action).ConfigureAwait(false))
            {
                targets.Add(target);
            }
        }

        if (targets.Count == 0)
        {
            return;
        }

        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseTargets, targets.Count, ThrottleLimit, TimeoutSec));
        var request = Request();
        var options = new FleetOptions { ThrottleLimit = ThrottleLimit, MaxErrors = ParseMaxErrors() };
        var summary = new FleetSummary();
        var sinceProgress = Stopwatch.StartNew();
        await foreach (var result in RunAsync(remote, targets, request, options, ct).ConfigureAwait(false))
        {
            summary.Add(result);
            WriteObject(new EphCommandResult(result));
            if (CommandStatuses.IsUnreachable(result.Status))
            {
                WriteError(UnreachableError(result.Status, result.Uuid, result.DisplayName, result.Error));
            }
            if (sinceProgress.Elapsed >= ProgressInterval || summary.Total == targets.Count)
            {
                sinceProgress.Restart();
                WriteProgress(Progress(summary, targets.Count, completed: false));
            }
        }

        WriteProgress(Progress(summary, targets.Count, completed: true));
        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseSummary, summary));
    }

    /// <summary>The fan-out: through the server's operator service when connected, else Core's over the local registry.</summary>
    private async IAsyncEnumerable<FleetCommandResult> RunAsync(EtPhoneHome.Core.Remote.RemoteOperator? remote, IReadOnlyList<FleetTarget> targets,
        CommandRequest request, FleetOptions options, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken ct)
    {
        if (remote is not null)
        {
            var args = new EtPhoneHome.Core.Remote.RunCommandsArgs
            {
                Targets = new TargetSelection { Clients = [.. targets.Select(t => t.Uuid)] },
                Request = request,
                ThrottleLimit = ThrottleLimit,
                MaxErrors = MaxErrors,
            };
            await foreach (var result in remote.RunCommandsAsync(args, null, ct).ConfigureAwait(false))
            {
                yield return result;
            }

            yield break;
        }

        using var history = OpenRegistry();
        await foreach (var result in NewServices(history).RunCommandsAsync(targets, request, options, ct).ConfigureAwait(false))
        {
            yield return result;
        }
    }

    private static ProgressRecord Progress(FleetSummary summary, int total, bool completed) =>
        new(ProgressActivityId, Strings.ProgressActivity,
            string.Format(CultureInfo.CurrentCulture, Strings.ProgressStatus, summary.Total, total, summary.NotSucceeded))
        {
            PercentComplete = total == 0 ? 100 : summary.Total * 100 / total,
            RecordType = completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
        };
}

