using System.Buffers.Binary;

namespace EtPhoneHome.Protocol;

/// <summary>
/// Length-prefixed frames: a 4-byte big-endian length followed by that many bytes of UTF-8 JSON.
/// Used on the control channel (agent ↔ gate ↔ hub) and on tunnel connections (operator ↔ agent).
/// </summary>
public static class Framing
{
    /// <summary>Hard upper bound of any JSON frame; larger frames are refused before allocation.</summary>
    public const int MaxFrameBytes = 16 * 1024 * 1024;

    /// <summary>Writes one frame and flushes.</summary>
    public static async Task WriteFrameAsync(Stream stream, ReadOnlyMemory<byte> payload, CancellationToken ct = default)
    {
        if (payload.Length > MaxFrameBytes)
        {
            throw new ProtocolException(ProtocolError.FrameTooLarge, $"frame of {payload.Length} bytes exceeds the maximum of {MaxFrameBytes} bytes");
        }

        var buffer = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(buffer, payload.Length);
        payload.Span.CopyTo(buffer.AsSpan(4));
        await stream.WriteAsync(buffer, ct).ConfigureAwait(false);
        await stream.FlushAsync(ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Reads one frame. Returns null on a clean end of stream before any byte of a frame;
    /// throws <see cref="ProtocolException"/> on a truncated or oversized frame.
    /// </summary>
    public static async Task<byte[]?> ReadFrameAsync(Stream stream, int maxBytes = MaxFrameBytes, CancellationToken ct = default)
    {
        var header = new byte[4];
        var got = await ReadAtLeastAsync(stream, header, ct).ConfigureAwait(false);
        if (got == 0)
        {
            return null;
        }

        if (got < 4)
        {
            throw new ProtocolException(ProtocolError.Truncated, "connection closed inside a frame header");
        }

        var length = BinaryPrimitives.ReadInt32BigEndian(header);
        if (length < 0 || length > maxBytes)
        {
            throw new ProtocolException(ProtocolError.FrameTooLarge, $"frame of {(uint)length} bytes exceeds the maximum of {maxBytes} bytes");
        }

        var payload = new byte[length];
        if (await ReadAtLeastAsync(stream, payload, ct).ConfigureAwait(false) < length)
        {
            throw new ProtocolException(ProtocolError.Truncated, "connection closed inside a frame");
        }

        return payload;
    }

    private static async Task<int> ReadAtLeastAsync(Stream stream, byte[] buffer, CancellationToken ct)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(total), ct).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
