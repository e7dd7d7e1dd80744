using System.Diagnostics;
using System.Net.Sockets;
using System.Security.Cryptography;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Files;

/// <summary>Which way a transfer went.</summary>
public enum TransferDirection
{
    /// <summary>Operator → client (<c>upload</c>).</summary>
    ToClient,
    /// <summary>Client → operator (<c>download</c>).</summary>
    FromClient,
}

/// <summary>A verified transfer of one file.</summary>
public sealed record FileTransferResult
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required TransferDirection Direction { get; init; }
    public required string LocalPath { get; init; }
    public required string RemotePath { get; init; }
    public required long Size { get; init; }
    /// <summary>Lower-case hex SHA-256 of the whole file, the same on both ends.</summary>
    public required string Sha256 { get; init; }
    /// <summary>Bytes kept from a partial file of an earlier, interrupted attempt.</summary>
    public long ResumedFrom { get; init; }
    public long DurationMs { get; init; }
    /// <summary>Connections it took (more than 1 after a dropped connection was resumed).</summary>
    public int Attempts { get; init; } = 1;
}

/// <summary>
/// Streaming upload and download through a tunnel: raw bytes after a JSON header (never base64), SHA-256 of the whole
/// file computed while streaming on both ends and compared at the end, resume from the partial file a dropped
/// connection left (<c>.&lt;name&gt;.eph-partial</c> beside the destination), progress in bytes. Each transfer is
/// recorded through the <see cref="OperationGuard"/> as <c>upload_file</c> or <c>download_file</c>.
/// </summary>
public sealed class FileTransferClient
{
    /// <summary>Copy buffer size. Two buffers per transfer: one is read while the other is written.</summary>
    public const int BufferSize = 1024 * 1024;

    public OperationGuard? Guard { get; init; }

    public string Host { get; init; } = "127.0.0.1";

    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Connections tried per transfer; after a dropped connection the next one resumes from the partial file.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>How long a resume waits for the agent to release the partial file of the dropped connection.</summary>
    public TimeSpan BusyPatience { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Create missing directories above a remote destination (uploads).</summary>
    public bool CreateParents { get; init; } = true;

    /// <summary>Called before each retry with the attempt number and the fault (for verbose output).</summary>
    public Action<int, Exception>? OnRetry { get; init; }

    /// <summary>Sends <paramref name="localPath"/> to <paramref name="remotePath"/> on the target (a trailing '/' means "into this directory").</summary>
    public async Task<FileTransferResult> UploadAsync(FleetTarget target, string localPath, string remotePath, IProgress<long>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        ArgumentException.ThrowIfNullOrEmpty(remotePath);
        var session = SessionOf(target);
        var remote = RemoteDestination(remotePath, Path.GetFileName(localPath));
        using var lease = Guard is null ? null : await Guard.BeginAsync(target.Uuid, OperationNames.UploadFile, $"{localPath} → {remote}").ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        try
        {
            await using var local = new FileStream(localPath, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
            var result = await WithRetriesAsync(attempt => UploadOnceAsync(session, target.Policy, local, remote, progress, ct), ct).ConfigureAwait(false);
            var done = result.Value with { Uuid = target.Uuid, DisplayName = target.DisplayName, LocalPath = Path.GetFullPath(localPath), DurationMs = clock.ElapsedMilliseconds, Attempts = result.Attempts };
            await lease.RecordAsync(OperationStatus.Succeeded, $"{done.Size} bytes, sha256 {done.Sha256[..12]}…{(done.ResumedFrom > 0 ? $", resumed at {done.ResumedFrom}" : "")}").ConfigureAwait(false);
            return done;
        }
        catch (Exception ex)
        {
            await lease.RecordAsync(Outcome(ex), ex.Message).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Fetches <paramref name="remotePath"/> into <paramref name="localPath"/> (an existing directory receives the file under its remote name).</summary>
    public async Task<FileTransferResult> DownloadAsync(FleetTarget target, string remotePath, string localPath, IProgress<long>? progress, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(target);
        ArgumentException.ThrowIfNullOrEmpty(remotePath);
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var session = SessionOf(target);
        var local = Path.GetFullPath(localPath);
        if (Directory.Exists(local) || Path.EndsInDirectorySeparator(localPath))
        {
            local = Path.Join(local, RemoteName(remotePath));
        }

        using var lease = Guard is null ? null : await Guard.BeginAsync(target.Uuid, OperationNames.DownloadFile, $"{remotePath} → {local}").ConfigureAwait(false);
        var clock = Stopwatch.StartNew();
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(local)!);
            var result = await WithRetriesAsync(attempt => DownloadOnceAsync(session, target.Policy, remotePath, local, progress, ct), ct).ConfigureAwait(false);
            var done = result.Value with { Uuid = target.Uuid, DisplayName = target.DisplayName, DurationMs = clock.ElapsedMilliseconds, Attempts = result.Attempts };
            await lease.RecordAsync(OperationStatus.Succeeded, $"{done.Size} bytes, sha256 {done.Sha256[..12]}…{(done.ResumedFrom > 0 ? $", resumed at {done.ResumedFrom}" : "")}").ConfigureAwait(false);
            return done;
        }
        catch (Exception ex)
        {
            DropEmptyPartial(local);
            await lease.RecordAsync(Outcome(ex), ex.Message).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Removes the partial file of a failed download when it holds no bytes (the agent refused before sending any):
    /// it could not help a resume, and a refused download must leave nothing behind.
    /// </summary>
    private static void DropEmptyPartial(string local)
    {
        var partial = Path.Join(Path.GetDirectoryName(local), FileLimits.PartialName(Path.GetFileName(local)));
        try
        {
            if (new FileInfo(partial) is { Exists: true, Length: 0 })
            {
                File.Delete(partial);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // Best effort: an empty partial left behind is harmless (the next download starts from 0).
        }
    }

    /// <summary>The session of an online target; a clear error for an offline or denied one.</summary>
    internal static SessionRecord SessionOf(FleetTarget target)
    {
        if (target.DeniedReason is { } reason)
        {
            throw new InvalidOperationException($"{target.Describe()}: {reason}");
        }

        return target.Session ?? throw new InvalidOperationException($"{target.Describe()} is offline");
    }

    /// <summary>"/opt/app/" + "app.tgz" → "/opt/app/app.tgz"; a path without a trailing separator is the file itself.</summary>
    public static string RemoteDestination(string remotePath, string localName)
        => remotePath.EndsWith('/') || remotePath.EndsWith('\\') ? remotePath + localName : remotePath;

    private static string RemoteName(string remotePath)
    {
        var trimmed = remotePath.TrimEnd('/', '\\');
        var cut = trimmed.LastIndexOfAny(['/', '\\']);
        var name = cut >= 0 ? trimmed[(cut + 1)..] : trimmed;
        return name.Length == 0 ? throw new ArgumentException("the remote path names no file", nameof(remotePath)) : name;
    }

    private static OperationStatus Outcome(Exception ex) => ex switch
    {
        RpcException { Code: RpcErrorCodes.PathDenied } => OperationStatus.Denied,
        OperationCanceledException => OperationStatus.Cancelled,
        TimeoutException => OperationStatus.TimedOut,
        _ => OperationStatus.Error,
    };

    private async Task<(FileTransferResult Value, int Attempts)> WithRetriesAsync(Func<int, Task<FileTransferResult>> once, CancellationToken ct)
    {
        var busyUntil = DateTime.UtcNow + BusyPatience;
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return (await once(attempt).ConfigureAwait(false), attempt);
            }
            catch (RpcException ex) when (ex.Code == RpcErrorCodes.Busy && DateTime.UtcNow < busyUntil)
            {
                // The agent has not yet noticed a dropped connection (ours or an earlier run's) and still holds the partial file: wait, not an attempt.
                attempt--;
                await Task.Delay(100, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (attempt < MaxAttempts && !ct.IsCancellationRequested && IsConnectionFault(ex))
            {
                OnRetry?.Invoke(attempt, ex);
            }
        }
    }

    /// <summary>Faults after which a new connection can resume: the connection broke, the bytes so far are kept.</summary>
    private static bool IsConnectionFault(Exception ex) => ex is IOException or SocketException
        || ex is ProtocolException { Error: ProtocolError.Truncated or ProtocolError.Timeout };

    private async Task<FileTransferResult> UploadOnceAsync(SessionRecord session, ServerPolicy? policy, FileStream local, string remote, IProgress<long>? progress, CancellationToken ct)
    {
        var size = local.Length;
        await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, ct, policy).ConfigureAwait(false);
        var header = new UploadParams { Path = remote, Size = size, Resume = true, CreateParents = CreateParents };
        var (id, readyElement) = await tunnel.StartStreamAsync(FileMethods.Upload, Wire.ToElement(header, FileJson.Default.UploadParams), ct).ConfigureAwait(false);
        var ready = Wire.FromElement(readyElement, FileJson.Default.UploadReady);
        if (ready.Offset < 0 || ready.Offset > size)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"agent asked to resume at {ready.Offset} of a {size}-byte file");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        local.Position = 0;
        await CopyAsync(local, null, hash, ready.Offset, null, ct).ConfigureAwait(false); // hash the prefix the agent kept
        progress?.Report(ready.Offset);
        await CopyAsync(local, tunnel.RawStream, hash, size - ready.Offset, progress is null ? null : new Offset(progress, ready.Offset), ct).ConfigureAwait(false);
        var sha = Hex(hash.GetHashAndReset());
        await Wire.WriteAsync(tunnel.RawStream, new TransferTrailer { Sha256 = sha }, FileJson.Default.TransferTrailer, ct).ConfigureAwait(false);
        var result = Wire.FromElement(await tunnel.ReadResponseAsync(id, FileMethods.Upload, ct).ConfigureAwait(false), FileJson.Default.UploadResult);
        if (!result.Sha256.Equals(sha, StringComparison.OrdinalIgnoreCase))
        {
            throw new RpcException(FileLimits.ChecksumMismatch, $"the agent stored SHA-256 {result.Sha256}, the local file is {sha}");
        }

        return new FileTransferResult
        {
            Uuid = "",
            DisplayName = "",
            Direction = TransferDirection.ToClient,
            LocalPath = local.Name,
            RemotePath = result.Path,
            Size = result.Size,
            Sha256 = result.Sha256,
            ResumedFrom = result.ResumedFrom,
        };
    }

    private async Task<FileTransferResult> DownloadOnceAsync(SessionRecord session, ServerPolicy? policy, string remote, string local, IProgress<long>? progress, CancellationToken ct)
    {
        var partial = Path.Join(Path.GetDirectoryName(local), FileLimits.PartialName(Path.GetFileName(local)));
        await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, ct, policy).ConfigureAwait(false);
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        await using var file = new FileStream(partial, options);

        DownloadReady ready;
        try
        {
            var started = await tunnel.StartStreamAsync(FileMethods.Download, Wire.ToElement(new DownloadParams { Path = remote, Offset = file.Length }, FileJson.Default.DownloadParams), ct).ConfigureAwait(false);
            ready = Wire.FromElement(started.Ready, FileJson.Default.DownloadReady);
        }
        catch (RpcException ex) when (ex.Code == RpcErrorCodes.InvalidParams && file.Length > 0 && ex.Message.Contains("offset", StringComparison.Ordinal))
        {
            // The local partial is longer than the remote file: it belongs to another version; start over.
            file.SetLength(0);
            throw new IOException("the local partial file does not match the remote file; starting over", ex);
        }

        if (ready.Offset != file.Length || ready.Size < ready.Offset)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"agent answered offset {ready.Offset} of {ready.Size}, expected {file.Length}");
        }

        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        file.Position = 0;
        await CopyAsync(file, null, hash, ready.Offset, null, ct).ConfigureAwait(false);
        progress?.Report(ready.Offset);
        await CopyAsync(tunnel.RawStream, file, hash, ready.Size - ready.Offset, progress is null ? null : new Offset(progress, ready.Offset), ct).ConfigureAwait(false);
        var trailer = await Wire.ReadAsync(tunnel.RawStream, FileJson.Default.TransferTrailer, 4096, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolError.Truncated, "agent closed the tunnel before the checksum trailer");
        var sha = Hex(hash.GetHashAndReset());
        if (!sha.Equals(trailer.Sha256, StringComparison.OrdinalIgnoreCase))
        {
            file.SetLength(0); // bad bytes are not worth resuming from
            throw new RpcException(FileLimits.ChecksumMismatch, $"SHA-256 of the received file is {sha}, the agent's is {trailer.Sha256}; the destination was not touched");
        }

        file.Flush(flushToDisk: true);
        await file.DisposeAsync().ConfigureAwait(false);
        File.Move(partial, local, overwrite: true);
        return new FileTransferResult
        {
            Uuid = "",
            DisplayName = "",
            Direction = TransferDirection.FromClient,
            LocalPath = local,
            RemotePath = ready.Path,
            Size = ready.Size,
            Sha256 = sha,
            ResumedFrom = ready.Offset,
        };
    }

    /// <summary>
    /// Copies exactly <paramref name="count"/> bytes, hashing them; with two buffers the next read overlaps the previous
    /// write. A null <paramref name="destination"/> only hashes. Ends early only by throwing (EndOfStreamException).
    /// </summary>
    private static async Task CopyAsync(Stream source, Stream? destination, IncrementalHash hash, long count, Offset? progress, CancellationToken ct)
    {
        if (count == 0)
        {
            return;
        }

        byte[][] buffers = [new byte[BufferSize], new byte[BufferSize]];
        var pending = Task.CompletedTask;
        var which = 0;
        var left = count;
        while (left > 0)
        {
            var buffer = buffers[which];
            var n = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(BufferSize, left)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new EndOfStreamException($"the stream ended {left} bytes before the end of the file");
            }

            hash.AppendData(buffer, 0, n);
            await pending.ConfigureAwait(false);
            pending = destination is null ? Task.CompletedTask : destination.WriteAsync(buffer.AsMemory(0, n), ct).AsTask();
            left -= n;
            which ^= 1;
            progress?.Report(count - left);
        }

        await pending.ConfigureAwait(false);
    }

    private static string Hex(byte[] hash) => Convert.ToHexString(hash).ToLowerInvariant();

    /// <summary>Reports absolute positions: bytes resumed plus bytes copied now.</summary>
    private sealed class Offset(IProgress<long> inner, long start)
    {
        public void Report(long copied) => inner.Report(start + copied);
    }
}
