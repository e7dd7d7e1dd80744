using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtPhoneHome.Protocol;

/// <summary>Protocol constants shared by every component.</summary>
public static class ProtocolInfo
{
    /// <summary>Version of the control and tunnel protocols. A mismatch is a clear error, never a hang.</summary>
    public const int Version = 1;

    /// <summary>Product version, from the single version in Directory.Build.props.</summary>
    public static string ProductVersion { get; } =
        typeof(ProtocolInfo).Assembly.GetName().Version is { } v ? $"{v.Major}.{v.Minor}.{v.Build}" : "0.0.0";
}

// ---------------------------------------------------------------------------------------------
// Gate ↔ hub (unix socket). The gate speaks first; its frame carries what sshd authenticated.
// ---------------------------------------------------------------------------------------------

/// <summary>
/// First frame from eph-gate to the hub. <c>Op</c> is "keys", "session" (a new SSH session) or "resume" (a session
/// whose hub went away: its gate re-attaches it to the next hub).
/// </summary>
public sealed record GateRequest
{
    public required string Op { get; init; }
    /// <summary>SHA256:… fingerprint of the key sshd authenticated (session) or is asking about (keys).</summary>
    public required string Fingerprint { get; init; }
    public string? User { get; init; }
    /// <summary>Key type (ssh-ed25519) and base64 blob; only for "keys".</summary>
    public string? KeyType { get; init; }
    public string? Key { get; init; }
    /// <summary>Process id of the gate relay; the hub and <c>revoke</c> use it to cut the session.</summary>
    public int? GatePid { get; init; }
    /// <summary>The SSH_CONNECTION variable of the session (peer address and ports).</summary>
    public string? SshConnection { get; init; }
    /// <summary>"resume": the client's uuid, from the welcome the gate relayed.</summary>
    public string? Uuid { get; init; }
    /// <summary>"resume": the session id, from the welcome the gate relayed.</summary>
    public long? SessionId { get; init; }
    /// <summary>"resume": the session secret (base64) from the welcome the gate relayed; checked by <see cref="GateResume.Verify"/>.</summary>
    public string? SessionSecret { get; init; }
}

/// <summary>Hub answer to a "resume" request; the gate reads it and does not relay it. Refused: the gate ends the session.</summary>
public sealed record GateResumeResponse
{
    public required bool Ok { get; init; }
    public string? Message { get; init; }
}

/// <summary>
/// What a gate re-attaching a session shows the hub: the session secret, as the welcome it relayed carried it (base64).
/// It travels only between the gate and the hub, on the unix socket the welcome already crossed; an HMAC of it would
/// load OpenSSL into every gate (4 MiB more per connected client) and protect nothing more on that socket.
/// </summary>
public static class GateResume
{
    public const string Op = "resume";

    /// <summary>Constant-time check of the secret a gate sent against the session's.</summary>
    public static bool Verify(byte[] secret, string? sentBase64)
    {
        ArgumentNullException.ThrowIfNull(secret);
        if (string.IsNullOrEmpty(sentBase64) || secret.Length == 0 || sentBase64.Length > 256)
        {
            return false;
        }

        var sent = new byte[(sentBase64.Length * 3 / 4) + 3];
        try
        {
            return Convert.TryFromBase64String(sentBase64, sent, out var n)
                && System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(sent.AsSpan(0, n), secret);
        }
        finally
        {
            System.Security.Cryptography.CryptographicOperations.ZeroMemory(sent);
        }
    }
}

/// <summary>Hub answer to a "keys" request: the authorized_keys lines sshd should see (none = refuse).</summary>
public sealed record GateKeysResponse
{
    public required string[] Lines { get; init; }
}

// ---------------------------------------------------------------------------------------------
// Agent ↔ hub control channel (the SSH session's stdin/stdout, relayed by the gate).
// One message type with a discriminator keeps the AOT serializer simple.
// ---------------------------------------------------------------------------------------------

/// <summary>Message types of the control channel.</summary>
public static class ControlTypes
{
    /// <summary>agent → hub: who I am (first message).</summary>
    public const string Hello = "hello";
    /// <summary>hub → agent: approved; carries uuid, session secret and settings.</summary>
    public const string Welcome = "welcome";
    /// <summary>hub → agent: key not approved yet; keep the session open or retry.</summary>
    public const string Pending = "pending";
    /// <summary>hub → agent: the claimed uuid is pinned to another key; quarantined until approved.</summary>
    public const string KeyMismatch = "key_mismatch";
    /// <summary>hub → agent: refused (revoked, removed, protocol mismatch).</summary>
    public const string Refused = "refused";
    /// <summary>hub → agent: reconnect now (for example right after the key was approved).</summary>
    public const string Reconnect = "reconnect";
    /// <summary>agent → hub and hub → agent: liveness.</summary>
    public const string Heartbeat = "heartbeat";
    /// <summary>agent → hub: the tunnel handshake listener is ready; hub → agent: session is online.</summary>
    public const string Online = "online";
}

/// <summary>One message on the control channel.</summary>
public sealed record ControlMessage
{
    public required string Type { get; init; }
    public int? Protocol { get; init; }
    public string? Message { get; init; }

    // hello (agent → hub)
    public string? Uuid { get; init; }
    public string? Hostname { get; init; }
    public string? Platform { get; init; }
    public string? Username { get; init; }
    public string? AgentVersion { get; init; }
    public string[]? Capabilities { get; init; }
    public string? DisplayName { get; init; }
    public string? Purpose { get; init; }
    public string[]? Tags { get; init; }
    /// <summary>
    /// hello: the port sshd opened for the reverse forward, null when it refused the forward. reconnect: the one port
    /// this key may forward on the server (the agent asks for exactly that port from then on).
    /// </summary>
    public int? TunnelPort { get; init; }
    /// <summary>hello: the port the agent asked sshd for; null when it did not know its port yet (it asked for none).</summary>
    public int? RequestedTunnelPort { get; init; }

    // welcome (hub → agent)
    /// <summary>Base64 of the 32-byte per-session secret. Never logged.</summary>
    public string? SessionSecret { get; init; }
    public SessionSettings? Settings { get; init; }
    /// <summary>The session's id; the gate keeps it (with the uuid) to re-attach the session to a restarted hub.</summary>
    public long? SessionId { get; init; }

    // pending / refused / reconnect
    public int? RetryAfterSeconds { get; init; }

    // heartbeat
    public long? Sequence { get; init; }
}

/// <summary>Server-side settings the hub sends with the welcome.</summary>
public sealed record SessionSettings
{
    /// <summary>Server-side allowed paths for this client; null means unrestricted.</summary>
    public string[]? AllowedPaths { get; init; }
    public int HeartbeatSeconds { get; init; } = 15;
    public long MaxOutputBytes { get; init; } = 1024 * 1024;
}

// ---------------------------------------------------------------------------------------------
// Tunnel (operator ↔ agent): handshake, then requests and responses.
// ---------------------------------------------------------------------------------------------

/// <summary>
/// agent → operator: first frame of every tunnel connection. Any local user can connect to a tunnel port, so it carries
/// only a nonce: no uuid, no version, nothing about the agent until the peer has proven the session secret.
/// </summary>
public sealed record HandshakeChallenge
{
    /// <summary>Base64 of 32 random bytes.</summary>
    public required string AgentNonce { get; init; }
}

/// <summary>
/// operator → agent: the operator's nonce and its proof of the session secret, and the server-side policy as the
/// registry holds it at this moment (so an edit applies to the next request on a live session, not after a reconnect).
/// </summary>
public sealed record HandshakeProof
{
    public required int Protocol { get; init; }
    public required string OperatorNonce { get; init; }
    public required string Proof { get; init; }
    /// <summary>The server's policy for this connection; absent: the one the hub sent in the welcome.</summary>
    public ServerPolicy? Policy { get; init; }
}

/// <summary>The server side of a client's policy; the agent intersects it with its own.</summary>
public sealed record ServerPolicy
{
    /// <summary>Absolute paths the server allows; null: the server does not restrict (the agent's own list applies).</summary>
    public string[]? AllowedPaths { get; init; }
}

/// <summary>
/// agent → operator: the agent's proof and who it is (only to a peer that proved the secret), or the reason the
/// connection is closed.
/// </summary>
public sealed record HandshakeResult
{
    public required bool Ok { get; init; }
    public string? Proof { get; init; }
    public string? Error { get; init; }
    public string? Uuid { get; init; }
    public string? AgentVersion { get; init; }
}

/// <summary>A request on a tunnel connection.</summary>
public sealed record RpcRequest
{
    public required long Id { get; init; }
    public required string Method { get; init; }
    public JsonElement? Params { get; init; }
}

/// <summary>A response: exactly one of Result or Error is set.</summary>
public sealed record RpcResponse
{
    public required long Id { get; init; }
    public JsonElement? Result { get; init; }
    public RpcError? Error { get; init; }
}

/// <summary>An error answer. Codes are listed in <see cref="RpcErrorCodes"/>.</summary>
public sealed record RpcError
{
    public required int Code { get; init; }
    public required string Message { get; init; }
    public JsonElement? Data { get; init; }
}

/// <summary>
/// The documented error code table of the tunnel protocol. The JSON-RPC codes keep their meaning;
/// the product's own codes are positive.
/// </summary>
public static class RpcErrorCodes
{
    public const int ParseError = -32700;
    public const int InvalidRequest = -32600;
    public const int MethodNotFound = -32601;
    public const int InvalidParams = -32602;
    public const int Internal = -32603;
    public const int PathDenied = 1001;
    public const int NotFound = 1002;
    public const int TooLarge = 1003;
    public const int Timeout = 1004;
    public const int RateLimited = 1005;
    public const int Busy = 1006;

    /// <summary>Stable name of a code (PATH_DENIED, …), used in errors on every surface.</summary>
    public static string Name(int code) => code switch
    {
        ParseError => "PARSE_ERROR",
        InvalidRequest => "INVALID_REQUEST",
        MethodNotFound => "METHOD_NOT_FOUND",
        InvalidParams => "INVALID_PARAMS",
        Internal => "INTERNAL",
        PathDenied => "PATH_DENIED",
        NotFound => "NOT_FOUND",
        TooLarge => "TOO_LARGE",
        Timeout => "TIMEOUT",
        RateLimited => "RATE_LIMITED",
        Busy => "BUSY",
        FileLimits.ChecksumMismatch => "CHECKSUM_MISMATCH",
        _ => "ERROR",
    };
}

/// <summary>Method names served by the agent.</summary>
public static class RpcMethods
{
    public const string Heartbeat = "heartbeat";
    public const string RunCommand = "run_command";
}

/// <summary>Parameters of <c>run_command</c>.</summary>
public sealed record RunCommandParams
{
    public required string Cmd { get; init; }
    public string? Cwd { get; init; }
    /// <summary>Seconds, 1–3600, default 300.</summary>
    public int? TimeoutS { get; init; }
    /// <summary>Per-stream cap in bytes; the agent's configured cap applies when absent.</summary>
    public long? MaxOutputBytes { get; init; }
    public Dictionary<string, string>? Env { get; init; }
    public string? Stdin { get; init; }
    /// <summary>sh, bash, powershell, pwsh or cmd (<see cref="CommandShells"/>); default per platform.</summary>
    public string? Shell { get; init; }
}

/// <summary>Result of <c>run_command</c>. A non-zero exit is a result, not an error.</summary>
public sealed record RunCommandResult
{
    public required int ExitCode { get; init; }
    public required string Stdout { get; init; }
    public required string Stderr { get; init; }
    public required long DurationMs { get; init; }
    public required bool TimedOut { get; init; }
    /// <summary>True when either stream exceeded the cap and was cut.</summary>
    public required bool Truncated { get; init; }
    public long StdoutBytes { get; init; }
    public long StderrBytes { get; init; }
}

/// <summary>Result of <c>heartbeat</c>.</summary>
public sealed record HeartbeatResult
{
    public required string Uuid { get; init; }
    public required string AgentVersion { get; init; }
    public required long UptimeS { get; init; }
    public required DateTimeOffset Time { get; init; }
}

/// <summary>Limits of <c>run_command</c>, shared so every surface validates the same way.</summary>
public static class CommandLimits
{
    public const int DefaultTimeoutSeconds = 300;
    public const int MinTimeoutSeconds = 1;
    public const int MaxTimeoutSeconds = 3600;
    public const long DefaultMaxOutputBytes = 1024 * 1024;

    /// <summary>Longest command line an operator may send, in characters (every surface; a script belongs in a file).</summary>
    public const int MaxCommandLength = 64 * 1024;

    /// <summary>Longest text fed to a command's standard input, in characters.</summary>
    public const int MaxStdinLength = 4 * 1024 * 1024;

    /// <summary>Longest working directory path, in characters.</summary>
    public const int MaxPathLength = 4096;

    /// <summary>Most environment variables one command may be given.</summary>
    public const int MaxEnvironmentVariables = 256;
}

/// <summary>Source-generated JSON metadata: snake_case names, nulls omitted, AOT-safe.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(GateRequest))]
[JsonSerializable(typeof(GateKeysResponse))]
[JsonSerializable(typeof(GateResumeResponse))]
[JsonSerializable(typeof(ControlMessage))]
[JsonSerializable(typeof(SessionSettings))]
[JsonSerializable(typeof(HandshakeChallenge))]
[JsonSerializable(typeof(ServerPolicy))]
[JsonSerializable(typeof(HandshakeProof))]
[JsonSerializable(typeof(HandshakeResult))]
[JsonSerializable(typeof(RpcRequest))]
[JsonSerializable(typeof(RpcResponse))]
[JsonSerializable(typeof(RpcError))]
[JsonSerializable(typeof(RunCommandParams))]
[JsonSerializable(typeof(RunCommandResult))]
[JsonSerializable(typeof(HeartbeatResult))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(string[]))]
[JsonSerializable(typeof(Dictionary<string, string>))]
public sealed partial class ProtocolJson : JsonSerializerContext;
