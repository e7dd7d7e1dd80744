using EtPhoneHome.Core.Services;
using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Copies a file to (-ToClient) or from (-FromClient) one or many clients: raw bytes through the tunnel, SHA-256
/// verified end to end, resumed after a dropped connection, one EphFileTransfer per client.
/// </summary>
[Cmdlet(VerbsCommon.Copy, "EphFile", HelpUri = HelpLinks.Base + "Copy-EphFile.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = ToClientSet)]
[OutputType(typeof(EphFileTransfer))]
public sealed class CopyEphFileCommand : EphFleetCmdlet
{
    public const string ToClientSet = "ToClient";
    public const string FromClientSet = "FromClient";
    public const string ToClientAllSet = "ToClientAll";
    public const string FromClientAllSet = "FromClientAll";

    /// <summary>Stable progress activity id.</summary>
    public const int ProgressActivityId = 0x4551;

    private static readonly TimeSpan ProgressInterval = TimeSpan.FromMilliseconds(250);

    /// <summary>Send a local file to the clients.</summary>
    [Parameter(ParameterSetName = ToClientSet, Mandatory = true)]
    [Parameter(ParameterSetName = ToClientAllSet, Mandatory = true)]
    public SwitchParameter ToClient { get; set; }

    /// <summary>Fetch a file from the clients.</summary>
    [Parameter(ParameterSetName = FromClientSet, Mandatory = true)]
    [Parameter(ParameterSetName = FromClientAllSet, Mandatory = true)]
    public SwitchParameter FromClient { get; set; }

    /// <summary>Client uuids or display names.</summary>
    [Parameter(ParameterSetName = ToClientSet, ValueFromPipelineByPropertyName = true)]
    [Parameter(ParameterSetName = FromClientSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ParameterSetName = ToClientSet, ValueFromPipeline = true)]
    [Parameter(ParameterSetName = FromClientSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>Every registered client: the whole fleet is never a default, it is asked for.</summary>
    [Parameter(ParameterSetName = ToClientAllSet, Mandatory = true)]
    [Parameter(ParameterSetName = FromClientAllSet, Mandatory = true)]
    public SwitchParameter All { get; set; }

    private protected override string[]? TargetIds => ClientId;

    private protected override EphClient[]? TargetClients => InputObject;

    private protected override bool TargetAll => All.IsPresent;

    /// <summary>The source: a local file (-ToClient) or an absolute path on the client (-FromClient).</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>
    /// The destination: a path on the client (-ToClient; a trailing '/' means "into this directory") or a local file or
    /// directory (-FromClient; with several clients, a directory receiving one sub-directory per client).
    /// </summary>
    [Parameter(Mandatory = true, Position = 1)]
    [ValidateNotNullOrEmpty]
    public string Destination { get; set; } = "";

    private protected override bool SupportsRemote => true;

    private protected override Task RunAsync(IReadOnlyList<FleetTarget> targets, OperatorServices services, CancellationToken ct) =>
        CopyAsync(targets, (approved, local, counter, onRetry) => ParameterSetName is ToClientSet or ToClientAllSet
            ? services.UploadAsync(approved, local, Destination, ThrottleLimit, counter, onRetry, ct)
            : services.DownloadAsync(approved, Path, local, ThrottleLimit, counter, onRetry, ct), ct);

    /// <summary>
    /// Through the server: one transfer per target (the operator service moves one client's file per call), at most
    /// -ThrottleLimit at a time, each SHA-256 checked and resumable like the local ones.
    /// </summary>
    private protected override Task RunRemoteAsync(IReadOnlyList<FleetTarget> targets, EtPhoneHome.Core.Remote.RemoteOperator remote, CancellationToken ct) =>
        CopyAsync(targets, (approved, local, counter, onRetry) => RemoteTransfers.RunAsync(approved, ThrottleLimit, (target, c) =>
            ParameterSetName is ToClientSet or ToClientAllSet
                ? remote.UploadAsync(target.Uuid, local, Destination, counter(target), c)
                : remote.DownloadAsync(target.Uuid, Path, LocalFor(local, target, approved.Count), counter(target), c), ct), ct);

    private async Task CopyAsync(IReadOnlyList<FleetTarget> targets,
        Func<IReadOnlyList<FleetTarget>, string, Func<FleetTarget, IProgress<long>>, Action<int, Exception>, IAsyncEnumerable<FleetFileOutcome<FileTransferResult>>> run,
        CancellationToken ct)
    {
        var toClient = ParameterSetName is ToClientSet or ToClientAllSet;
        var local = await OnPipelineThreadAsync(() => SessionState.Path.GetUnresolvedProviderPathFromPSPath(toClient ? Path : Destination)).ConfigureAwait(false);
        long size = 0;
        if (toClient)
        {
            if (!File.Exists(local))
            {
                throw new EphTerminatingException(NewError(Strings.LocalFileNotFoundId, ErrorCategory.ObjectNotFound, Path,
                    string.Format(CultureInfo.CurrentCulture, Strings.LocalFileNotFound, local)));
            }

            size = new FileInfo(local).Length;
        }

        var approved = new List<FleetTarget>(targets.Count);
        foreach (var target in targets)
        {
            var action = toClient
                ? string.Format(CultureInfo.CurrentCulture, Strings.UploadAction, local, size, Destination)
                : $"Copy '{Path}' to '{LocalFor(local, target, targets.Count)}'";
            if (await ShouldProcessAsync(target.Describe(), action).ConfigureAwait(false))
            {
                approved.Add(target);
            }
        }

        if (approved.Count == 0)
        {
            return;
        }

        Action<int, Exception> onRetry = (attempt, ex) =>
            WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseRetry, attempt, ex.Message));
        var moved = new long[approved.Count];
        var index = approved.Select((t, i) => (t.Uuid, i)).ToDictionary(x => x.Uuid, x => x.i, StringComparer.OrdinalIgnoreCase);
        var summary = new FleetSummary();
        var done = 0;
        var direction = toClient ? EphTransferDirection.ToClient : EphTransferDirection.FromClient;
        var remoteShown = toClient ? Destination : Path;

        using var ticker = new CancellationTokenSource();
        var progressLoop = Task.Run(async () =>
        {
            try
            {
                while (!ticker.IsCancellationRequested)
                {
                    await Task.Delay(ProgressInterval, ticker.Token).ConfigureAwait(false);
                    WriteProgress(Progress(Volatile.Read(ref done), approved.Count, moved.Sum(), toClient ? size * approved.Count : 0, completed: false));
                }
            }
            catch (OperationCanceledException)
            {
            }
        }, CancellationToken.None);

        try
        {
            IProgress<long> Counter(FleetTarget target)
            {
                var slot = index[target.Uuid];
                return new ByteCounter(bytes => Volatile.Write(ref moved[slot], bytes));
            }

            var outcomes = run(approved, local, Counter, onRetry);
            await foreach (var outcome in outcomes.ConfigureAwait(false))
            {
                Interlocked.Increment(ref done);
                var result = new EphFileTransfer(outcome, direction, toClient ? local : LocalFor(local, outcome.Target, approved.Count), remoteShown);
                summary.Add(new FleetCommandResult { Uuid = outcome.Target.Uuid, DisplayName = outcome.Target.DisplayName, Status = outcome.Status });
                WriteObject(result);
                if (outcome.Status != CommandStatus.Succeeded)
                {
                    WriteError(OutcomeError(outcome, remoteShown));
                }
            }
        }
        finally
        {
            await ticker.CancelAsync().ConfigureAwait(false);
            await progressLoop.ConfigureAwait(false);
        }

        WriteProgress(Progress(done, approved.Count, moved.Sum(), toClient ? size * approved.Count : 0, completed: true));
        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseTransferSummary, summary));
    }

    /// <summary>One client: the destination as given. Several: one sub-directory per client, so files never collide.</summary>
    private static string LocalFor(string local, FleetTarget target, int count) => DownloadLocations.For(local, target, count);

    private static ProgressRecord Progress(int done, int total, long bytes, long totalBytes, bool completed) =>
        new(ProgressActivityId, Strings.TransferProgressActivity,
            string.Format(CultureInfo.CurrentCulture, Strings.TransferProgressStatus, done, total, bytes, totalBytes))
        {
            PercentComplete = completed ? 100 : totalBytes > 0 ? (int)Math.Min(100, bytes * 100 / totalBytes) : done * 100 / Math.Max(1, total),
            RecordType = completed ? ProgressRecordType.Completed : ProgressRecordType.Processing,
        };

    /// <summary>Bytes-so-far of one transfer, written straight into the shared counters (no thread hop).</summary>
    private sealed class ByteCounter(Action<long> report) : IProgress<long>
    {
        public void Report(long value) => report(value);
    }
}
