using System.Net;
using System.Text;

namespace EtPhoneHome.Server.Mcp;

/// <summary>Where and how the MCP HTTP endpoint listens; validated before anything binds.</summary>
internal sealed record McpHttpOptions
{
    /// <summary>Environment variable holding the API key when no key file is given.</summary>
    public const string ApiKeyVariable = "ETPHONEHOME_MCP_API_KEY";

    /// <summary>Shortest API key accepted: a guessable key on a network port is worse than none.</summary>
    public const int MinApiKeyLength = 16;

    public required IPEndPoint EndPoint { get; init; }

    /// <summary>The bearer key. Always required: loopback is no user boundary (any local user, and a web page in the
    /// operator's browser, can reach 127.0.0.1).</summary>
    public required byte[] ApiKey { get; init; }

    /// <summary>Most MCP sessions at once; past it a new session is refused (an active one is never evicted for it).</summary>
    public int MaxSessions { get; init; } = 100;

    /// <summary>
    /// Most open connections at once; Kestrel closes the ones past it as they arrive. Without a bound anyone who can
    /// reach the port (no key needed: a connection is held before its request is read) could take every file descriptor
    /// of the process, which under <c>run --http</c> is the hub's. Room for every session's event stream and requests.
    /// </summary>
    public long MaxConnections { get; init; } = 1000;

    /// <summary>Where the endpoint's warnings go (standard error unless a test captures them).</summary>
    public TextWriter? LogWriter { get; init; }

    /// <summary>A session unused this long is closed.</summary>
    public TimeSpan SessionIdleTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Largest request body: a write_file of the largest file the agent accepts, base64-encoded, with room.</summary>
    public long MaxRequestBodyBytes { get; init; } = 16L * 1024 * 1024;

    /// <summary>
    /// Host header values (host:port) a request may carry: the bound address, and localhost on loopback. Anything else is
    /// a DNS-rebinding attempt or a misrouted request and is refused.
    /// </summary>
    public IReadOnlySet<string> AllowedHosts(int boundPort)
    {
        var hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        if (IPAddress.IsLoopback(EndPoint.Address))
        {
            hosts.Add($"localhost:{boundPort}");
            hosts.Add($"127.0.0.1:{boundPort}");
            hosts.Add($"[::1]:{boundPort}");
        }
        else if (!EndPoint.Address.Equals(IPAddress.Any) && !EndPoint.Address.Equals(IPAddress.IPv6Any))
        {
            hosts.Add(new IPEndPoint(EndPoint.Address, boundPort).ToString());
        }

        foreach (var name in ExtraHosts)
        {
            hosts.Add(name.Contains(':', StringComparison.Ordinal) ? name : $"{name}:{boundPort}");
        }

        return hosts;
    }

    /// <summary>More Host names to accept (a reverse proxy's public name, or the names of a 0.0.0.0 bind).</summary>
    public IReadOnlyList<string> ExtraHosts { get; init; } = [];

    /// <summary>
    /// Parses "--http ADDR" and the key sources: --api-key-file, else $ETPHONEHOME_MCP_API_KEY, else the data
    /// directory's mcp-api-key (created by <c>eph-server init</c>). Without a key nothing is served, on any address: the
    /// MCP tools run commands on the whole fleet.
    /// </summary>
    public static McpHttpOptions Create(string address, string? apiKeyFile, Func<string, string?> environment, string? defaultKeyFile = null,
        IReadOnlyList<string>? extraHosts = null)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var endPoint = ParseEndPoint(address);
        string? key;
        if (!string.IsNullOrEmpty(apiKeyFile))
        {
            key = McpHttpKey.Read(apiKeyFile);
        }
        else if (environment(ApiKeyVariable) is { Length: > 0 } fromEnv)
        {
            key = fromEnv.Trim();
        }
        else if (defaultKeyFile is not null && File.Exists(defaultKeyFile))
        {
            key = McpHttpKey.Read(defaultKeyFile);
        }
        else
        {
            throw new ArgumentException(
                $"MCP over HTTP needs an API key, on loopback too (any local user can reach {endPoint}): run `eph-server init` to create "
                + $"{defaultKeyFile ?? "DATA/mcp-api-key"}, or give --api-key-file FILE, or set {ApiKeyVariable}");
        }

        if (key.Length < MinApiKeyLength)
        {
            throw new ArgumentException($"the MCP API key must be at least {MinApiKeyLength} characters (got {key.Length})");
        }

        foreach (var host in extraHosts ?? [])
        {
            if (string.IsNullOrWhiteSpace(host) || host.Any(c => char.IsWhiteSpace(c) || char.IsControl(c) || c is '/' or '@'))
            {
                throw new ArgumentException($"--allowed-host '{host}' is not a host name (host or host:port)");
            }
        }

        return new McpHttpOptions { EndPoint = endPoint, ApiKey = Encoding.UTF8.GetBytes(key), ExtraHosts = extraHosts ?? [] };
    }

    /// <summary>"127.0.0.1:8765", "[::1]:8765", "localhost:8765" or a bare port (loopback).</summary>
    public static IPEndPoint ParseEndPoint(string address)
    {
        if (string.IsNullOrWhiteSpace(address))
        {
            throw new ArgumentException("--http needs an address such as 127.0.0.1:8765");
        }

        var text = address.Trim();
        if (int.TryParse(text, out var bare))
        {
            text = $"127.0.0.1:{bare}";
        }

        if (text.StartsWith("localhost:", StringComparison.OrdinalIgnoreCase))
        {
            text = "127.0.0.1:" + text["localhost:".Length..];
        }

        if (!IPEndPoint.TryParse(text, out var endPoint) || endPoint.Port is < 0 or > 65535 || !text.Contains(':', StringComparison.Ordinal))
        {
            throw new ArgumentException($"--http '{address}' is not an address:port such as 127.0.0.1:8765");
        }

        return endPoint;
    }
}
