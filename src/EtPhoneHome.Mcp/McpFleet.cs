using EtPhoneHome.Core.Services;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Microsoft.Extensions.Logging;

namespace EtPhoneHome.Mcp;

/// <summary>
/// What every session of one MCP server process shares: the registry, the operation guard (surface
/// <c>mcp</c>: history, rate limits, webhooks), the command transport, background commands and settings.
/// </summary>
public sealed class McpFleet : IAsyncDisposable
{
    /// <summary>
    /// The fleet with the default transport and stderr logging. Its signature names no Microsoft.Extensions type, so
    /// the PowerShell module can call it without loading those into PowerShell's default context.
    /// </summary>
    public McpFleet(RegistryStores registry, McpServerSettings settings)
        : this(registry, settings, transport: null, loggerFactory: null)
    {
    }

    public McpFleet(RegistryStores registry, McpServerSettings? settings = null, ICommandTransport? transport = null, ILoggerFactory? loggerFactory = null)
    {
        Registry = registry ?? throw new ArgumentNullException(nameof(registry));
        Settings = settings ?? new McpServerSettings();
        if (loggerFactory is null)
        {
            // stderr: on stdio, stdout is the protocol.
            Log = McpLog.ForStdio();
            LoggerFactory = EphLogLoggerProvider.CreateFactory(Log);
        }
        else
        {
            LoggerFactory = loggerFactory;
            Log = new MicrosoftLoggerLog(loggerFactory.CreateLogger("EtPhoneHome.Mcp"));
        }

        Logger = LoggerFactory.CreateLogger("EtPhoneHome.Mcp");
        // MCP's composition root: the same services as the CLI's and the cmdlets', for the operator on surface mcp,
        // warnings to the MCP log (the process does not own the registry: its host does).
        Services = new OperatorServices(registry, new OperatorContext(Settings.Actor, Surfaces.Mcp), Log, ownsRegistry: false)
        {
            CommandTransport = transport is null ? OperatorServices.TunnelCommands : _ => transport,
            Routing = HubRouting.ForFrontEnd(registry),
        };
        Commands = new CommandJobStore(Settings.CommandRetention, Settings.MaxCommands, TimeProvider.System);
        LocalPaths = LocalPathPolicy.For(Settings, new DataDirectory(registry.DataDirectory));
        _metrics = Services.Metrics();
        _files = Services.Files();
        _transfers = Services.Transfers();
    }

    /// <summary>
    /// A fleet whose tools go through a server's operator service (<c>eph-server mcp --server ops@hub</c>): the same
    /// tools, names, parameters and answers; a tool with no remote operation answers
    /// <see cref="ToolErrorCodes.NotAvailableRemotely"/>, and the server's role checks apply to every call.
    /// </summary>
    public McpFleet(Core.Remote.RemoteServer remote, McpServerSettings? settings = null, ILoggerFactory? loggerFactory = null)
    {
        Remote = remote ?? throw new ArgumentNullException(nameof(remote));
        Settings = settings ?? new McpServerSettings();
        if (loggerFactory is null)
        {
            Log = McpLog.ForStdio();
            LoggerFactory = EphLogLoggerProvider.CreateFactory(Log);
        }
        else
        {
            LoggerFactory = loggerFactory;
            Log = new MicrosoftLoggerLog(loggerFactory.CreateLogger("EtPhoneHome.Mcp"));
        }

        Logger = LoggerFactory.CreateLogger("EtPhoneHome.Mcp");
        _context = new OperatorContext(Settings.Actor, Surfaces.Mcp);
        Commands = new CommandJobStore(Settings.CommandRetention, Settings.MaxCommands, TimeProvider.System);
        // The exchange's credentials stay on the server.
        ExchangeSettings = () => throw RemoteOnly.NotAvailable();
        // Local files of upload_file and download_file live on this workstation: the allowed directories, else the current one.
        LocalPaths = new LocalPathPolicy(Settings.AllowedLocalDirectories.Count > 0 ? Settings.AllowedLocalDirectories : [Directory.GetCurrentDirectory()]);
    }

    /// <summary>The server the tools go through; null when they run on this host's registry.</summary>
    public Core.Remote.RemoteServer? Remote { get; }

    private readonly OperatorContext? _context;
    private readonly OperatorServices? _services;
    private readonly RegistryStores? _registry;
    private readonly IMetricsSource? _metrics;
    private readonly RemoteFileOperations? _files;
    private readonly FileTransferClient? _transfers;

    /// <summary>The operator services every tool draws from (not with <see cref="Remote"/>: the tool then answers NOT_AVAILABLE_REMOTELY).</summary>
    public OperatorServices Services
    {
        get => _services ?? throw RemoteOnly.NotAvailable();
        private init => _services = value;
    }

    /// <summary>The registry's stores (the tools read clients, keys, history and rate-limit counters; the guard writes).</summary>
    public RegistryStores Registry
    {
        get => _registry ?? throw RemoteOnly.NotAvailable();
        private init => _registry = value;
    }

    public McpServerSettings Settings { get; }

    public OperationGuard Guard => _services?.Guard ?? throw RemoteOnly.NotAvailable();

    /// <summary>The MCP log (stderr unless the host gave its own logger factory); Core's parts write to it.</summary>
    public IEphLog Log { get; }

    /// <summary>The same log for the SDK side (the MCP SDK and the tools log through Microsoft.Extensions.Logging).</summary>
    public ILoggerFactory LoggerFactory { get; }

    public ILogger Logger { get; }

    /// <summary>Background commands of <c>start_command</c>, kept per server process.</summary>
    public CommandJobStore Commands { get; }

    /// <summary>Server directories local paths may use.</summary>
    public LocalPathPolicy LocalPaths { get; }

    /// <summary>Asks one agent for its metrics; the default goes through the tunnel and records through <see cref="Guard"/>.</summary>
    public IMetricsSource Metrics
    {
        get => _metrics ?? throw RemoteOnly.NotAvailable();
        init => _metrics = value ?? throw new ArgumentNullException(nameof(value));
    }

    /// <summary>read_file, write_file and list_files on agents, recorded through <see cref="Guard"/> (surface mcp).</summary>
    public RemoteFileOperations Files
    {
        get => _files ?? throw RemoteOnly.NotAvailable();
        init => _files = value;
    }

    /// <summary>Streaming, SHA-256-verified uploads and downloads, recorded through <see cref="Guard"/> (surface mcp).</summary>
    public FileTransferClient Transfers
    {
        get => _transfers ?? throw RemoteOnly.NotAvailable();
        init => _transfers = value;
    }

    /// <summary>
    /// Where the exchange bucket is, read at each exchange call (default: the <c>ETPHONEHOME_R2_*</c> environment);
    /// throws <see cref="ExchangeNotConfiguredException"/> when it is not configured.
    /// </summary>
    public Func<ExchangeSettings> ExchangeSettings { get; init; } = Core.Exchange.ExchangeSettings.FromEnvironment;

    /// <summary>Tuning of the exchange client (tests shrink the multipart threshold).</summary>
    public ExchangeOptions? ExchangeOptions { get; init; }

    /// <summary>Who acts through MCP: the operator (the process's user) on the surface <c>mcp</c>, for every edit and decision.</summary>
    public OperatorContext Context => _context ?? Services.Context;

    public async ValueTask DisposeAsync() => await Commands.DisposeAsync().ConfigureAwait(false);
}

/// <summary>
/// State of one MCP session (stdio: the connection; HTTP: one Mcp-Session-Id). Only the selected client
/// lives here, so two agents connected at once never see each other's selection.
/// </summary>
public sealed class McpSession
{
    private string? _selected;

    /// <summary>Uuid of the client chosen with select_client; null until one is.</summary>
    public string? SelectedUuid
    {
        get => Volatile.Read(ref _selected);
        set => Volatile.Write(ref _selected, value);
    }
}
