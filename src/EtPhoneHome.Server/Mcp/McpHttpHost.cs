using System.Security.Cryptography;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.AspNetCore;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Server.Mcp;

/// <summary>
/// MCP Streamable HTTP on <c>/mcp</c> (the SDK's <c>MapMcp</c>: sessions, event streams, DELETE, the idle timeout) and
/// <c>/health</c>, served by Kestrel. Every MCP session (Mcp-Session-Id) gets its own tools and its own client selection.
/// In front of the SDK's endpoint: the Host/Origin check against a web page in the operator's browser (DNS rebinding,
/// cross-site posts), the bearer key (compared in constant time), JSON-only POST bodies, the body limit, and the session
/// limit, which refuses a new session when the table is full instead of evicting someone's active one.
/// </summary>
internal sealed class McpHttpHost : IAsyncDisposable
{
    public const string McpPath = "/mcp";
    public const string HealthPath = "/health";

    /// <summary>Set on the initializing request when the SDK starts a session for it: the slot then belongs to the session.</summary>
    private const string SessionStartedItem = "eph.mcp.session-started";

    private const string SessionHeader = "Mcp-Session-Id";

    private readonly McpFleet _fleet;
    private readonly McpHttpOptions _options;
    private readonly byte[] _keyHash;
    private WebApplication? _app;
    private IReadOnlySet<string> _allowedHosts = new HashSet<string>();

    /// <summary>Live sessions plus initialize requests holding a slot.</summary>
    private int _sessionSlots;

    public McpHttpHost(McpFleet fleet, McpHttpOptions options)
    {
        _fleet = fleet;
        _options = options;
        _keyHash = SHA256.HashData(options.ApiKey);
    }

    /// <summary>The address Kestrel actually listens on (port 0 resolved).</summary>
    public Uri? Address { get; private set; }

    /// <summary>Open MCP sessions (and initialize requests about to open one).</summary>
    public int SessionCount => Volatile.Read(ref _sessionSlots);

    public async Task StartAsync(CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new StderrLoggerProvider(_options.LogWriter ?? Console.Error, LogLevel.Warning));
        // Kestrel warns once per connection refused past MaxConnections: anyone who can reach the port (no key needed)
        // could write the log without bound.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel.Connections", LogLevel.Error);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(_options.EndPoint);
            k.Limits.MaxRequestBodySize = _options.MaxRequestBodyBytes;
            k.Limits.MaxConcurrentConnections = _options.MaxConnections;
            k.AddServerHeader = false;
        });
        builder.Services.AddMcpServer().WithHttpTransport(http =>
        {
            // Sessions: select_client is per session, so the endpoint keeps them (clients of the session-less
            // 2026-07-28 revision are answered UnsupportedProtocolVersion and fall back to the initialize handshake).
            // The SDK marks stateful mode's options obsolete (MCP9006: back-compat for 2025-11-25 clients and earlier),
            // which every MCP client in use today is.
            http.SessionMode = HttpServerSessionMode.Stateful;
#pragma warning disable MCP9006
            http.IdleTimeout = _options.SessionIdleTimeout;
            // Never reached: the limit below refuses new sessions first, so the SDK never evicts an idle one to make room.
            http.MaxIdleSessionCount = _options.MaxSessions;
#pragma warning restore MCP9006
            http.ConfigureSessionOptions = (context, options, _) =>
            {
                EphMcpServer.Configure(options, _fleet);
                return Task.CompletedTask;
            };
#pragma warning disable MCPEXP002 // RunSessionHandler is experimental: it is the one hook around a session's whole life.
            http.RunSessionHandler = RunSessionAsync;
#pragma warning restore MCPEXP002
        });
        var app = builder.Build();
        app.Use(CheckHostAndOriginAsync);
        app.MapGet(HealthPath, Health);
        // Every path but /health needs the key: routing matches /mcp case-insensitively (/MCP, /Mcp/, /%4DCP), so a
        // check keyed to the spelling "/mcp" would let those through to the SDK's endpoint without it.
        app.UseWhen(c => !c.Request.Path.Equals(HealthPath, StringComparison.OrdinalIgnoreCase), mcp =>
        {
            mcp.Use(AuthorizeAsync);
            mcp.Use(CheckBodyAsync);
            mcp.Use(LimitSessionsAsync);
        });
        app.MapMcp(McpPath);
        await app.StartAsync(ct).ConfigureAwait(false);
        _app = app;
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
        Address = bound is null ? null : new Uri(bound.Replace("[::]", "127.0.0.1", StringComparison.Ordinal));
        _allowedHosts = _options.AllowedHosts(Address?.Port ?? _options.EndPoint.Port);
    }

    /// <summary>The MCP specification's DNS-rebinding defence: Host must name this server, and a browser's Origin too.</summary>
    private async Task CheckHostAndOriginAsync(HttpContext context, Func<Task> next)
    {
        var host = context.Request.Headers.Host.ToString();
        if (!_allowedHosts.Contains(host))
        {
            await ErrorAsync(context, StatusCodes.Status421MisdirectedRequest, "this server does not answer for that Host").ConfigureAwait(false);
            return;
        }

        var origin = context.Request.Headers.Origin.ToString();
        if (origin.Length > 0 && !IsAllowedOrigin(origin, _allowedHosts))
        {
            await ErrorAsync(context, StatusCodes.Status403Forbidden, "cross-origin requests are refused").ConfigureAwait(false);
            return;
        }

        await next().ConfigureAwait(false);
    }

    /// <summary>An Origin (scheme://host[:port]) is allowed when it names one of the allowed hosts over http or https.</summary>
    internal static bool IsAllowedOrigin(string origin, IReadOnlySet<string> allowedHosts)
    {
        if (!Uri.TryCreate(origin, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https")
            || uri.AbsolutePath != "/" || uri.UserInfo.Length > 0)
        {
            return false;
        }

        var host = uri.HostNameType == UriHostNameType.IPv6 ? $"[{uri.IdnHost.Trim('[', ']')}]" : uri.IdnHost;
        return allowedHosts.Contains($"{host}:{uri.Port}");
    }

    private IResult Health()
    {
        var clients = _fleet.Registry.Clients.QueryClients(new ClientQuery());
        return Results.Json(new HealthBody("ok", clients.Count(c => c.Online), clients.Count, EphMcpServer.Version), ToolResults.Json);
    }

    private sealed record HealthBody(string Status, int OnlineClients, int TotalClients, string Version);

    /// <summary>Constant-time check of "Authorization: Bearer KEY" (hashes make the lengths equal).</summary>
    internal static bool IsAuthorized(byte[] keyHash, string? authorization)
    {
        ArgumentNullException.ThrowIfNull(keyHash);
        const string prefix = "Bearer ";
        if (authorization is null || !authorization.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        var offered = SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(authorization[prefix.Length..].Trim()));
        return CryptographicOperations.FixedTimeEquals(offered, keyHash);
    }

    /// <summary>Every method on <c>/mcp</c> needs the key.</summary>
    private async Task AuthorizeAsync(HttpContext context, Func<Task> next)
    {
        if (!IsAuthorized(_keyHash, context.Request.Headers.Authorization.ToString()))
        {
            context.Response.Headers.WWWAuthenticate = "Bearer";
            await ErrorAsync(context, StatusCodes.Status401Unauthorized, "missing or wrong API key (Authorization: Bearer KEY)").ConfigureAwait(false);
            return;
        }

        await next().ConfigureAwait(false);
    }

    /// <summary>
    /// POST bodies: only JSON (text/plain and form posts are what a page may send cross-site without a preflight), and
    /// at most the limit (a declared length is refused before reading; a chunked body when Kestrel stops reading it).
    /// </summary>
    private async Task CheckBodyAsync(HttpContext context, Func<Task> next)
    {
        if (!HttpMethods.IsPost(context.Request.Method))
        {
            await next().ConfigureAwait(false);
            return;
        }

        if (!IsJson(context.Request.ContentType))
        {
            await ErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, "the body must be application/json").ConfigureAwait(false);
            return;
        }

        if (context.Request.ContentLength > _options.MaxRequestBodyBytes)
        {
            await TooLargeAsync(context).ConfigureAwait(false);
            return;
        }

        try
        {
            await next().ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge && !context.Response.HasStarted)
        {
            await TooLargeAsync(context).ConfigureAwait(false);
        }
        catch (BadHttpRequestException ex) when (!context.Response.HasStarted)
        {
            // A body that stopped arriving (408) or broke off: the sender's fault, answered, not logged as a server error
            // with its stack trace for every such request. What is left of it is not read: the connection closes.
            context.Response.Headers.Connection = "close";
            await ErrorAsync(context, ex.StatusCode, "the request body could not be read").ConfigureAwait(false);
        }
    }

    private Task TooLargeAsync(HttpContext context)
    {
        // The rest of the body is never read, so the connection cannot carry another request: say so, or a client that
        // pools connections sends its next request on one the server is closing ("the response ended prematurely").
        context.Response.Headers.Connection = "close";
        return ErrorAsync(context, StatusCodes.Status413PayloadTooLarge, $"the body is larger than {_options.MaxRequestBodyBytes} bytes");
    }

    /// <summary>
    /// A POST without Mcp-Session-Id may open a session: it takes a slot first, or is refused with 503 when every slot is
    /// taken (an active session is never evicted for it; idle ones are closed by the SDK after the idle timeout). The slot
    /// passes to the session the SDK starts (<see cref="RunSessionAsync"/> frees it when the session ends), or is freed
    /// at once when the request opened none.
    /// </summary>
    private async Task LimitSessionsAsync(HttpContext context, Func<Task> next)
    {
        // An empty Mcp-Session-Id starts a session in the SDK as a missing one does, so it must take a slot too.
        if (!HttpMethods.IsPost(context.Request.Method) || !string.IsNullOrEmpty(context.Request.Headers[SessionHeader].ToString()))
        {
            await next().ConfigureAwait(false);
            return;
        }

        if (!TryTakeSlot())
        {
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"{_options.MaxSessions} MCP sessions are open; end one (DELETE) or wait until one has been idle for {_options.SessionIdleTimeout.TotalMinutes:0} minutes").ConfigureAwait(false);
            return;
        }

        try
        {
            await next().ConfigureAwait(false);
        }
        finally
        {
            if (!context.Items.ContainsKey(SessionStartedItem))
            {
                Interlocked.Decrement(ref _sessionSlots);
            }
        }
    }

    private bool TryTakeSlot()
    {
        while (true)
        {
            var taken = Volatile.Read(ref _sessionSlots);
            if (taken >= _options.MaxSessions)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref _sessionSlots, taken + 1, taken) == taken)
            {
                return true;
            }
        }
    }

    /// <summary>Runs one session for the SDK; its slot is freed when it ends (DELETE, idle timeout, shutdown).</summary>
    private async Task RunSessionAsync(HttpContext context, McpServer server, CancellationToken sessionClosed)
    {
        // Runs synchronously up to the first await, inside the initializing request: the slot is the session's now.
        context.Items[SessionStartedItem] = true;
        try
        {
            await server.RunAsync(sessionClosed).ConfigureAwait(false);
        }
        finally
        {
            Interlocked.Decrement(ref _sessionSlots);
        }
    }

    private static bool IsJson(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType.Value, "application/json", StringComparison.OrdinalIgnoreCase);

    /// <summary>The documented HTTP error payload: <c>{"error": "...", "message": "..."}</c>.</summary>
    private static async Task ErrorAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        var error = status switch
        {
            StatusCodes.Status401Unauthorized => "unauthorized",
            StatusCodes.Status404NotFound => "not_found",
            StatusCodes.Status403Forbidden => "forbidden",
            StatusCodes.Status413PayloadTooLarge => "too_large",
            StatusCodes.Status415UnsupportedMediaType => "unsupported_media_type",
            StatusCodes.Status421MisdirectedRequest => "misdirected",
            StatusCodes.Status503ServiceUnavailable => "busy",
            _ => "bad_request",
        };
        await context.Response.WriteAsJsonAsync(new { error, message }, context.RequestAborted).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_app is not null)
        {
            // Stopping the host ends every session (the SDK's session tracker disposes them).
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }
    }
}
