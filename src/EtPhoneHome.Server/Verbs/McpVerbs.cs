using System.CommandLine;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using EtPhoneHome.Server.Mcp;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// <c>eph-server mcp</c>: the MCP server for AI agents. stdio by default (stdout is the protocol; every log
/// line goes to stderr); with <c>--http ADDR</c> MCP Streamable HTTP on <c>/mcp</c> plus <c>/health</c>.
/// </summary>
internal static class McpVerbs
{
    public static void Register(RootCommand root) => root.Subcommands.Add(McpCommand());

    /// <summary>Options the hub's <c>run --http</c> shares with <c>mcp</c>.</summary>
    internal static Option<string?> ApiKeyFileOption() => new("--api-key-file")
    {
        Description = $"File (mode 0600) holding the bearer API key for HTTP (default ${McpHttpOptions.ApiKeyVariable}, else DATA/mcp-api-key, which init creates). HTTP never runs without a key.",
    };

    /// <summary>More Host names the HTTP endpoint answers for (a reverse proxy's public name).</summary>
    internal static Option<string[]> AllowedHostOption() => new("--allowed-host")
    {
        Description = "A Host name (or host:port) the HTTP endpoint also answers for, e.g. a reverse proxy's public name; repeatable. Other Host headers are refused (DNS rebinding).",
        AllowMultipleArgumentsPerToken = false,
    };

    internal static Option<string[]> AllowLocalDirOption() => new("--allow-local-dir")
    {
        Description = "Server directory MCP tools may read and write local files in (repeat for more; default <data>/exchange).",
        AllowMultipleArgumentsPerToken = false,
    };

    internal static Option<int> MaxOutputOption() => new("--max-output-bytes")
    {
        Description = $"Per-stream output budget of a tool answer in bytes, 1024-1048576 (default {McpServerSettings.DefaultMaxOutputBytes}); more is cut with a marker.",
        DefaultValueFactory = _ => McpServerSettings.DefaultMaxOutputBytes,
    };

    private static Command McpCommand()
    {
        var data = CommonOptions.Data;
        var http = new Option<string?>("--http") { Description = "Serve MCP Streamable HTTP on ADDR (e.g. 127.0.0.1:8765) instead of stdio." };
        var apiKeyFile = ApiKeyFileOption();
        var allowedHost = AllowedHostOption();
        var allowDir = AllowLocalDirOption();
        var maxOutput = MaxOutputOption();
        var cmd = new Command("mcp", "Serve the MCP tools for AI agents: stdio by default (for Claude Code / Claude Desktop), or HTTP with --http.")
        {
            data, http, apiKeyFile, allowedHost, allowDir, maxOutput,
        };
        cmd.SetAction(async (parseResult, ct) =>
        {
            var error = Console.Error;
            McpServerSettings settings;
            McpHttpOptions? httpOptions = null;
            try
            {
                settings = Settings(parseResult.GetValue(allowDir), parseResult.GetValue(maxOutput));
                if (parseResult.GetValue(http) is { } address)
                {
                    httpOptions = McpHttpOptions.Create(address, parseResult.GetValue(apiKeyFile), Environment.GetEnvironmentVariable,
                        CommonOptions.ResolveData(parseResult, data).McpApiKeyFile, parseResult.GetValue(allowedHost));
                }
            }
            catch (ArgumentException ex)
            {
                await error.WriteLineAsync($"eph-server mcp: {ex.Message}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            RegistryStores registry;
            try
            {
                registry = OperatorVerbs.OpenExistingRegistry(CommonOptions.ResolveData(parseResult, data), CliLog.ForVerb(error));
            }
            catch (InvalidOperationException ex)
            {
                await error.WriteLineAsync($"eph-server mcp: {ex.Message}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            using var registryLease = registry;
            if (httpOptions is not null)
            {
                try
                {
                    // The hub records the ports clients may be handed; a service port among them could be taken by a client.
                    TunnelPortRange.EnsureServicePort(httpOptions.EndPoint.Port, TunnelPortRange.Of(registry.Settings), "--http");
                }
                catch (ArgumentException ex)
                {
                    await error.WriteLineAsync($"eph-server mcp: {ex.Message}").ConfigureAwait(false);
                    return OperatorVerbs.UsageError;
                }
            }

            await using var fleet = new McpFleet(registry, settings);
            using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
            using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
                System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
                {
                    ctx.Cancel = true;
                    stop.Cancel();
                });
            if (httpOptions is null)
            {
                await error.WriteLineAsync($"eph-server mcp: serving MCP on stdio (data {registry.DataDirectory})").ConfigureAwait(false);
                try
                {
                    await EphMcpServer.RunStdioAsync(fleet, stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    // SIGTERM or Ctrl+C.
                }

                return 0;
            }

            await using var host = new McpHttpHost(fleet, httpOptions);
            try
            {
                await host.StartAsync(stop.Token).ConfigureAwait(false);
            }
            catch (IOException ex)
            {
                await error.WriteLineAsync($"eph-server mcp: cannot listen on {httpOptions.EndPoint}: {ex.Message}").ConfigureAwait(false);
                return 1;
            }

            await error.WriteLineAsync(Listening(host, httpOptions)).ConfigureAwait(false);
            try
            {
                await Task.Delay(Timeout.Infinite, stop.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // SIGTERM or Ctrl+C.
            }

            return 0;
        });
        return cmd;
    }

    /// <summary>
    /// <c>mcp --server</c>: MCP on stdio for an AI agent on this workstation, every tool call going through the server's
    /// operator service (the server checks the operator key's role on each). Tools with no remote operation answer
    /// NOT_AVAILABLE_REMOTELY; local files of upload_file and download_file are under --allow-local-dir, else the
    /// current directory.
    /// </summary>
    internal static async Task<int> RunRemoteStdioAsync(EtPhoneHome.Core.Remote.RemoteServer server, ParseResult parseResult, CancellationToken ct)
    {
        var error = parseResult.InvocationConfiguration.Error;
        McpServerSettings settings;
        try
        {
            settings = Settings(parseResult.GetValue<string[]>("--allow-local-dir"), parseResult.GetValue<int>("--max-output-bytes"));
        }
        catch (ArgumentException ex)
        {
            await error.WriteLineAsync($"eph-server mcp: {ex.Message}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }

        // Connect before serving: a host key, authentication or role problem is one line here, not a failing first tool call.
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        await error.WriteLineAsync($"eph-server mcp: serving MCP on stdio through {server.Address} as {remote.Identity.Operator} ({remote.Identity.Role.ToString().ToLowerInvariant()})").ConfigureAwait(false);
        await using var fleet = new McpFleet(server, settings);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        using var sigterm = System.Runtime.InteropServices.PosixSignalRegistration.Create(
            System.Runtime.InteropServices.PosixSignal.SIGTERM, ctx =>
            {
                ctx.Cancel = true;
                stop.Cancel();
            });
        try
        {
            await EphMcpServer.RunStdioAsync(fleet, stop.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // SIGTERM or Ctrl+C.
        }

        return 0;
    }

    internal static McpServerSettings Settings(string[]? allowedDirs, int maxOutputBytes)
    {
        if (maxOutputBytes is < 1024 or > 1024 * 1024)
        {
            throw new ArgumentException($"--max-output-bytes must be between 1024 and 1048576 (got {maxOutputBytes})");
        }

        var dirs = (allowedDirs ?? []).Select(d => Path.GetFullPath(d)).ToList();
        return new McpServerSettings { MaxOutputBytes = maxOutputBytes, AllowedLocalDirectories = dirs };
    }

    /// <summary>Starts MCP over HTTP on an open registry (the hub's); dispose to stop it.</summary>
    internal static async Task<IAsyncDisposable> StartHttpAsync(RegistryStores registry, McpServerSettings settings, McpHttpOptions options, CancellationToken ct)
    {
        var fleet = new McpFleet(registry, settings);
        var host = new McpHttpHost(fleet, options);
        try
        {
            await host.StartAsync(ct).ConfigureAwait(false);
        }
        catch
        {
            await host.DisposeAsync().ConfigureAwait(false);
            await fleet.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        await Console.Error.WriteLineAsync(Listening(host, options)).ConfigureAwait(false);
        return new HttpService(host, fleet);
    }

    private sealed class HttpService(McpHttpHost host, McpFleet fleet) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            await host.DisposeAsync().ConfigureAwait(false);
            await fleet.DisposeAsync().ConfigureAwait(false);
        }
    }

    internal static string Listening(McpHttpHost host, McpHttpOptions options) =>
        $"mcp http listening on {host.Address}{McpHttpHost.McpPath.TrimStart('/')} (bearer API key required; Host checked; /health open)";
}
