using System.Reflection;
using EtPhoneHome.Mcp.Tools;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp;

/// <summary>
/// Builds MCP servers over a <see cref="McpFleet"/>: one <see cref="McpServer"/> per session, each with
/// its own <see cref="McpSession"/> (the selected client) bound into its tool instances.
/// </summary>
public static class EphMcpServer
{
    public const string ServerName = "etphonehome";

    /// <summary>The tool classes; each public method with [McpServerTool] becomes a tool.</summary>
    public static readonly IReadOnlyList<Type> ToolTypes = [typeof(ClientTools), typeof(KeyTools), typeof(CommandTools), typeof(HistoryTools), typeof(MonitoringTools), typeof(ExchangeTools), typeof(FileTools)];

    /// <summary>The product version (one number for every binary).</summary>
    public static string Version =>
        typeof(EphMcpServer).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? "0.0.0";

    /// <summary>Server options for a new session: name, version, instructions and the tools bound to <paramref name="session"/>.</summary>
    public static McpServerOptions CreateOptions(McpFleet fleet, McpSession? session = null) => Configure(new McpServerOptions(), fleet, session);

    /// <summary>
    /// Fills a session's options (a fresh one per session: stdio builds it, the HTTP host's session callback is handed
    /// one): name, version, instructions, the tools bound to <paramref name="session"/>, and the one filter that turns
    /// tool exceptions into the documented error answers (<see cref="ToolResults.ErrorFilter"/>).
    /// </summary>
    public static McpServerOptions Configure(McpServerOptions options, McpFleet fleet, McpSession? session = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(fleet);
        session ??= new McpSession();
        var tools = new McpServerPrimitiveCollection<McpServerTool>();
        var create = new McpServerToolCreateOptions { SerializerOptions = ToolResults.Json };
        foreach (var type in ToolTypes)
        {
            var instance = CreateInstance(type, fleet, session);
            foreach (var method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance | BindingFlags.DeclaredOnly))
            {
                if (method.GetCustomAttribute<McpServerToolAttribute>() is not null)
                {
                    tools.Add(McpServerTool.Create(method, instance, create));
                }
            }
        }

        options.ServerInfo = new Implementation { Name = ServerName, Title = "EtPhoneHome fleet", Version = Version };
        options.ServerInstructions =
            "EtPhoneHome reaches machines behind NAT through reverse SSH tunnels. Start with list_clients or find_client; " +
            "select_client sets this session's default target, or pass client_id. Errors carry a stable code (CLIENT_NOT_FOUND, " +
            "CLIENT_OFFLINE, NO_CLIENT_SELECTED, INVALID_ARGUMENT, TIMEOUT, ...) and a recovery_hint. Long commands: start_command + get_command_result.";
        options.ToolCollection = tools;
        options.Filters.Request.CallToolFilters.Add(ToolResults.ErrorFilter(fleet));
        return options;
    }

    private static object CreateInstance(Type type, McpFleet fleet, McpSession session)
    {
        var ctor = type.GetConstructors().Single();
        var args = ctor.GetParameters().Select(p => p.ParameterType == typeof(McpFleet) ? fleet
            : p.ParameterType == typeof(McpSession) ? (object)session
            : throw new InvalidOperationException($"{type.Name} needs an unsupported {p.ParameterType.Name}")).ToArray();
        return ctor.Invoke(args);
    }

    /// <summary>Serves one session over stdin/stdout until the client closes it or <paramref name="ct"/> fires.</summary>
    public static async Task RunStdioAsync(McpFleet fleet, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        var options = CreateOptions(fleet);
        await using var transport = new StdioServerTransport(options, fleet.LoggerFactory);
        await using var server = McpServer.Create(transport, options, fleet.LoggerFactory);
        await server.RunAsync(ct).ConfigureAwait(false);
    }

    /// <summary>Serves one session over a pair of streams (in-memory tests, or a host's own pipes).</summary>
    public static async Task RunStreamAsync(McpFleet fleet, Stream input, Stream output, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(fleet);
        var options = CreateOptions(fleet);
        await using var transport = new StreamServerTransport(input, output, ServerName, fleet.LoggerFactory);
        await using var server = McpServer.Create(transport, options, fleet.LoggerFactory);
        await server.RunAsync(ct).ConfigureAwait(false);
    }
}
