using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Protocol;

/// <summary>
/// Mutual challenge–response over the per-session secret. Each side proves it knows the secret with
/// HMAC-SHA256 over both fresh nonces and a side label; the secret itself never crosses the wire, and a
/// connection that fails is closed before any request is read.
/// </summary>
public static class TunnelHandshake
{
    /// <summary>Size of the session secret and of each nonce.</summary>
    public const int SecretBytes = 32;

    /// <summary>Upper bound of a handshake frame; a peer sending more is not speaking this protocol.</summary>
    public const int MaxHandshakeFrameBytes = 4096;

    /// <summary>
    /// Upper bound of the operator's proof, which carries the server policy. An unauthenticated peer may send this much
    /// per connection before it is refused, so it stays small: the registry bounds allowed_paths to 16 Ki characters in all,
    /// which fits even with every character JSON-escaped (6 bytes each).
    /// </summary>
    public const int MaxProofFrameBytes = 128 * 1024;

    private static readonly byte[] OperatorLabel = Encoding.ASCII.GetBytes("eph-tunnel-v1/operator");
    private static readonly byte[] AgentLabel = Encoding.ASCII.GetBytes("eph-tunnel-v1/agent");

    /// <summary>Creates a new random session secret.</summary>
    public static byte[] NewSecret() => RandomNumberGenerator.GetBytes(SecretBytes);

    /// <summary>
    /// Agent side. Returns the operator's proof (with the server policy it sent) when the operator proved the secret;
    /// throws <see cref="ProtocolException"/> otherwise (after telling the peer why, without detail an attacker could use).
    /// </summary>
    public static async Task<HandshakeProof> AcceptAsync(Stream stream, byte[] secret, string? uuid, string agentVersion, CancellationToken ct)
    {
        var agentNonce = RandomNumberGenerator.GetBytes(SecretBytes);
        // The first frame: a nonce and nothing else (an unauthenticated peer learns no uuid, no version).
        await Wire.WriteAsync(stream, new HandshakeChallenge
        {
            AgentNonce = Convert.ToBase64String(agentNonce),
        }, ProtocolJson.Default.HandshakeChallenge, ct).ConfigureAwait(false);

        // The peer is not authenticated yet: the buffer grows with the bytes it sends, not with the length it announces.
        var proof = await Wire.ReadAsync(stream, ProtocolJson.Default.HandshakeProof, MaxProofFrameBytes, allocateAsReceived: true, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolError.Truncated, "peer closed the connection during the handshake");

        if (proof.Protocol != ProtocolInfo.Version)
        {
            var message = $"protocol version mismatch: agent speaks {ProtocolInfo.Version}, operator speaks {proof.Protocol}";
            await TryWriteResultAsync(stream, new HandshakeResult { Ok = false, Error = message }, ct).ConfigureAwait(false);
            throw new ProtocolException(ProtocolError.VersionMismatch, message);
        }

        var operatorNonce = DecodeNonce(proof.OperatorNonce);
        var claimed = DecodeBase64(proof.Proof);
        var expected = Mac(secret, OperatorLabel, agentNonce, operatorNonce ?? []);
        if (operatorNonce is null || claimed is null || !CryptographicOperations.FixedTimeEquals(claimed, expected))
        {
            await TryWriteResultAsync(stream, new HandshakeResult { Ok = false, Error = "authentication failed" }, ct).ConfigureAwait(false);
            throw new ProtocolException(ProtocolError.AuthenticationFailed, "tunnel peer failed the session-secret challenge");
        }

        await Wire.WriteAsync(stream, new HandshakeResult
        {
            Ok = true,
            Proof = Convert.ToBase64String(Mac(secret, AgentLabel, operatorNonce, agentNonce)),
            Uuid = uuid,
            AgentVersion = agentVersion,
        }, ProtocolJson.Default.HandshakeResult, ct).ConfigureAwait(false);
        return proof;
    }

    /// <summary>
    /// Operator side. Returns the agent's answer (uuid, version) once both sides are proven; the protocol version is
    /// checked by the agent, which names both versions when they differ. Throws <see cref="ProtocolException"/> on any
    /// failure.
    /// </summary>
    public static async Task<HandshakeResult> ConnectAsync(Stream stream, byte[] secret, CancellationToken ct, ServerPolicy? policy = null)
    {
        var challenge = await Wire.ReadAsync(stream, ProtocolJson.Default.HandshakeChallenge, MaxHandshakeFrameBytes, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolError.Truncated, "agent closed the tunnel before the handshake");

        var agentNonce = DecodeNonce(challenge.AgentNonce)
            ?? throw new ProtocolException(ProtocolError.Malformed, "agent sent an invalid nonce");
        var operatorNonce = RandomNumberGenerator.GetBytes(SecretBytes);
        await Wire.WriteAsync(stream, new HandshakeProof
        {
            Protocol = ProtocolInfo.Version,
            OperatorNonce = Convert.ToBase64String(operatorNonce),
            Proof = Convert.ToBase64String(Mac(secret, OperatorLabel, agentNonce, operatorNonce)),
            Policy = policy,
        }, ProtocolJson.Default.HandshakeProof, ct).ConfigureAwait(false);

        var result = await Wire.ReadAsync(stream, ProtocolJson.Default.HandshakeResult, MaxHandshakeFrameBytes, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolError.Truncated,
                "agent closed the tunnel during the handshake without an answer (it restarted, or had too many connections in their handshake)");
        if (!result.Ok)
        {
            // A wrong secret is always answered "authentication failed"; an agent that gave up waiting says so.
            var kind = result.Error?.StartsWith("protocol version", StringComparison.Ordinal) == true
                ? ProtocolError.VersionMismatch
                : result.Error?.StartsWith(TimedOutReason, StringComparison.Ordinal) == true
                    ? ProtocolError.Timeout
                    : ProtocolError.AuthenticationFailed;
            throw new ProtocolException(kind, $"agent refused the tunnel: {result.Error ?? "no reason given"}");
        }

        var agentProof = DecodeBase64(result.Proof);
        var expected = Mac(secret, AgentLabel, operatorNonce, agentNonce);
        if (agentProof is null || !CryptographicOperations.FixedTimeEquals(agentProof, expected))
        {
            throw new ProtocolException(ProtocolError.AuthenticationFailed, "the agent on this tunnel could not prove the session secret");
        }

        return result;
    }

    private static byte[] Mac(byte[] secret, byte[] label, byte[] first, byte[] second)
    {
        var data = new byte[label.Length + first.Length + second.Length];
        label.CopyTo(data, 0);
        first.CopyTo(data, label.Length);
        second.CopyTo(data, label.Length + first.Length);
        return HMACSHA256.HashData(secret, data);
    }

    private static byte[]? DecodeNonce(string? value)
    {
        var bytes = DecodeBase64(value);
        return bytes is { Length: SecretBytes } ? bytes : null;
    }

    private static byte[]? DecodeBase64(string? value)
    {
        if (string.IsNullOrEmpty(value) || value.Length > 128)
        {
            return null;
        }

        var buffer = new byte[96];
        return Convert.TryFromBase64String(value, buffer, out var n) ? buffer[..n] : null;
    }

    /// <summary>The reason an agent gives when the operator's proof did not arrive within its handshake time.</summary>
    public const string TimedOutReason = "handshake not completed in time";

    /// <summary>
    /// Agent side, after its own handshake time ran out: tells the peer so (best effort, within one second), so that
    /// an operator whose proof comes late learns the agent gave up waiting — not that its secret was wrong.
    /// </summary>
    public static async Task TryRefuseLateAsync(Stream stream, TimeSpan allowed)
    {
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(1));
        try
        {
            await TryWriteResultAsync(stream, new HandshakeResult
            {
                Ok = false,
                Error = string.Create(CultureInfo.InvariantCulture, $"{TimedOutReason} (the agent waits {allowed.TotalSeconds:0.#} s for the operator's proof)"),
            }, limit.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or NotSupportedException)
        {
            // Nobody to tell.
        }
    }

    private static async Task TryWriteResultAsync(Stream stream, HandshakeResult result, CancellationToken ct)
    {
        try
        {
            await Wire.WriteAsync(stream, result, ProtocolJson.Default.HandshakeResult, ct).ConfigureAwait(false);
        }
        catch (IOException)
        {
            // The peer is gone; the refusal is still final.
        }
    }
}
