using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace EtPhoneHome.Protocol;

/// <summary>Typed frame I/O over <see cref="Framing"/> with the source-generated serializer.</summary>
public static class Wire
{
    /// <summary>Serializes a message and writes it as one frame.</summary>
    public static Task WriteAsync<T>(Stream stream, T message, JsonTypeInfo<T> type, CancellationToken ct = default)
        => Framing.WriteFrameAsync(stream, JsonSerializer.SerializeToUtf8Bytes(message, type), ct);

    /// <summary>Reads one frame and deserializes it; null on clean end of stream.</summary>
    public static Task<T?> ReadAsync<T>(Stream stream, JsonTypeInfo<T> type, int maxBytes = Framing.MaxFrameBytes, CancellationToken ct = default)
        where T : class
        => ReadAsync(stream, type, maxBytes, allocateAsReceived: false, ct);

    /// <summary>Reads one frame as <typeparamref name="T"/>; see <see cref="Framing.ReadFrameAsync(Stream, int, bool, CancellationToken)"/>.</summary>
    public static async Task<T?> ReadAsync<T>(Stream stream, JsonTypeInfo<T> type, int maxBytes, bool allocateAsReceived, CancellationToken ct)
        where T : class
    {
        var frame = await Framing.ReadFrameAsync(stream, maxBytes, allocateAsReceived, ct).ConfigureAwait(false);
        if (frame is null)
        {
            return null;
        }

        return Deserialize(frame, type);
    }

    /// <summary>Deserializes a frame, turning any JSON fault into <see cref="ProtocolError.Malformed"/>.</summary>
    public static T Deserialize<T>(ReadOnlySpan<byte> frame, JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            return JsonSerializer.Deserialize(frame, type)
                ?? throw new ProtocolException(ProtocolError.Malformed, $"expected a {typeof(T).Name}, got null");
        }
        catch (JsonException ex)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"malformed {typeof(T).Name}: {ex.Message}", ex);
        }
    }

    /// <summary>Converts a typed value to a JsonElement (for RPC params and results).</summary>
    public static JsonElement ToElement<T>(T value, JsonTypeInfo<T> type)
        => JsonSerializer.SerializeToElement(value, type);

    /// <summary>Reads typed params or result from a JsonElement; Malformed on mismatch.</summary>
    public static T FromElement<T>(JsonElement? element, JsonTypeInfo<T> type)
        where T : class
    {
        if (element is not { ValueKind: JsonValueKind.Object } e)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"expected a {typeof(T).Name} object");
        }

        try
        {
            return e.Deserialize(type) ?? throw new ProtocolException(ProtocolError.Malformed, $"expected a {typeof(T).Name}");
        }
        catch (JsonException ex)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"invalid {typeof(T).Name}: {ex.Message}", ex);
        }
    }
}
