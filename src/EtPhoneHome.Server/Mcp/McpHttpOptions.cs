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

    /// <summary>The bearer key; null only on a loopback address.</summary>
    public byte[]? ApiKey { get; init; }

    /// <summary>Most MCP sessions at once; the oldest idle one is dropped for a new one.</summary>
    public int MaxSessions { get; init; } = 100;

    /// <summary>A session unused this long is closed.</summary>
    public TimeSpan SessionIdleTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Parses "--http ADDR" and the key sources. A non-loopback address without a key is refused: the MCP
    /// tools run commands on the whole fleet.
    /// </summary>
    public static McpHttpOptions Create(string address, string? apiKeyFile, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var endPoint = ParseEndPoint(address);
        string? key = null;
        if (!string.IsNullOrEmpty(apiKeyFile))
        {
            if (!File.Exists(apiKeyFile))
            {
                throw new ArgumentException($"--api-key-file {apiKeyFile} does not exist");
            }

            key = File.ReadAllText(apiKeyFile).Trim();
        }
        else if (environment(ApiKeyVariable) is { Length: > 0 } fromEnv)
        {
            key = fromEnv.Trim();
        }

        if (key is not null && key.Length < MinApiKeyLength)
        {
            throw new ArgumentException($"the MCP API key must be at least {MinApiKeyLength} characters (got {key.Length})");
        }

        if (key is null && !IPAddress.IsLoopback(endPoint.Address))
        {
            throw new ArgumentException(
                $"refusing to serve MCP on non-loopback address {endPoint} without an API key; give --api-key-file FILE or set {ApiKeyVariable}, or bind 127.0.0.1");
        }

        return new McpHttpOptions { EndPoint = endPoint, ApiKey = key is null ? null : Encoding.UTF8.GetBytes(key) };
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
