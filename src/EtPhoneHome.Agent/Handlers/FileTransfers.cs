using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using System.Security.Cryptography;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// Streaming transfers on a tunnel connection, raw bytes between two JSON frames:
/// <list type="bullet">
/// <item><c>upload</c>: request {path, size, resume} → response {offset} → <c>size - offset</c> raw bytes →
/// trailer frame {sha256} → response {path, size, sha256} after verification and an atomic rename (or CHECKSUM_MISMATCH).</item>
/// <item><c>download</c>: request {path, offset} → response {size, offset} → <c>size - offset</c> raw bytes → trailer frame {sha256}.</item>
/// </list>
/// Both sides hash the whole file while streaming (the prefix a resume skips is hashed from the partial file), so the
/// check is end to end without a second read pass. An upload keeps its bytes in <c>.&lt;name&gt;.eph-partial</c> next
/// to the destination until verified; a dropped connection leaves it there for the next attempt to resume from.
/// </summary>
public static class FileTransfers
{
    /// <summary>Size of the copy buffer: large enough that per-chunk costs vanish next to the bytes.</summary>
    public const int BufferSize = 1024 * 1024;

    /// <summary>Least bytes of an upload gathered before they are written and hashed (unless the stream ends first).</summary>
    internal const int MinWriteBytes = 256 * 1024;

    /// <summary>Partial files being written now; a second upload to the same destination is BUSY, not interleaved.</summary>
    private static readonly ConcurrentDictionary<string, bool> ActiveUploads = new(StringComparer.Ordinal);

    public static async Task UploadAsync(RpcRequest request, Stream stream, PathPolicy policy, CancellationToken ct)
    {
        var p = FileRequests.Parse(request.Params, FileJson.Default.UploadParams, "path and size");
        if (p.Size < 0)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture, $"size must be 0 or more (got {p.Size})"));
        }

        if (p.Sha256 is { } expected && (expected.Length != 64 || !expected.All(char.IsAsciiHexDigit)))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "sha256 must be 64 hex digits");
        }

        var mode = FileRequests.ParseMode(p.Mode);
        var target = FileRequests.PrepareDestination(policy, p.Path, p.CreateParents ?? true);
        var partial = Path.Join(Path.GetDirectoryName(target), FileLimits.PartialName(Path.GetFileName(target)));
        if (!ActiveUploads.TryAdd(partial, true))
        {
            throw new RpcFault(RpcErrorCodes.Busy, $"another upload to {PathPolicy.Shorten(target)} is in progress");
        }

        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            FileStream file;
            try
            {
                file = NoFollow.OpenWrite(partial, 0);
            }
            catch (UnauthorizedAccessException)
            {
                throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies writing in {PathPolicy.Shorten(Path.GetDirectoryName(target)!)}");
            }

            var verified = false;
            try
            {
                policy.VerifyOpened(file.SafeFileHandle, partial);
                using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
                var offset = p.Resume == false ? 0 : Math.Min(file.Length, p.Size);
                if (file.Length != offset)
                {
                    file.SetLength(offset); // a fresh start, or a partial longer than the file now announced
                }

                await HashPrefixAsync(partial, offset, hash, buffer, ct).ConfigureAwait(false);
                file.Position = offset;
                await Wire.WriteAsync(stream, Ok(request.Id, Wire.ToElement(new UploadReady { Offset = offset }, FileJson.Default.UploadReady)),
                    ProtocolJson.Default.RpcResponse, ct).ConfigureAwait(false);

                // From here the connection carries raw bytes: any fault that leaves it mid-stream closes it.
                var remaining = p.Size - offset;
                while (remaining > 0)
                {
                    // Whole pieces of at least a quarter mebibyte (a socket read alone returns what one segment train
                    // brought, often 64 KiB): a quarter of the writes and hash calls.
                    var want = (int)Math.Min(BufferSize, remaining);
                    var n = await stream.ReadAtLeastAsync(buffer.AsMemory(0, want), Math.Min(want, MinWriteBytes), throwOnEndOfStream: false, ct).ConfigureAwait(false);
                    if (n == 0)
                    {
                        throw new TransferInterruptedException("the operator closed the connection before the last byte; the partial file is kept for a resume");
                    }

                    file.Write(buffer, 0, n);
                    hash.AppendData(buffer, 0, n);
                    remaining -= n;
                }

                var trailer = await Wire.ReadAsync(stream, FileJson.Default.TransferTrailer, 4096, ct).ConfigureAwait(false)
                    ?? throw new TransferInterruptedException("the connection closed before the checksum trailer");
                var actual = FileRequests.Hex(hash.GetHashAndReset());
                if (!actual.Equals(trailer.Sha256, StringComparison.OrdinalIgnoreCase)
                    || (p.Sha256 is { } announced && !actual.Equals(announced, StringComparison.OrdinalIgnoreCase)))
                {
                    file.Dispose();
                    AtomicFile.TryDelete(partial); // bad bytes are not worth resuming from
                    await Wire.WriteAsync(stream, Error(request.Id, FileLimits.ChecksumMismatch,
                        $"SHA-256 of the received file is {actual}, the sender's is {trailer.Sha256}; nothing was replaced, send it again"),
                        ProtocolJson.Default.RpcResponse, ct).ConfigureAwait(false);
                    return;
                }

                file.Flush(flushToDisk: true);
                AtomicFile.ApplyMode(file, target, mode);
                file.Dispose();
                policy.ResolveForWrite(p.Path); // the destination is checked again right before the rename
                AtomicFile.Commit(partial, target);
                verified = true;
                await Wire.WriteAsync(stream, Ok(request.Id, Wire.ToElement(new UploadResult
                {
                    Path = target,
                    Size = p.Size,
                    Sha256 = actual,
                    ResumedFrom = offset,
                }, FileJson.Default.UploadResult)), ProtocolJson.Default.RpcResponse, ct).ConfigureAwait(false);
            }
            finally
            {
                file.Dispose();
                if (!verified && p.Size == 0)
                {
                    AtomicFile.TryDelete(partial);
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            ActiveUploads.TryRemove(partial, out _);
        }
    }

    public static async Task DownloadAsync(RpcRequest request, Stream stream, PathPolicy policy, CancellationToken ct)
    {
        var p = FileRequests.Parse(request.Params, FileJson.Default.DownloadParams, "path");
        var offset = p.Offset ?? 0;
        if (offset < 0)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture, $"offset must be 0 or more (got {offset})"));
        }

        var path = policy.Resolve(p.Path);
        if (Directory.Exists(path))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"path is a directory: {PathPolicy.Shorten(p.Path)}");
        }

        FileStream file;
        try
        {
            file = NoFollow.OpenRead(path, 0);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new RpcFault(RpcErrorCodes.NotFound, $"no such file: {PathPolicy.Shorten(p.Path)}");
        }
        catch (UnauthorizedAccessException)
        {
            throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies reading {PathPolicy.Shorten(p.Path)}");
        }

        var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        try
        {
            policy.VerifyOpened(file.SafeFileHandle, path);
            var size = file.Length;
            if (offset > size)
            {
                throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                    $"offset {offset} is beyond the end of the file ({size} bytes); the local partial file is not a prefix of it"));
            }

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var prefix = offset;
            while (prefix > 0)
            {
                var n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(BufferSize, prefix)), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    throw new RpcFault(RpcErrorCodes.Internal, "the file shrank while being read");
                }

                hash.AppendData(buffer, 0, n);
                prefix -= n;
            }

            await Wire.WriteAsync(stream, Ok(request.Id, Wire.ToElement(new DownloadReady
            {
                Path = path,
                Size = size,
                Offset = offset,
                Mode = OperatingSystem.IsWindows() ? null : FileRequests.Octal(File.GetUnixFileMode(file.SafeFileHandle)),
            }, FileJson.Default.DownloadReady)), ProtocolJson.Default.RpcResponse, ct).ConfigureAwait(false);

            var remaining = size - offset;
            while (remaining > 0)
            {
                var n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(BufferSize, remaining)), ct).ConfigureAwait(false);
                if (n == 0)
                {
                    // Fewer bytes than announced: the operator must not take a short file for a whole one.
                    throw new TransferInterruptedException("the file shrank while being sent");
                }

                hash.AppendData(buffer, 0, n);
                await stream.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                remaining -= n;
            }

            await Wire.WriteAsync(stream, new TransferTrailer { Sha256 = FileRequests.Hex(hash.GetHashAndReset()) }, FileJson.Default.TransferTrailer, ct).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            await file.DisposeAsync().ConfigureAwait(false);
        }
    }

    private static async Task HashPrefixAsync(string partial, long length, IncrementalHash hash, byte[] buffer, CancellationToken ct)
    {
        if (length == 0)
        {
            return;
        }

        await using var reader = NoFollow.OpenRead(partial, 0);
        var left = length;
        while (left > 0)
        {
            var n = await reader.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, left)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new RpcFault(RpcErrorCodes.Internal, "the partial file shrank while being read");
            }

            hash.AppendData(buffer, 0, n);
            left -= n;
        }
    }

    private static RpcResponse Ok(long id, System.Text.Json.JsonElement result) => new() { Id = id, Result = result };

    private static RpcResponse Error(long id, int code, string message) => new() { Id = id, Error = new RpcError { Code = code, Message = message } };
}

/// <summary>A transfer stopped with the connection in the middle of raw bytes: the only safe answer is to close it.</summary>
public sealed class TransferInterruptedException(string message) : IOException(message);
