using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtPhoneHome.Protocol;

/// <summary>
/// The operator service's frames, on the framed protocol (a 4-byte big-endian length, then the payload). The payload's
/// first byte says what follows: <see cref="Message"/> (UTF-8 JSON, an <see cref="OperatorMessage"/>) or
/// <see cref="Data"/> (a 4-byte big-endian request id, then raw file bytes). Many requests are in flight on one
/// connection, each named by the id its caller chose; bytes travel raw, without base64, under credit-based flow control.
/// </summary>
public static class OperatorFrames
{
    public const byte Message = 1;
    public const byte Data = 2;

    /// <summary>Largest raw chunk of a data frame.</summary>
    public const int MaxDataBytes = 1024 * 1024;

    /// <summary>
    /// The chunk senders use: a frame's payload (kind, id, bytes) then fills exactly 1 MiB, the size of a pooled buffer
    /// (see <see cref="ReadPooledAsync"/>); a chunk of <see cref="MaxDataBytes"/> would take a buffer of 2 MiB.
    /// </summary>
    public const int PreferredDataBytes = MaxDataBytes - 5;

    /// <summary>Largest JSON message (a command's stdin may be 4 Mi characters; outputs are capped by the agents).</summary>
    public const int MaxMessageBytes = 12 * 1024 * 1024;

    /// <summary>Largest frame either side accepts; longer ones are refused before allocation.</summary>
    public const int MaxFrameBytes = MaxMessageBytes + 1;

    /// <summary>Writes one JSON message as one frame.</summary>
    public static Task WriteMessageAsync(Stream stream, OperatorMessage message, CancellationToken ct = default) =>
        WriteFrameAsync(stream, EncodeMessage(message), ct);

    /// <summary>
    /// One JSON message as the whole frame it is written as (length prefix included): a sender that must know what the
    /// frame will cost the receiver (<see cref="OperatorLimits.MaxArgumentBytesInFlight"/> counts the payload, its
    /// length less 4) encodes it once, then writes it with <see cref="WriteFrameAsync"/>.
    /// </summary>
    public static byte[] EncodeMessage(OperatorMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var json = JsonSerializer.SerializeToUtf8Bytes(message, OperatorProtocolJson.Default.OperatorMessage);
        if (json.Length > MaxMessageBytes)
        {
            throw new ProtocolException(ProtocolError.FrameTooLarge, $"message of {json.Length} bytes exceeds the maximum of {MaxMessageBytes} bytes");
        }

        var frame = new byte[4 + 1 + json.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, 1 + json.Length);
        frame[4] = Message;
        json.CopyTo(frame.AsSpan(5));
        return frame;
    }

    /// <summary>Writes a frame made by <see cref="EncodeMessage"/>.</summary>
    public static Task WriteFrameAsync(Stream stream, byte[] frame, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(frame);
        return WriteAsync(stream, frame, ct);
    }

    /// <summary>Writes one chunk of bytes for request <paramref name="id"/> as one frame.</summary>
    public static Task WriteDataAsync(Stream stream, long id, ReadOnlyMemory<byte> data, CancellationToken ct = default)
    {
        if (data.Length > MaxDataBytes)
        {
            throw new ProtocolException(ProtocolError.FrameTooLarge, $"data chunk of {data.Length} bytes exceeds the maximum of {MaxDataBytes} bytes");
        }

        if (id is < 0 or > uint.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(id));
        }

        return WriteDataFrameAsync(stream, (uint)id, data, ct);
    }

    private static async Task WriteDataFrameAsync(Stream stream, uint id, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        // The header, then the caller's bytes as they are: no copy of up to a mebibyte per frame.
        var header = new byte[9];
        BinaryPrimitives.WriteInt32BigEndian(header, 1 + 4 + data.Length);
        header[4] = Data;
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(5), id);
        await stream.WriteAsync(header, ct).ConfigureAwait(false);
        await stream.WriteAsync(data, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
    }

    private static async Task WriteAsync(Stream stream, byte[] frame, CancellationToken ct)
    {
        await stream.WriteAsync(frame, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads one frame: null on a clean end of stream; <see cref="ProtocolException"/> for a truncated, oversized,
    /// empty, unknown or malformed frame (the connection cannot be trusted past it and is closed by the caller).
    /// </summary>
    public static async Task<OperatorFrame?> ReadAsync(Stream stream, int maxBytes = MaxFrameBytes, CancellationToken ct = default)
    {
        // Frames up to a data frame's size are read at their announced length; longer ones (messages up to 12 MiB) into a
        // buffer that grows with the bytes that arrive, so a peer that announces much and sends little costs little.
        var payload = await Framing.ReadFrameAsync(stream, maxBytes, exactUpTo: MaxDataBytes + 5, ct).ConfigureAwait(false);
        return payload is null ? null : Parse(payload);
    }

    /// <summary>
    /// Reads one frame as <see cref="ReadAsync"/> does (the same limits and refusals), with a data frame's bytes in a
    /// buffer rented from the shared pool at the frame's announced length (at most <see cref="MaxDataBytes"/> + 5): the
    /// one who consumes them hands the buffer back with <see cref="ReturnData"/> (or drops it). Longer frames, which
    /// can only be messages, are read into a buffer that grows with the bytes that arrive. Messages are parsed and
    /// their buffer returned here. One rented buffer per connection at a time: no allocation of a mebibyte per chunk.
    /// </summary>
    public static async Task<OperatorFrame?> ReadPooledAsync(Stream stream, int maxBytes = MaxFrameBytes, CancellationToken ct = default)
    {
        var length = await Framing.ReadLengthAsync(stream, maxBytes, ct).ConfigureAwait(false);
        if (length < 0)
        {
            return null;
        }

        if (length > MaxDataBytes + 5)
        {
            return Parse(await Framing.ReadGrowingAsync(stream, length, ct).ConfigureAwait(false));
        }

        var buffer = ArrayPool<byte>.Shared.Rent(Math.Max(length, 1));
        var handedOut = false;
        try
        {
            if (await Framing.ReadAtLeastAsync(stream, buffer.AsMemory(0, length), ct).ConfigureAwait(false) < length)
            {
                throw new ProtocolException(ProtocolError.Truncated, "connection closed inside a frame");
            }

            var frame = Parse(buffer, length);
            handedOut = frame.IsData;
            return frame;
        }
        finally
        {
            if (!handedOut)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>
    /// Hands the buffer of a data frame read by <see cref="ReadPooledAsync"/> back to the pool, once its bytes were used;
    /// exactly once per frame, and never for the bytes of a frame read otherwise.
    /// </summary>
    public static void ReturnData(ReadOnlyMemory<byte> data)
    {
        if (MemoryMarshal.TryGetArray(data, out var segment) && segment.Array is { Length: > 0 } array)
        {
            ArrayPool<byte>.Shared.Return(array);
        }
    }

    /// <summary>Parses a frame's payload (see <see cref="ReadAsync"/>).</summary>
    public static OperatorFrame Parse(byte[] payload)
    {
        ArgumentNullException.ThrowIfNull(payload);
        return Parse(payload, payload.Length);
    }

    /// <summary>Parses the payload in the first <paramref name="length"/> bytes of <paramref name="buffer"/>; a data frame's bytes stay in it.</summary>
    private static OperatorFrame Parse(byte[] buffer, int length)
    {
        var payload = buffer.AsSpan(0, length);
        if (payload.Length == 0)
        {
            throw new ProtocolException(ProtocolError.Malformed, "empty operator frame");
        }

        switch (payload[0])
        {
            case Message:
                var message = Wire.Deserialize(payload[1..], OperatorProtocolJson.Default.OperatorMessage);
                if (string.IsNullOrEmpty(message.Type))
                {
                    throw new ProtocolException(ProtocolError.Malformed, "operator message without a type");
                }

                return new OperatorFrame(message.Id, message, default) { Length = length };
            case Data:
                if (payload.Length < 5)
                {
                    throw new ProtocolException(ProtocolError.Malformed, "data frame without a request id");
                }

                if (payload.Length - 5 > MaxDataBytes)
                {
                    throw new ProtocolException(ProtocolError.FrameTooLarge, $"data chunk of {payload.Length - 5} bytes exceeds the maximum of {MaxDataBytes} bytes");
                }

                return new OperatorFrame(BinaryPrimitives.ReadUInt32BigEndian(payload[1..]), null, buffer.AsMemory(5, length - 5)) { Length = length };
            default:
                throw new ProtocolException(ProtocolError.Malformed, $"unknown operator frame kind {payload[0]}");
        }
    }
}

/// <summary>One frame: a message, or a chunk of bytes for request <see cref="Id"/>.</summary>
public readonly record struct OperatorFrame(long Id, OperatorMessage? Message, ReadOnlyMemory<byte> Data)
{
    public bool IsData => Message is null;

    /// <summary>The frame's payload length (kind byte included), as it came on the wire.</summary>
    public int Length { get; init; }
}

/// <summary>The message types of <see cref="OperatorMessage.Type"/>.</summary>
public static class OperatorMessageTypes
{
    /// <summary>Client → server: start request <c>id</c> running <c>op</c> with <c>body</c> as its arguments.</summary>
    public const string Call = "call";

    /// <summary>Client → server: stop request <c>id</c> (Ctrl+C); the server answers it with an error "cancelled" or its result.</summary>
    public const string Cancel = "cancel";

    /// <summary>Server → client: one streamed element of request <c>id</c> (a fan-out result, a search page).</summary>
    public const string Item = "item";

    /// <summary>Server → client: progress of request <c>id</c> (bytes moved, targets done).</summary>
    public const string Progress = "progress";

    /// <summary>Server → client: request <c>id</c> ended well; <c>body</c> is its result. Nothing more comes for it.</summary>
    public const string Result = "result";

    /// <summary>Server → client: request <c>id</c> failed; <c>error</c> says why. Nothing more comes for it.</summary>
    public const string Error = "error";

    /// <summary>Either way: the receiver may take <c>bytes</c> more data bytes for request <c>id</c>.</summary>
    public const string Credit = "credit";

    /// <summary>Server → client (uploads): send the file's bytes from <c>offset</c>, within the credit given.</summary>
    public const string Send = "send";

    /// <summary>Client → server: the bytes of request <c>id</c> ended; <c>sha256</c> is the whole file's hash.</summary>
    public const string End = "end";
}

/// <summary>The JSON message of an operator frame.</summary>
public sealed class OperatorMessage
{
    [JsonPropertyName("t")]
    public string Type { get; set; } = "";

    [JsonPropertyName("id")]
    public long Id { get; set; }

    [JsonPropertyName("op")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Op { get; set; }

    [JsonPropertyName("body")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public JsonElement? Body { get; set; }

    [JsonPropertyName("error")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public OperatorError? Error { get; set; }

    [JsonPropertyName("offset")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Offset { get; set; }

    [JsonPropertyName("bytes")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public long? Bytes { get; set; }

    [JsonPropertyName("sha256")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Sha256 { get; set; }

    /// <summary>
    /// On a call from a hub relaying for an operator (and only there): whom the call is for. The receiving hub acts as
    /// that operator with the role the registry gives the operator now; from anyone but a hub the call is refused.
    /// </summary>
    [JsonPropertyName("for")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public RelayOrigin? For { get; set; }
}

/// <summary>The operator a hub relays a call for: the name, the surface they used and where they connected from.</summary>
public sealed class RelayOrigin
{
    [JsonPropertyName("operator")]
    public string Operator { get; set; } = "";

    [JsonPropertyName("surface")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Surface { get; set; }

    [JsonPropertyName("source")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Source { get; set; }
}

/// <summary>Why a request failed: a stable code, a message for people, and for a refusal the role it needs.</summary>
public sealed class OperatorError
{
    [JsonPropertyName("code")]
    public string Code { get; set; } = "";

    [JsonPropertyName("message")]
    public string Message { get; set; } = "";

    /// <summary>For <c>FORBIDDEN</c>: the least role that may do it.</summary>
    [JsonPropertyName("needs")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Needs { get; set; }

    /// <summary>For <c>NOT_FOUND</c>: the literal names that matched nothing.</summary>
    [JsonPropertyName("names")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public IReadOnlyList<string>? Names { get; set; }

    /// <summary>For <c>INVALID_ARGUMENT</c>: the field at fault.</summary>
    [JsonPropertyName("field")]
    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public string? Field { get; set; }
}

/// <summary>The stable error codes of the operator service.</summary>
public static class OperatorErrorCodes
{
    public const string Forbidden = "FORBIDDEN";
    public const string NotFound = "NOT_FOUND";
    public const string InvalidArgument = "INVALID_ARGUMENT";
    public const string UnknownOperation = "UNKNOWN_OPERATION";
    public const string Busy = "BUSY";
    public const string Cancelled = "CANCELLED";
    public const string Failed = "FAILED";
    public const string RateLimited = "RATE_LIMITED";
    public const string ProtocolViolation = "PROTOCOL";
    public const string Internal = "INTERNAL";
    public const string ConnectionLost = "CONNECTION_LOST";

    /// <summary>The server lacks what the operation needs (the exchange's bucket and credentials).</summary>
    public const string NotConfigured = "NOT_CONFIGURED";
}

[JsonSerializable(typeof(OperatorMessage))]
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.Never)]
internal sealed partial class OperatorProtocolJson : JsonSerializerContext;
