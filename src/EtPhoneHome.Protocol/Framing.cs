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
    public static Task<byte[]?> ReadFrameAsync(Stream stream, int maxBytes = MaxFrameBytes, CancellationToken ct = default)
        => ReadFrameAsync(stream, maxBytes, allocateAsReceived: false, ct);

    /// <summary>
    /// Reads one frame; with <paramref name="allocateAsReceived"/> the buffer starts small and grows (doubling) only as
    /// the frame's bytes arrive, so a peer that announces a large frame and sends nothing costs a few KiB, not the
    /// announced length. For frames from peers that have not authenticated.
    /// </summary>
    public static Task<byte[]?> ReadFrameAsync(Stream stream, int maxBytes, bool allocateAsReceived, CancellationToken ct)
        => ReadFrameAsync(stream, maxBytes, allocateAsReceived ? GrowFromBytes : int.MaxValue, ct);

    /// <summary>
    /// Reads one frame; a frame longer than <paramref name="exactUpTo"/> bytes is read into a buffer that grows with the
    /// bytes that arrive (see <see cref="ReadFrameAsync(Stream, int, bool, CancellationToken)"/>), a shorter one into a
    /// buffer of its announced length at once.
    /// </summary>
    public static async Task<byte[]?> ReadFrameAsync(Stream stream, int maxBytes, int exactUpTo, CancellationToken ct)
    {
        var length = await ReadLengthAsync(stream, maxBytes, ct).ConfigureAwait(false);
        if (length < 0)
        {
            return null;
        }

        if (length > Math.Max(exactUpTo, GrowFromBytes))
        {
            return await ReadGrowingAsync(stream, length, ct).ConfigureAwait(false);
        }

        var payload = new byte[length];
        if (await ReadAtLeastAsync(stream, payload, ct).ConfigureAwait(false) < length)
        {
            throw new ProtocolException(ProtocolError.Truncated, "connection closed inside a frame");
        }

        return payload;
    }

    /// <summary>First buffer of a frame read with allocation as received.</summary>
    public const int GrowFromBytes = 4096;

    /// <summary>
    /// Reads a frame's 4-byte length: -1 on a clean end of stream before it; <see cref="ProtocolException"/> when the
    /// stream ends inside it or the length is negative or above <paramref name="maxBytes"/> (before anything is allocated).
    /// </summary>
    internal static async Task<int> ReadLengthAsync(Stream stream, int maxBytes, CancellationToken ct)
    {
        var header = new byte[4];
        var got = await ReadAtLeastAsync(stream, header, ct).ConfigureAwait(false);
        if (got == 0)
        {
            return -1;
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

        return length;
    }

    internal static async Task<byte[]> ReadGrowingAsync(Stream stream, int length, CancellationToken ct)
    {
        var buffer = new byte[GrowFromBytes];
        var total = 0;
        while (total < length)
        {
            if (total == buffer.Length)
            {
                Array.Resize(ref buffer, (int)Math.Min(length, 2L * buffer.Length));
            }

            var n = await stream.ReadAsync(buffer.AsMemory(total, buffer.Length - total), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new ProtocolException(ProtocolError.Truncated, "connection closed inside a frame");
            }

            total += n;
        }

        return buffer;
    }

    private static Task<int> ReadAtLeastAsync(Stream stream, byte[] buffer, CancellationToken ct) => ReadAtLeastAsync(stream, buffer.AsMemory(), ct);

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends; how many bytes were read.</summary>
    internal static async Task<int> ReadAtLeastAsync(Stream stream, Memory<byte> buffer, CancellationToken ct)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer[total..], ct).ConfigureAwait(false);
            if (n == 0)
            {
                break;
            }

            total += n;
        }

        return total;
    }
}
