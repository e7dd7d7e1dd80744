using EtPhoneHome.Core.Operations;
using System.CommandLine;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server.Verbs;

namespace EtPhoneHome.Server;

/// <summary>eph-server: the hub daemon and the operator verbs for shell scripts.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => RunAsync(args, new InvocationConfiguration());

    /// <summary>
    /// Runs one command line. A verb that had to write the registry (audit, rate limits, a key decision) and met a full
    /// disk ends with one plain line naming it, not a stack trace.
    /// </summary>
    public static async Task<int> RunAsync(string[] args, InvocationConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        configuration.EnableDefaultExceptionHandler = false;
        var parsed = BuildRoot().Parse(args);
        try
        {
            EphConfiguration.Registry = parsed.GetValue<string?>("--registry");
            if (EphConfiguration.Registry is { Length: > 0 } named)
            {
                _ = RegistrySource.Parse(named, inlinePassword: false);
            }
        }
        catch (ArgumentException ex)
        {
            await configuration.Error.WriteLineAsync($"eph-server: --registry: {ex.Message}").ConfigureAwait(false);
            return 2;
        }

        try
        {
            return await parsed.InvokeAsync(configuration).ConfigureAwait(false);
        }
        catch (Exception ex) when (RegistryFaults.IsUnwritable(ex))
        {
            var data = CommonOptions.DataDirectoryOf(parsed);
            await configuration.Error.WriteLineAsync($"eph-server {parsed.CommandResult.Command.Name}: {RegistryFaults.ForOperator(ex, data)}").ConfigureAwait(false);
            return 1;
        }
        catch (RegistryUnavailableException ex)
        {
            // Names the database, never its password.
            await configuration.Error.WriteLineAsync($"eph-server {parsed.CommandResult.Command.Name}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // What System.CommandLine's default handler did.
            await configuration.Error.WriteLineAsync($"Unhandled exception: {ex}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>
    /// The full command tree, and the composition root of the operator verbs: every verb gets its registry, guard,
    /// transports and exchange client from <paramref name="services"/> (the CLI's by default). Tests pass their own
    /// parts here instead of replacing process-wide statics.
    /// </summary>
    public static RootCommand BuildRoot(Func<EtPhoneHome.Core.DataDirectory, EtPhoneHome.Core.Services.OperatorServices>? services = null)
        => BuildRoot(services is null ? OperatorVerbs.CliServices : (dir, _) => services(dir));

    /// <summary>
    /// <see cref="BuildRoot(Func{EtPhoneHome.Core.DataDirectory, EtPhoneHome.Core.Services.OperatorServices}?)"/> with
    /// services that take the verb's log: the invocation's stderr, at the least level of
    /// <see cref="EphLog.LevelEnvironmentVariable"/> (warning by default).
    /// </summary>
    public static RootCommand BuildRoot(Func<EtPhoneHome.Core.DataDirectory, IEphLog, EtPhoneHome.Core.Services.OperatorServices> services)
    {
        ArgumentNullException.ThrowIfNull(services);
        var root = new EphRootCommand("EtPhoneHome server: the hub (run) and operator verbs. Every verb takes --data DIR (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server).",
            services);
        HubVerbs.Register(root);
        MaintenanceVerbs.Register(root);
        OperatorVerbs.Register(root);
        HealthVerbs.Register(root);
        ExchangeVerbs.Register(root);
        WebhookVerbs.Register(root);
        RateLimitVerbs.Register(root);
        RegistryVerbs.Register(root);
        OperatorsVerbs.Register(root);
        McpVerbs.Register(root);
        FilesVerbs.Register(root);
        ConnectionVerbs.Register(root);
        root.Options.Add(CommonOptions.Registry);
        root.Options.Add(RemoteCli.ServerOption());
        root.Options.Add(RemoteCli.KeyFileOption());
        root.Options.Add(RemoteCli.FingerprintOption());
        RemoteCli.Wrap(root);
        return root;
    }
}

/// <summary>The root of eph-server's command tree, holding the composition root its verbs draw their services from.</summary>
internal sealed class EphRootCommand(string description, Func<EtPhoneHome.Core.DataDirectory, IEphLog, EtPhoneHome.Core.Services.OperatorServices> services)
    : RootCommand(description)
{
    public Func<EtPhoneHome.Core.DataDirectory, IEphLog, EtPhoneHome.Core.Services.OperatorServices> Services { get; } = services;

    /// <summary>How a verb asks a person to confirm (the console by default; a test gives its own answers).</summary>
    public OperatorPrompt Prompt { get; set; } = OperatorPrompt.Console;

    /// <summary>The environment the verbs read ($ETPHONEHOME_SERVER); a test gives its own.</summary>
    public Func<string, string?> Environment { get; set; } = System.Environment.GetEnvironmentVariable;

    /// <summary>The operator's profile folder (saved connections, pinned host keys): $ETPHONEHOME_CONFIG_DIR, else the platform's.</summary>
    public string ProfileDirectory => Environment(EtPhoneHome.Core.Remote.ConnectionProfile.DirectoryVariable) is { Length: > 0 } dir
        ? dir
        : EtPhoneHome.Core.Remote.ConnectionProfile.Directory;

    /// <summary>How a verb given --server reaches the server (ssh with the pinned host key by default; a test: a socket pair).</summary>
    public Func<RemoteRequest, OperatorPrompt, TextWriter, CancellationToken, Task<EtPhoneHome.Core.Remote.RemoteServer>> RemoteConnector { get; set; } = RemoteCli.ConnectAsync;

    /// <summary>Serves MCP on stdio with the tools going through <see cref="RemoteConnector"/>'s server (mcp --server).</summary>
    public Func<EtPhoneHome.Core.Remote.RemoteServer, ParseResult, CancellationToken, Task<int>> RemoteMcp { get; set; } = McpVerbs.RunRemoteStdioAsync;
}

/// <summary>A confirmation prompt: whether a person can answer one, and how the answer is read.</summary>
internal sealed record OperatorPrompt(Func<bool> IsInteractive, Func<string?> ReadAnswer)
{
    /// <summary>The terminal: interactive when neither standard input nor output is redirected.</summary>
    public static OperatorPrompt Console { get; } = new(
        () => !System.Console.IsInputRedirected && !System.Console.IsOutputRedirected, System.Console.ReadLine);

    /// <summary>No person to ask: a verb that needs confirmation refuses unless told --yes.</summary>
    public static OperatorPrompt None { get; } = new(() => false, () => null);
}
