using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Services;

/// <summary>
/// What an operator front end works with, put together in one place: the registry, who acts through which surface,
/// the guard that records and rate-limits every operation, and the clients of the tunnels and the exchange built on
/// that guard. A front end builds one per invocation (a verb run, a cmdlet's pipeline) and disposes it; tests build one
/// with their own parts instead of replacing process-wide statics.
/// </summary>
public sealed class OperatorServices : IDisposable
{
    private readonly bool _ownsRegistry;

    /// <param name="registry">The registry's stores; disposed with the services when <paramref name="ownsRegistry"/>.</param>
    /// <param name="context">Who acts, through which surface (recorded in the history).</param>
    /// <param name="log">Where rate-limit warnings and other log entries go (the front end's native channel); dropped when null.</param>
    /// <param name="ownsRegistry">Whether disposing the services disposes the registry.</param>
    public OperatorServices(RegistryStores registry, OperatorContext context, IEphLog? log = null, bool ownsRegistry = true)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        Registry = registry;
        Context = context;
        _ownsRegistry = ownsRegistry;
        Log = log ?? NullLog.Instance;
        var sink = Log;
        _guard = new Lazy<OperationGuard>(() => new OperationGuard(registry.RateLimits, context) { Log = sink });

    }

    /// <summary>Every store of the registry, for the few consumers that read several (fleet targets, the fleet status).</summary>
    public RegistryStores Registry { get; }

    public IKeyStore Keys => Registry.Keys;

    public IClientStore Clients => Registry.Clients;

    public ISessionStore Sessions => Registry.Sessions;

    public IHistoryStore History => Registry.History;

    public ISettingsStore Settings => Registry.Settings;

    public IHealthStore Health => Registry.Health;

    public IWebhookOutbox Webhooks => Registry.Webhooks;

    public IRateLimitLedger RateLimits => Registry.RateLimits;

    public OperatorContext Context { get; }

    /// <summary>The front end's log (its native channel), shared by everything built here.</summary>
    public IEphLog Log { get; }

    /// <summary>Records, limits and checks every operation of this front end.</summary>
    public OperationGuard Guard => _guard.Value;

    private readonly Lazy<OperationGuard> _guard;

    /// <summary>Builds the command transport; the tunnels by default.</summary>
    public Func<OperationGuard, ICommandTransport> CommandTransport { get; init; } = TunnelCommands;

    /// <summary>The default command transport: the tunnels, every command recorded through <paramref name="guard"/>.</summary>
    public static ICommandTransport TunnelCommands(OperationGuard guard) => new TunnelCommandTransport { Guard = guard };

    /// <summary>Builds the file operations (read, write, list); the tunnels by default.</summary>
    public Func<OperationGuard, RemoteFileOperations> FileOperations { get; init; } = guard => new RemoteFileOperations { Guard = guard };

    /// <summary>Builds the streaming transfers (upload, download); the tunnels by default.</summary>
    public Func<OperationGuard, Action<int, Exception>?, FileTransferClient> FileTransfers { get; init; } =
        (guard, onRetry) => new FileTransferClient { Guard = guard, OnRetry = onRetry };

    /// <summary>Builds the metrics source; the tunnels by default.</summary>
    public Func<OperationGuard, IMetricsSource> MetricsSource { get; init; } = guard => new MetricsClient { Guard = guard };

    /// <summary>Builds the exchange client; the bucket of the <c>ETPHONEHOME_R2_*</c> environment by default.</summary>
    public Func<OperationGuard, ExchangeClient> ExchangeConnector { get; init; } = guard => ExchangeClient.FromEnvironment(guard);

    public ICommandTransport Commands() => CommandTransport(Guard);

    /// <summary>
    /// Where targets held by other hubs go when several hubs share the registry (the hub's operator service sets it);
    /// null contacts every target from here (one hub, or a front end on the server host).
    /// </summary>
    public HubRouting? Routing { get; init; }

    private IAsyncEnumerable<T> Routed<T>(IReadOnlyList<FleetTarget> targets, Func<IReadOnlyList<FleetTarget>, IAsyncEnumerable<T>> local,
        Func<IFleetRelay, string, IReadOnlyList<FleetTarget>, IAsyncEnumerable<T>> remote, Func<FleetTarget, string, T> notRelayed, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return Routing is { } routing
            ? routing.RunAsync(targets, local, (hub, list) => remote(routing.Relay!, hub, list), (target, hub) => notRelayed(target, routing.NotRelayed(target, hub)), ct)
            : local(targets);
    }

    private static FleetFileOutcome<T> NotRelayedFile<T>(FleetTarget target, string why)
        where T : class => new(target, CommandStatus.Error, null, why, 0, FailureKind.Unreachable);

    /// <summary>
    /// The targets an operator named: every literal name must match a client, or the whole operation is refused
    /// (<see cref="UnknownClientsException"/>) — a typo must not run on fewer machines than intended.
    /// </summary>
    public IReadOnlyList<FleetTarget> Targets(TargetSelection selection) => FleetTargets.ResolveOrRefuse(Registry, selection);

    /// <summary>
    /// Runs one command on many targets (the rules of <see cref="FleetExecutor"/>): one result per target, streamed as
    /// each finishes, recorded in the history with this front end's operator and surface.
    /// </summary>
    /// <exception cref="InvalidCommandRequestException">The request breaks a limit; no target was contacted.</exception>
    public IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(IReadOnlyList<FleetTarget> targets, CommandRequest request, FleetOptions? options = null, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var parameters = request.ToParams();
        options ??= new FleetOptions();
        return Routed(targets, mine => new FleetExecutor(Commands()).RunAsync(mine, parameters, options, ct),
            (relay, hub, theirs) => relay.RunCommandsAsync(hub, theirs, request, options, Context, ct),
            (target, why) => FleetCommandResult.Unstarted(target, CommandStatus.Error, why) with { Failure = FailureKind.Unreachable }, ct);
    }

    /// <summary>Runs one command on one online target and returns the agent's answer; faults are thrown (<see cref="FleetCommandResult.FromException"/> classifies them).</summary>
    /// <exception cref="InvalidCommandRequestException">The request breaks a limit; the target was not contacted.</exception>
    public Task<RunCommandResult> RunCommandAsync(FleetTarget target, CommandRequest request, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var parameters = request.ToParams();
        return Commands().RunAsync(target, parameters, ct);
    }

    public RemoteFileOperations Files() => FileOperations(Guard);

    /// <param name="onRetry">Told of each retried attempt (its number and the fault), e.g. for a verbose line.</param>
    public FileTransferClient Transfers(Action<int, Exception>? onRetry = null) => FileTransfers(Guard, onRetry);

    /// <summary>Reads a file on many targets (the rules of <see cref="FleetFileRunner"/>): one outcome per target, as each finishes.</summary>
    public IAsyncEnumerable<FleetFileOutcome<ReadFileResult>> ReadFilesAsync(IReadOnlyList<FleetTarget> targets, ReadFileParams request,
        int throttleLimit = FleetOptions.DefaultThrottleLimit, CancellationToken ct = default)
    {
        var files = Files();
        return Routed(targets, mine => FleetFileRunner.RunAsync(mine, (target, c) => files.ReadAsync(target, request, c), throttleLimit, ct),
            (relay, hub, theirs) => relay.FilesAsync<ReadFileResult>(hub, OperatorOperations.ReadFiles, theirs, new FileOperationArgs { Targets = HubRouting.Selection(theirs), Read = request, ThrottleLimit = throttleLimit }, Context, ct),
            NotRelayedFile<ReadFileResult>, ct);
    }

    /// <summary>Writes a file on many targets (atomically on each); one outcome per target.</summary>
    public IAsyncEnumerable<FleetFileOutcome<WriteFileResult>> WriteFilesAsync(IReadOnlyList<FleetTarget> targets, WriteFileParams request,
        int throttleLimit = FleetOptions.DefaultThrottleLimit, CancellationToken ct = default)
    {
        var files = Files();
        return Routed(targets, mine => FleetFileRunner.RunAsync(mine, (target, c) => files.WriteAsync(target, request, c), throttleLimit, ct),
            (relay, hub, theirs) => relay.FilesAsync<WriteFileResult>(hub, OperatorOperations.WriteFiles, theirs, new FileOperationArgs { Targets = HubRouting.Selection(theirs), Write = request, ThrottleLimit = throttleLimit }, Context, ct),
            NotRelayedFile<WriteFileResult>, ct);
    }

    /// <summary>Lists a directory on many targets; one outcome per target.</summary>
    public IAsyncEnumerable<FleetFileOutcome<ListFilesResult>> ListFilesAsync(IReadOnlyList<FleetTarget> targets, ListFilesParams request,
        int throttleLimit = FleetOptions.DefaultThrottleLimit, CancellationToken ct = default)
    {
        var files = Files();
        return Routed(targets, mine => FleetFileRunner.RunAsync(mine, (target, c) => files.ListAsync(target, request, c), throttleLimit, ct),
            (relay, hub, theirs) => relay.FilesAsync<ListFilesResult>(hub, OperatorOperations.ListFiles, theirs, new FileOperationArgs { Targets = HubRouting.Selection(theirs), List = request, ThrottleLimit = throttleLimit }, Context, ct),
            NotRelayedFile<ListFilesResult>, ct);
    }

    /// <summary>
    /// Streams one local file to many targets (SHA-256 verified, resumed after a drop); one outcome per target. The
    /// optional <c>progress</c> gives each target a counter of bytes moved; <c>onRetry</c> is told of each retried attempt.
    /// </summary>
    public IAsyncEnumerable<FleetFileOutcome<FileTransferResult>> UploadAsync(IReadOnlyList<FleetTarget> targets, string localPath, string remotePath,
        int throttleLimit = FleetOptions.DefaultThrottleLimit, Func<FleetTarget, IProgress<long>?>? progress = null, Action<int, Exception>? onRetry = null,
        CancellationToken ct = default)
    {
        var transfers = Transfers(onRetry);
        return FleetFileRunner.RunAsync(targets, (target, c) => transfers.UploadAsync(target, localPath, remotePath, progress?.Invoke(target), c), throttleLimit, ct);
    }

    /// <summary>
    /// Streams one remote file from many targets: into <paramref name="destination"/> for one target, else into one
    /// folder per client under it (<see cref="DownloadLocations"/>); one outcome per target.
    /// </summary>
    public IAsyncEnumerable<FleetFileOutcome<FileTransferResult>> DownloadAsync(IReadOnlyList<FleetTarget> targets, string remotePath, string destination,
        int throttleLimit = FleetOptions.DefaultThrottleLimit, Func<FleetTarget, IProgress<long>?>? progress = null, Action<int, Exception>? onRetry = null,
        CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var transfers = Transfers(onRetry);
        return FleetFileRunner.RunAsync(targets, (target, c) =>
            transfers.DownloadAsync(target, remotePath, DownloadLocations.For(destination, target, targets.Count), progress?.Invoke(target), c), throttleLimit, ct);
    }

    public IMetricsSource Metrics() => MetricsSource(Guard);

    public ExchangeClient Exchange() => ExchangeConnector(Guard);

    /// <summary>Asks many targets for their metrics (the rules of <see cref="FleetMetrics"/>): one result per target, none dropped.</summary>
    public IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(IReadOnlyList<FleetTarget> targets, bool summary, FleetMetricsOptions? options = null, CancellationToken ct = default)
    {
        options ??= new FleetMetricsOptions();
        return Routed(targets, mine => new FleetMetrics(Metrics()).CollectAsync(mine, summary, options, ct),
            (relay, hub, theirs) => relay.CollectMetricsAsync(hub, theirs, summary, options, Context, ct),
            (target, why) => new ClientMetricsResult { Uuid = target.Uuid, DisplayName = target.DisplayName, Status = MetricsStatus.Unreachable, Error = why }, ct);
    }

    /// <summary>The fleet's health at a glance: the registry read, every online client asked for summary metrics, aggregated.</summary>
    public Task<FleetStatus> FleetStatusAsync(FleetThresholds? thresholds = null, FleetMetricsOptions? options = null, CancellationToken ct = default) =>
        FleetStatus.ComputeAsync(Registry, (targets, c) => CollectMetricsAsync(targets, summary: true, options, c), thresholds, ct: ct);

    public void Dispose()
    {
        if (_ownsRegistry)
        {
            Registry.Dispose();
        }
    }
}
