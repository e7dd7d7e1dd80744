using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

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
    /// <param name="warning">Where rate-limit and similar warnings go (the front end's native channel).</param>
    /// <param name="ownsRegistry">Whether disposing the services disposes the registry.</param>
    public OperatorServices(RegistryStores registry, OperatorContext context, Action<string>? warning = null, bool ownsRegistry = true)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        Registry = registry;
        Context = context;
        _ownsRegistry = ownsRegistry;
        var sink = warning ?? (_ => { });
        _guard = new Lazy<OperationGuard>(() => new OperationGuard(registry.RateLimits, context) { Warning = sink });
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

    /// <summary>Records, limits and checks every operation of this front end.</summary>
    public OperationGuard Guard => _guard.Value;

    private readonly Lazy<OperationGuard> _guard;

    /// <summary>Builds the command transport; the tunnels by default.</summary>
    public Func<OperationGuard, ICommandTransport> CommandTransport { get; init; } = guard => new TunnelCommandTransport { Guard = guard };

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

    public RemoteFileOperations Files() => FileOperations(Guard);

    /// <param name="onRetry">Told of each retried attempt (its number and the fault), e.g. for a verbose line.</param>
    public FileTransferClient Transfers(Action<int, Exception>? onRetry = null) => FileTransfers(Guard, onRetry);

    public IMetricsSource Metrics() => MetricsSource(Guard);

    public ExchangeClient Exchange() => ExchangeConnector(Guard);

    public void Dispose()
    {
        if (_ownsRegistry)
        {
            Registry.Dispose();
        }
    }
}
