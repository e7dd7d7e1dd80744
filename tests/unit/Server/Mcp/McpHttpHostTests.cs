using System.Text;
using EtPhoneHome.Mcp;
using EtPhoneHome.Server.Mcp;
using EtPhoneHome.Tests.Unit.Registry;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

// The MCP HTTP host (src/EtPhoneHome.Server/Mcp): options, the endpoint's checks, sessions.
public sealed class McpHttpOptionsTests
{
    private const string Key = "0123456789abcdef0123";

    private static string? NoEnv(string name) => null;

    private static string? KeyEnv(string name) => name == McpHttpOptions.ApiKeyVariable ? Key : null;

    [Theory]
    [InlineData("0.0.0.0:8765")]
    [InlineData("192.168.1.10:8765")]
    [InlineData("127.0.0.1:8765")]
    [InlineData("[::1]:8765")]
    [InlineData("localhost:8765")]
    public void AnyAddressWithoutKey_IsRefused(string address)
    {
        // Loopback is no user boundary: a keyless 127.0.0.1 endpoint gave every local user run_fleet_command as root.
        var ex = Assert.Throws<ArgumentException>(() => McpHttpOptions.Create(address, null, NoEnv, defaultKeyFile: "/nonexistent/mcp-api-key"));

        Assert.Contains("needs an API key", ex.Message);
        Assert.Contains("eph-server init", ex.Message);
    }

    [Fact]
    public void KeyFromEnvironment_IsAccepted()
    {
        var options = McpHttpOptions.Create("0.0.0.0:8765", null, KeyEnv);

        Assert.Equal(Encoding.UTF8.GetBytes(Key), options.ApiKey);
    }

    [Fact]
    public void ShortKey_IsRefused() =>
        Assert.Throws<ArgumentException>(() => McpHttpOptions.Create("127.0.0.1:1", null, _ => "short"));

    [Theory]
    [InlineData("127.0.0.1:8765", 8765)]
    [InlineData("localhost:9000", 9000)]
    [InlineData("[::1]:8765", 8765)]
    [InlineData("7000", 7000)]
    public void LoopbackAddresses_Parse(string address, int port)
    {
        var options = McpHttpOptions.Create(address, null, KeyEnv);

        Assert.True(System.Net.IPAddress.IsLoopback(options.EndPoint.Address));
        Assert.Equal(port, options.EndPoint.Port);
    }

    [Fact]
    public void BearerCheck_AcceptsOnlyTheKey()
    {
        var hash = System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(Key));

        Assert.True(McpHttpHost.IsAuthorized(hash, "Bearer " + Key));
        Assert.False(McpHttpHost.IsAuthorized(hash, "Bearer 0123456789abcdef012"));
        Assert.False(McpHttpHost.IsAuthorized(hash, null));
        Assert.False(McpHttpHost.IsAuthorized(hash, "Basic " + Key));
    }

    [Fact]
    public async Task Init_CreatesAnOwnerOnlyKey_ThatHttpUsesByDefault_AndKeepsItOnTheNextInit()
    {
        using var temp = new TempData();
        await EtPhoneHome.Server.Verbs.HubVerbs.InitAsync(temp.Dir, TextWriter.Null, CancellationToken.None);
        var file = temp.Dir.McpApiKeyFile;
        var key = File.ReadAllText(file).Trim();
        Assert.True(key.Length >= 43, key.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(file));
        }

        var options = McpHttpOptions.Create("127.0.0.1:0", null, NoEnv, file);
        Assert.Equal(Encoding.UTF8.GetBytes(key), options.ApiKey);

        await EtPhoneHome.Server.Verbs.HubVerbs.InitAsync(temp.Dir, TextWriter.Null, CancellationToken.None);
        Assert.Equal(key, File.ReadAllText(file).Trim());
    }

    [Fact]
    public void KeyFileOthersCanRead_IsRefused()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        using var temp = new TempData();
        Directory.CreateDirectory(temp.Root);
        var file = Path.Combine(temp.Root, "key");
        File.WriteAllText(file, Key);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.OtherRead);

        var ex = Assert.Throws<ArgumentException>(() => McpHttpOptions.Create("127.0.0.1:0", file, NoEnv));
        Assert.Contains("chmod 600", ex.Message);

        var link = Path.Combine(temp.Root, "link");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        File.CreateSymbolicLink(link, file);
        Assert.Contains("is a link", Assert.Throws<ArgumentException>(() => McpHttpOptions.Create("127.0.0.1:0", link, NoEnv)).Message);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8765", true)]
    [InlineData("http://localhost:8765", true)]
    [InlineData("https://[::1]:8765", true)]
    [InlineData("http://evil.example:8765", false)]
    [InlineData("http://127.0.0.1:8766", false)]
    [InlineData("null", false)]
    [InlineData("file://127.0.0.1:8765", false)]
    [InlineData("http://user@127.0.0.1:8765", false)]
    public void Origin_IsAllowedOnlyForThisServer(string origin, bool allowed)
    {
        var hosts = McpHttpOptions.Create("127.0.0.1:8765", null, KeyEnv).AllowedHosts(8765);

        Assert.Equal(allowed, McpHttpHost.IsAllowedOrigin(origin, hosts));
    }
}

/// <summary>
/// The HTTP endpoint attacked as a web page in the operator's browser or a local user would: through a real Kestrel on
/// 127.0.0.1 and raw HTTP requests.
/// </summary>
public sealed class McpHttpEndpointTests : IAsyncLifetime
{
    private const string Key = "0123456789abcdef0123456789";
    private readonly TempData _temp = new();
    private readonly StringWriter _logText = new();
    private readonly TextWriter _log;

    public McpHttpEndpointTests() => _log = TextWriter.Synchronized(_logText);
    private SqliteRegistry? _registry;
    private McpFleet? _fleet;
    private McpHttpHost? _host;
    private HttpClient? _http;

    public async Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
        _fleet = new McpFleet(RegistryStores.Of(_registry), new McpServerSettings());
        var options = McpHttpOptions.Create("127.0.0.1:0", null, n => n == McpHttpOptions.ApiKeyVariable ? Key : null) with
        {
            MaxSessions = 2,
            MaxRequestBodyBytes = 64 * 1024,
            MaxConnections = 16,
            LogWriter = _log,
        };
        _host = new McpHttpHost(_fleet, options);
        await _host.StartAsync(CancellationToken.None);
        _http = new HttpClient { BaseAddress = _host.Address };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        if (_fleet is not null)
        {
            await _fleet.DisposeAsync();
        }

        _registry?.Dispose();
        _temp.Dispose();
    }

    private const string Initialize = """{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""";

    private HttpRequestMessage Post(string body, string contentType = "application/json", string? key = Key)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/mcp") { Content = new StringContent(body, Encoding.UTF8) };
        request.Content.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse(contentType);
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (key is not null)
        {
            request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", key);
        }

        return request;
    }

    [Fact]
    public async Task TheKey_OpensASession()
    {
        using var response = await _http!.SendAsync(Post(Initialize));

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.Contains("Mcp-Session-Id"));
    }

    [Fact]
    public async Task NoKey_IsUnauthorized()
    {
        using var response = await _http!.SendAsync(Post(Initialize, key: null));

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, response.StatusCode);
    }

    [Theory]
    [InlineData("/MCP")]
    [InlineData("/Mcp/")]
    [InlineData("/mCp")]
    [InlineData("/%4DCP")]
    public async Task NoKey_IsUnauthorized_OnEverySpellingOfThePath(string path)
    {
        // Routing matches /mcp case-insensitively: the key must be asked for on every path the SDK's endpoint answers.
        using var post = Post(Initialize, key: null);
        post.RequestUri = new Uri(path, UriKind.Relative);
        using var response = await _http!.SendAsync(post);

        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(0, _host!.SessionCount);
    }

    [Theory]
    [InlineData("evil.example")]
    [InlineData("evil.example:80")]
    [InlineData("127.0.0.2:1")]
    public async Task AForeignHost_IsRefused_OnEveryPath(string host)
    {
        // DNS rebinding: the page's own name resolves to 127.0.0.1, so the browser sends the page's Host.
        using var post = Post(Initialize);
        post.Headers.Host = host;
        using var response = await _http!.SendAsync(post);
        Assert.Equal(System.Net.HttpStatusCode.MisdirectedRequest, response.StatusCode);

        using var health = new HttpRequestMessage(HttpMethod.Get, "/health");
        health.Headers.Host = host;
        using var healthResponse = await _http.SendAsync(health);
        Assert.Equal(System.Net.HttpStatusCode.MisdirectedRequest, healthResponse.StatusCode);
    }

    [Fact]
    public async Task ACrossSiteOrigin_IsRefused_EvenWithTheKey()
    {
        using var post = Post(Initialize);
        post.Headers.Add("Origin", "https://evil.example");
        using var response = await _http!.SendAsync(post);

        Assert.Equal(System.Net.HttpStatusCode.Forbidden, response.StatusCode);
    }

    [Theory]
    [InlineData("text/plain")]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("multipart/form-data; boundary=x")]
    public async Task ABodyThatIsNotJson_IsRefused(string contentType)
    {
        // The content types a page may post cross-site without a preflight.
        using var response = await _http!.SendAsync(Post(Initialize, contentType));

        Assert.Equal(System.Net.HttpStatusCode.UnsupportedMediaType, response.StatusCode);
    }

    [Fact]
    public async Task AnOversizedBody_IsRefused()
    {
        var huge = Initialize.Replace("\"t\"", "\"" + new string('x', 128 * 1024) + "\"", StringComparison.Ordinal);
        using var response = await _http!.SendAsync(Post(huge));

        Assert.Equal(System.Net.HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task AFullSessionTable_RefusesNewSessions_AndEvictsNoActiveOne()
    {
        var ids = new List<string>();
        for (var i = 0; i < 2; i++)
        {
            using var opened = await _http!.SendAsync(Post(Initialize));
            Assert.Equal(System.Net.HttpStatusCode.OK, opened.StatusCode);
            ids.Add(opened.Headers.GetValues("Mcp-Session-Id").Single());
        }

        using var third = await _http!.SendAsync(Post(Initialize));
        Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, third.StatusCode);

        // Both first sessions still answer.
        foreach (var id in ids)
        {
            using var ping = Post("""{"jsonrpc":"2.0","id":7,"method":"ping"}""");
            ping.Headers.Add("Mcp-Session-Id", id);
            using var pong = await _http.SendAsync(ping);
            Assert.Equal(System.Net.HttpStatusCode.OK, pong.StatusCode);
        }
    }

    [Fact]
    public async Task AnEmptySessionHeader_OpensASession_OnlyInAFreePlace()
    {
        // The SDK starts a session for an empty Mcp-Session-Id as for none: it must take a place like any new session.
        for (var i = 0; i < 3; i++)
        {
            using var post = Post(Initialize);
            post.Headers.TryAddWithoutValidation("Mcp-Session-Id", "");
            using var response = await _http!.SendAsync(post);
            Assert.Equal(i < 2 ? System.Net.HttpStatusCode.OK : System.Net.HttpStatusCode.ServiceUnavailable, response.StatusCode);
        }

        Assert.Equal(2, _host!.SessionCount);
    }

    [Fact]
    public async Task IdleConnectionsWithoutTheKey_AreBounded_AndThosePastTheBoundClosed()
    {
        // Connections that never finish their headers are held until the headers timeout (30 s): unbounded, anyone who
        // can reach the port takes every file descriptor of the process (the hub's under run --http).
        var sockets = new List<System.Net.Sockets.Socket>();
        try
        {
            for (var i = 0; i < 40; i++)
            {
                var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
                await socket.ConnectAsync(_host!.Address!.Host, _host.Address.Port);
                await socket.SendAsync(Encoding.ASCII.GetBytes($"GET /mcp HTTP/1.1\r\nHost: {_host.Address.Authority}\r\n"));
                sockets.Add(socket);
            }

            using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            var ends = await Task.WhenAll(sockets.Select(async socket =>
            {
                try
                {
                    return await socket.ReceiveAsync(new byte[64], deadline.Token) == 0;
                }
                catch (System.Net.Sockets.SocketException)
                {
                    return true;
                }
                catch (OperationCanceledException)
                {
                    return false;
                }
            }));
            var closed = ends.Count(e => e);
            Assert.True(closed >= 40 - 16, $"{closed} of 40 idle connections closed");
            // Refusing them writes nothing: the log must not grow with what a keyless peer sends.
            Assert.DoesNotContain("rejected", _logText.ToString(), StringComparison.Ordinal);
        }
        finally
        {
            sockets.ForEach(s => s.Dispose());
        }

        // The bound frees as the held connections close.
        var answered = false;
        for (var attempt = 0; attempt < 50 && !answered; attempt++)
        {
            try
            {
                using var health = await _http!.GetAsync("/health");
                answered = health.StatusCode == System.Net.HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                await Task.Delay(100);
            }
        }

        Assert.True(answered);
    }

    [Fact]
    public async Task ABodyThatStopsArriving_IsAnswered_AndNotLoggedAsAServerError()
    {
        using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        await socket.ConnectAsync(_host!.Address!.Host, _host.Address.Port);
        await socket.SendAsync(Encoding.ASCII.GetBytes(
            $"POST /mcp HTTP/1.1\r\nHost: {_host.Address.Authority}\r\nAuthorization: Bearer {Key}\r\nContent-Type: application/json\r\n"
            + "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n{\"jsonrpc\""));
        var buffer = new byte[4096];
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var read = await socket.ReceiveAsync(buffer, deadline.Token);

        Assert.StartsWith("HTTP/1.1 408", Encoding.ASCII.GetString(buffer, 0, read), StringComparison.Ordinal);
        await Task.Delay(200);
        Assert.DoesNotContain("unhandled exception", _logText.ToString(), StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<System.Text.Json.JsonElement> ErrorBody(HttpResponseMessage response, string error)
    {
        var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal(error, json.GetProperty("error").GetString());
        Assert.False(string.IsNullOrWhiteSpace(json.GetProperty("message").GetString()));
        return json;
    }

    private async Task<string> OpenSessionAsync()
    {
        using var opened = await _http!.SendAsync(Post(Initialize));
        Assert.Equal(System.Net.HttpStatusCode.OK, opened.StatusCode);
        return opened.Headers.GetValues("Mcp-Session-Id").Single();
    }

    private async Task<HttpResponseMessage> PingAsync(string sessionId)
    {
        using var ping = Post("""{"jsonrpc":"2.0","id":7,"method":"ping"}""");
        ping.Headers.Add("Mcp-Session-Id", sessionId);
        return await _http!.SendAsync(ping);
    }

    [Fact]
    public async Task Refusals_CarryTheDocumentedErrorPayload()
    {
        using (var unauthorized = await _http!.SendAsync(Post(Initialize, key: "wrong-key-wrong-key-wrong")))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, unauthorized.StatusCode);
            Assert.Equal("Bearer", unauthorized.Headers.WwwAuthenticate.Single().Scheme);
            await ErrorBody(unauthorized, "unauthorized");
        }

        using (var get = new HttpRequestMessage(HttpMethod.Get, "/mcp"))
        using (var unauthorizedGet = await _http.SendAsync(get))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, unauthorizedGet.StatusCode);
        }

        using (var delete = new HttpRequestMessage(HttpMethod.Delete, "/mcp"))
        using (var unauthorizedDelete = await _http.SendAsync(delete))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, unauthorizedDelete.StatusCode);
        }

        using (var misdirected = Post(Initialize))
        {
            misdirected.Headers.Host = "evil.example";
            using var response = await _http.SendAsync(misdirected);
            await ErrorBody(response, "misdirected");
        }

        using (var crossSite = Post(Initialize))
        {
            crossSite.Headers.Add("Origin", "https://evil.example");
            using var response = await _http.SendAsync(crossSite);
            await ErrorBody(response, "forbidden");
        }

        using (var form = await _http.SendAsync(Post(Initialize, "text/plain")))
        {
            await ErrorBody(form, "unsupported_media_type");
        }

        var huge = Initialize.Replace("\"t\"", "\"" + new string('x', 128 * 1024) + "\"", StringComparison.Ordinal);
        using (var tooLarge = await _http.SendAsync(Post(huge)))
        {
            await ErrorBody(tooLarge, "too_large");
            // The unread body leaves the connection unusable: the answer closes it, so a pooling client does not send
            // its next request on a connection the server is closing (that made the next request here fail now and then).
            Assert.True(tooLarge.Headers.ConnectionClose, "a 413 without Connection: close");
        }

        await OpenSessionAsync();
        await OpenSessionAsync();
        using (var busy = await _http.SendAsync(Post(Initialize)))
        {
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, busy.StatusCode);
            await ErrorBody(busy, "busy");
        }
    }

    [Fact]
    public async Task Health_AnswersWithoutTheKey_AndTellsOnlyCounts()
    {
        using var response = await _http!.GetAsync("/health");

        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
        var json = System.Text.Json.JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("ok", json.GetProperty("status").GetString());
        Assert.Equal(0, json.GetProperty("total_clients").GetInt32());
        Assert.Equal(["online_clients", "status", "total_clients", "version"], json.EnumerateObject().Select(p => p.Name).Order(StringComparer.Ordinal).ToArray());
    }

    [Fact]
    public async Task EndingASession_FreesItsPlace_AndItsIdIsThenUnknown()
    {
        var first = await OpenSessionAsync();
        await OpenSessionAsync();

        using (var delete = new HttpRequestMessage(HttpMethod.Delete, "/mcp"))
        {
            delete.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
            delete.Headers.Add("Mcp-Session-Id", first);
            using var deleted = await _http!.SendAsync(delete);
            Assert.True(deleted.IsSuccessStatusCode, deleted.StatusCode.ToString());
        }

        using (var gone = await PingAsync(first))
        {
            Assert.Equal(System.Net.HttpStatusCode.NotFound, gone.StatusCode);
        }

        // The slot is freed when the session's run ends, just after the DELETE answers.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (_host!.SessionCount > 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }

        await OpenSessionAsync();
    }

    [Fact]
    public async Task ARequestThatOpensNoSession_GivesItsPlaceBack()
    {
        // A new session starts with initialize; anything else without Mcp-Session-Id opens none and holds no place.
        for (var i = 0; i < 3; i++)
        {
            using var refused = await _http!.SendAsync(Post("""{"jsonrpc":"2.0","id":7,"method":"ping"}"""));
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, refused.StatusCode);
        }

        Assert.Equal(0, _host!.SessionCount);
        await OpenSessionAsync();
        await OpenSessionAsync();
    }

    [Fact]
    public async Task AToolError_OverHttp_IsTheDocumentedToolError()
    {
        var session = await OpenSessionAsync();
        using (var initialized = Post("""{"jsonrpc":"2.0","method":"notifications/initialized"}"""))
        {
            initialized.Headers.Add("Mcp-Session-Id", session);
            using var accepted = await _http!.SendAsync(initialized);
            Assert.Equal(System.Net.HttpStatusCode.Accepted, accepted.StatusCode);
        }

        using var call = Post("""{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"describe_client","arguments":{"client_id":"web-9"}}}""");
        call.Headers.Add("Mcp-Session-Id", session);
        using var response = await _http!.SendAsync(call);
        var body = await response.Content.ReadAsStringAsync();
        var data = body.Split('\n').Single(l => l.StartsWith("data: ", StringComparison.Ordinal))["data: ".Length..];
        var result = System.Text.Json.JsonDocument.Parse(data).RootElement.GetProperty("result");
        Assert.True(result.GetProperty("isError").GetBoolean());
        var error = System.Text.Json.JsonDocument.Parse(result.GetProperty("content")[0].GetProperty("text").GetString()!).RootElement;
        Assert.Equal("CLIENT_NOT_FOUND", error.GetProperty("error").GetString());
        Assert.Equal("web-9", error.GetProperty("client_id").GetString());
    }
}

/// <summary>The SDK's idle timeout behind the session limit: an idle session is closed, and its place is free again.</summary>
public sealed class McpHttpIdleSessionTests : IAsyncLifetime
{
    private const string Key = "0123456789abcdef0123456789";
    private readonly TempData _temp = new();
    private SqliteRegistry? _registry;
    private McpFleet? _fleet;
    private McpHttpHost? _host;
    private HttpClient? _http;

    public async Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
        _fleet = new McpFleet(RegistryStores.Of(_registry), new McpServerSettings());
        var options = McpHttpOptions.Create("127.0.0.1:0", null, n => n == McpHttpOptions.ApiKeyVariable ? Key : null) with
        {
            MaxSessions = 1,
            SessionIdleTimeout = TimeSpan.FromSeconds(1),
        };
        _host = new McpHttpHost(_fleet, options);
        await _host.StartAsync(CancellationToken.None);
        _http = new HttpClient { BaseAddress = _host.Address };
    }

    public async Task DisposeAsync()
    {
        _http?.Dispose();
        if (_host is not null)
        {
            await _host.DisposeAsync();
        }

        if (_fleet is not null)
        {
            await _fleet.DisposeAsync();
        }

        _registry?.Dispose();
        _temp.Dispose();
    }

    private HttpRequestMessage Initialize()
    {
        var request = new HttpRequestMessage(HttpMethod.Post, "/mcp")
        {
            Content = new StringContent("""{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}""", Encoding.UTF8, "application/json"),
        };
        request.Headers.Accept.ParseAdd("application/json");
        request.Headers.Accept.ParseAdd("text/event-stream");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", Key);
        return request;
    }

    [Fact]
    public async Task AnIdleSession_IsClosed_AndItsPlaceServesANewSession()
    {
        using (var first = await _http!.SendAsync(Initialize()))
        {
            Assert.Equal(System.Net.HttpStatusCode.OK, first.StatusCode);
        }

        using (var full = await _http.SendAsync(Initialize()))
        {
            Assert.Equal(System.Net.HttpStatusCode.ServiceUnavailable, full.StatusCode);
        }

        // The SDK looks for idle sessions every 5 s.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        System.Net.HttpStatusCode status;
        do
        {
            await Task.Delay(250);
            using var again = await _http.SendAsync(Initialize());
            status = again.StatusCode;
        }
        while (status == System.Net.HttpStatusCode.ServiceUnavailable && DateTime.UtcNow < deadline);

        Assert.Equal(System.Net.HttpStatusCode.OK, status);
    }
}
