namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The registry's stores by concern, handed around as one value by the operator front ends' composition root
/// (<c>OperatorServices</c>): each consumer then takes only the store it uses. <see cref="Of(SqliteRegistry)"/> gives every
/// store of one SQLite registry; tests give just the stores the code under test reads, and asking for one that was not
/// given is a fault of the composition, reported as such.
/// </summary>
public sealed class RegistryStores : IDisposable
{
    private readonly IKeyStore? _keys;
    private readonly IClientStore? _clients;
    private readonly ISessionStore? _sessions;
    private readonly IHistoryStore? _history;
    private readonly ISettingsStore? _settings;
    private readonly IHealthStore? _health;
    private readonly IWebhookOutbox? _webhooks;
    private readonly IRateLimitLedger? _rateLimits;
    private readonly IOperatorStore? _operators;

    /// <summary>The stores of one SQLite registry; disposing them closes it.</summary>
    public static RegistryStores Of(SqliteRegistry registry) => Stores(registry, owned: true);

    /// <summary>
    /// The stores of a registry someone else owns and keeps open (the hub's, lent to its operator connections): disposing
    /// them leaves it open. Its in-memory client index stays warm across the borrowers.
    /// </summary>
    public static RegistryStores Borrow(SqliteRegistry registry) => Stores(registry, owned: false);

    private static RegistryStores Stores(SqliteRegistry registry, bool owned)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return new()
        {
            Keys = registry,
            Clients = registry,
            Sessions = registry,
            History = registry,
            Settings = registry,
            Health = registry,
            Webhooks = registry,
            RateLimits = registry,
            Operators = registry,
            DataDirectory = registry.DataDirectory,
            Owner = owned ? registry : null,
        };
    }

    public IKeyStore Keys { get => _keys ?? throw Missing(nameof(Keys)); init => _keys = value; }

    public IClientStore Clients { get => _clients ?? throw Missing(nameof(Clients)); init => _clients = value; }

    public ISessionStore Sessions { get => _sessions ?? throw Missing(nameof(Sessions)); init => _sessions = value; }

    public IHistoryStore History { get => _history ?? throw Missing(nameof(History)); init => _history = value; }

    public ISettingsStore Settings { get => _settings ?? throw Missing(nameof(Settings)); init => _settings = value; }

    public IHealthStore Health { get => _health ?? throw Missing(nameof(Health)); init => _health = value; }

    public IWebhookOutbox Webhooks { get => _webhooks ?? throw Missing(nameof(Webhooks)); init => _webhooks = value; }

    public IRateLimitLedger RateLimits { get => _rateLimits ?? throw Missing(nameof(RateLimits)); init => _rateLimits = value; }

    public IOperatorStore Operators { get => _operators ?? throw Missing(nameof(Operators)); init => _operators = value; }

    /// <summary>Directory holding the registry and the hub's socket.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>What disposing the stores disposes (the registry connection's owner), if anything.</summary>
    public IDisposable? Owner { get; init; }

    public void Dispose() => Owner?.Dispose();

    private static InvalidOperationException Missing(string store) =>
        new($"the registry's {store} store was not given to this composition");
}
