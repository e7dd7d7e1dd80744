using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using ModelContextProtocol;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Server.Mcp;

/// <summary>
/// MCP Streamable HTTP on <c>/mcp</c> and <c>/health</c>, served by Kestrel. Every MCP session
/// (Mcp-Session-Id) gets its own server and its own client selection. <c>/mcp</c> always needs the bearer key
/// (compared in constant time); <c>/health</c> does not — it tells only counts and the version, for monitors.
/// Against a web page in the operator's browser (DNS rebinding, cross-site posts), every request's Host must be the
/// bound address (or a configured name) and an Origin, when sent, must be one of those; POSTs must be JSON; bodies
/// have a limit. A session belongs to the key that opened it, and a full table refuses new sessions instead of
/// evicting someone's active one.
/// </summary>
internal sealed class McpHttpHost : IAsyncDisposable
{
    public const string McpPath = "/mcp";
    public const string HealthPath = "/health";
    private const string SessionHeader = "Mcp-Session-Id";

    private readonly McpFleet _fleet;
    private readonly McpHttpOptions _options;
    private readonly ConcurrentDictionary<string, HttpSession> _sessions = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _stopping = new();
    private readonly byte[] _keyHash;
    private WebApplication? _app;
    private IReadOnlySet<string> _allowedHosts = new HashSet<string>();

    public McpHttpHost(McpFleet fleet, McpHttpOptions options)
    {
        _fleet = fleet;
        _options = options;
        _keyHash = SHA256.HashData(options.ApiKey);
    }

    /// <summary>The address Kestrel actually listens on (port 0 resolved).</summary>
    public Uri? Address { get; private set; }

    public int SessionCount => _sessions.Count;

    public async Task StartAsync(CancellationToken ct)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new StderrLoggerProvider(Console.Error, LogLevel.Warning));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(_options.EndPoint);
            k.Limits.MaxRequestBodySize = _options.MaxRequestBodyBytes;
            k.AddServerHeader = false;
        });
        var app = builder.Build();
        app.Use(CheckHostAndOriginAsync);
        app.MapGet(HealthPath, Health);
        app.MapPost(McpPath, PostAsync);
        app.MapGet(McpPath, GetAsync);
        app.MapDelete(McpPath, DeleteAsync);
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

    private async Task<bool> AuthorizeAsync(HttpContext context)
    {
        if (IsAuthorized(_keyHash, context.Request.Headers.Authorization.ToString()))
        {
            return true;
        }

        context.Response.StatusCode = StatusCodes.Status401Unauthorized;
        context.Response.Headers.WWWAuthenticate = "Bearer";
        await context.Response.WriteAsJsonAsync(new { error = "unauthorized", message = "missing or wrong API key (Authorization: Bearer KEY)" }, context.RequestAborted).ConfigureAwait(false);
        return false;
    }

    private async Task PostAsync(HttpContext context)
    {
        if (!await AuthorizeAsync(context).ConfigureAwait(false))
        {
            return;
        }

        // text/plain and form posts are what a page may send cross-site without a preflight: only JSON is read.
        if (!IsJson(context.Request.ContentType))
        {
            await ErrorAsync(context, StatusCodes.Status415UnsupportedMediaType, "the body must be application/json").ConfigureAwait(false);
            return;
        }

        JsonRpcMessage? message;
        try
        {
            message = await JsonSerializer.DeserializeAsync(context.Request.Body,
                (System.Text.Json.Serialization.Metadata.JsonTypeInfo<JsonRpcMessage>)McpJsonUtilities.DefaultOptions.GetTypeInfo(typeof(JsonRpcMessage)),
                context.RequestAborted).ConfigureAwait(false);
        }
        catch (JsonException)
        {
            message = null;
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            await ErrorAsync(context, StatusCodes.Status413PayloadTooLarge, $"the body is larger than {_options.MaxRequestBodyBytes} bytes").ConfigureAwait(false);
            return;
        }

        if (message is null)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "the body is not a JSON-RPC message").ConfigureAwait(false);
            return;
        }

        var session = await SessionForPostAsync(context, message).ConfigureAwait(false);
        if (session is null)
        {
            return;
        }

        session.Touch();
        StartEventStream(context);
        var wrote = await session.Transport.HandlePostRequestAsync(message, context.Response.Body, context.RequestAborted).ConfigureAwait(false);
        if (!wrote)
        {
            context.Response.Headers.ContentType = (string?)null;
            context.Response.StatusCode = StatusCodes.Status202Accepted;
        }
    }

    private async Task<HttpSession?> SessionForPostAsync(HttpContext context, JsonRpcMessage message)
    {
        var id = context.Request.Headers[SessionHeader].ToString();
        if (id.Length > 0)
        {
            if (_sessions.TryGetValue(id, out var existing))
            {
                context.Response.Headers[SessionHeader] = id;
                return existing;
            }

            await ErrorAsync(context, StatusCodes.Status404NotFound, "session not found; start a new one with initialize").ConfigureAwait(false);
            return null;
        }

        if (message is not JsonRpcRequest { Method: RequestMethods.Initialize })
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "a new session starts with an initialize request; send Mcp-Session-Id otherwise").ConfigureAwait(false);
            return null;
        }

        if (!await MakeRoomAsync().ConfigureAwait(false))
        {
            await ErrorAsync(context, StatusCodes.Status503ServiceUnavailable,
                $"{_options.MaxSessions} MCP sessions are open; end one (DELETE) or wait until one has been idle for {_options.SessionIdleTimeout.TotalMinutes:0} minutes").ConfigureAwait(false);
            return null;
        }

        var sessionId = WebEncoders.Base64UrlEncode(RandomNumberGenerator.GetBytes(16));
        var transport = new StreamableHttpServerTransport(_fleet.LoggerFactory) { SessionId = sessionId };
        var options = EphMcpServer.CreateOptions(_fleet);
        var server = McpServer.Create(transport, options, _fleet.LoggerFactory);
        var session = new HttpSession(sessionId, transport, server, _stopping.Token);
        _sessions[sessionId] = session;
        context.Response.Headers[SessionHeader] = sessionId;
        return session;
    }

    private async Task GetAsync(HttpContext context)
    {
        if (!await AuthorizeAsync(context).ConfigureAwait(false))
        {
            return;
        }

        var id = context.Request.Headers[SessionHeader].ToString();
        if (id.Length == 0 || !_sessions.TryGetValue(id, out var session))
        {
            await ErrorAsync(context, id.Length == 0 ? StatusCodes.Status400BadRequest : StatusCodes.Status404NotFound, "unknown or missing Mcp-Session-Id").ConfigureAwait(false);
            return;
        }

        session.Touch();
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, _stopping.Token);
        try
        {
            StartEventStream(context);
            await session.Transport.HandleGetRequestAsync(context.Response.Body, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (linked.IsCancellationRequested)
        {
            // The client went away or the server stops: how event streams end.
        }
        catch (InvalidOperationException)
        {
            // A second GET stream for the same session; the first keeps serving.
            if (!context.Response.HasStarted)
            {
                await ErrorAsync(context, StatusCodes.Status400BadRequest, "this session already has an event stream").ConfigureAwait(false);
            }
        }
    }

    private async Task DeleteAsync(HttpContext context)
    {
        if (!await AuthorizeAsync(context).ConfigureAwait(false))
        {
            return;
        }

        var id = context.Request.Headers[SessionHeader].ToString();
        if (id.Length > 0 && _sessions.TryRemove(id, out var session))
        {
            await session.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>Closes idle sessions; false when the table is still full (no active session is ever evicted).</summary>
    private async Task<bool> MakeRoomAsync()
    {
        var idleCutoff = DateTimeOffset.UtcNow - _options.SessionIdleTimeout;
        foreach (var session in _sessions.Values.Where(s => s.LastUsed < idleCutoff).ToList())
        {
            if (_sessions.TryRemove(session.Id, out _))
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
        }

        return _sessions.Count < _options.MaxSessions;
    }

    private static bool IsJson(string? contentType) =>
        Microsoft.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var media)
        && string.Equals(media.MediaType.Value, "application/json", StringComparison.OrdinalIgnoreCase);

    private static void StartEventStream(HttpContext context)
    {
        context.Response.Headers.ContentType = "text/event-stream";
        context.Response.Headers.CacheControl = "no-cache,no-store";
        context.Response.Headers.ContentEncoding = "identity";
        context.Features.GetRequiredFeature<IHttpResponseBodyFeature>().DisableBuffering();
    }

    private static async Task ErrorAsync(HttpContext context, int status, string message)
    {
        context.Response.StatusCode = status;
        var error = status switch
        {
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
        await _stopping.CancelAsync().ConfigureAwait(false);
        foreach (var id in _sessions.Keys.ToList())
        {
            if (_sessions.TryRemove(id, out var session))
            {
                await session.DisposeAsync().ConfigureAwait(false);
            }
        }

        if (_app is not null)
        {
            await _app.StopAsync(CancellationToken.None).ConfigureAwait(false);
            await _app.DisposeAsync().ConfigureAwait(false);
        }

        _stopping.Dispose();
    }

    /// <summary>One MCP session: its transport, its server (own tools, own selection) and the server's run.</summary>
    private sealed class HttpSession : IAsyncDisposable
    {
        private readonly CancellationTokenSource _run;
        private readonly Task _running;
        private long _lastUsedTicks = DateTimeOffset.UtcNow.UtcTicks;

        public HttpSession(string id, StreamableHttpServerTransport transport, McpServer server, CancellationToken stopping)
        {
            Id = id;
            Transport = transport;
            Server = server;
            _run = CancellationTokenSource.CreateLinkedTokenSource(stopping);
            _running = server.RunAsync(_run.Token);
        }

        public string Id { get; }
        public StreamableHttpServerTransport Transport { get; }
        public McpServer Server { get; }
        public DateTimeOffset LastUsed => new(Interlocked.Read(ref _lastUsedTicks), TimeSpan.Zero);

        public void Touch() => Interlocked.Exchange(ref _lastUsedTicks, DateTimeOffset.UtcNow.UtcTicks);

        public async ValueTask DisposeAsync()
        {
            await _run.CancelAsync().ConfigureAwait(false);
            try
            {
                await _running.ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                // Cancelled on purpose.
            }

            await Server.DisposeAsync().ConfigureAwait(false);
            await Transport.DisposeAsync().ConfigureAwait(false);
            _run.Dispose();
        }
    }
}
