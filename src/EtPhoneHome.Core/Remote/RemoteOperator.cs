using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text.Json;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The Core entry points of the application layer, run by the hub's operator service over one connection: the same
/// arguments and the same typed outcomes as on the server host. Every fan-out gives each target exactly one result,
/// even when the connection drops half way (the targets not heard from get an Error result saying so).
/// </summary>
public sealed class RemoteOperator : IAsyncDisposable
{
    /// <summary>Bytes of a download the operator takes before it grants more.</summary>
    public const int DownloadWindow = 16 * 1024 * 1024;

    /// <summary>The message of a target whose outcome was lost with the connection.</summary>
    public const string ConnectionLostMessage = "cancelled: the connection to the server was lost before this client's result arrived";

    private RemoteOperator(OperatorChannel channel, HelloResult identity)
    {
        Channel = channel;
        Identity = identity;
    }

    public OperatorChannel Channel { get; }

    /// <summary>Who the server says we are, and its version.</summary>
    public HelloResult Identity { get; }

    public bool IsOpen => Channel.IsOpen;

    /// <summary>Greets the service on a fresh channel; the channel is disposed if the greeting fails.</summary>
    public static async Task<RemoteOperator> OpenAsync(OperatorChannel channel, string surface, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(channel);
        try
        {
            var hello = await channel.InvokeAsync(OperatorOperations.Hello, OperatorOperations.ToElement(new HelloArgs
            {
                Surface = surface,
                ClientVersion = typeof(RemoteOperator).Assembly.GetName().Version?.ToString(3),
            }), ct).ConfigureAwait(false);
            return new RemoteOperator(channel, OperatorOperations.FromElement<HelloResult>(hello));
        }
        catch
        {
            await channel.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    public async Task<ClientLookup> SearchAsync(ClientQuery query, CancellationToken ct)
    {
        await using var call = await Channel.StartAsync(OperatorOperations.SearchClients, OperatorOperations.ToElement(query), ct).ConfigureAwait(false);
        var clients = new List<ClientRecord>();
        await foreach (var page in call.ItemsAsync(ct).ConfigureAwait(false))
        {
            clients.AddRange(OperatorOperations.FromElement<ClientRecord[]>(page));
        }

        var end = OperatorOperations.FromElement<SearchResult>(call.Result);
        return new ClientLookup(clients, end.NotFound);
    }

    /// <summary>
    /// Runs one command on the selected targets; one result per target as each finishes. <paramref name="onTargets"/>
    /// learns the resolved targets first (for progress).
    /// </summary>
    public IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(RunCommandsArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        RunCommandsAsync(args, onTargets, null, ct);

    /// <summary><see cref="RunCommandsAsync(RunCommandsArgs, Action{IReadOnlyList{RemoteTarget}}?, CancellationToken)"/>, relayed for an operator (hubs only).</summary>
    public IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(RunCommandsArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, RelayOrigin? relayFor, CancellationToken ct) =>
        FanOutAsync(OperatorOperations.RunCommands, OperatorOperations.ToElement(args), relayFor, onTargets, item => item.Result,
            target => new FleetCommandResult
            {
                Uuid = target.Uuid,
                DisplayName = target.DisplayName,
                Status = CommandStatus.Error,
                Error = ConnectionLostMessage,
                Failure = FailureKind.Unreachable,
            }, ct);

    /// <summary>Asks the selected targets for their metrics; one result per target.</summary>
    public IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(CollectMetricsArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        CollectMetricsAsync(args, onTargets, null, ct);

    /// <summary><see cref="CollectMetricsAsync(CollectMetricsArgs, Action{IReadOnlyList{RemoteTarget}}?, CancellationToken)"/>, relayed for an operator (hubs only).</summary>
    public IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(CollectMetricsArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, RelayOrigin? relayFor, CancellationToken ct) =>
        FanOutAsync(OperatorOperations.CollectMetrics, OperatorOperations.ToElement(args), relayFor, onTargets, item => item.Metrics,
            target => new ClientMetricsResult { Uuid = target.Uuid, DisplayName = target.DisplayName, Status = MetricsStatus.Cancelled, Error = ConnectionLostMessage }, ct);

    /// <summary>Reads a file on the selected targets; one outcome per target (targets as uuid and name, never a session).</summary>
    public IAsyncEnumerable<FleetFileOutcome<ReadFileResult>> ReadFilesAsync(TargetSelection targets, ReadFileParams request, int throttleLimit, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        FileOutcomesAsync<ReadFileResult>(OperatorOperations.ReadFiles, new FileOperationArgs { Targets = targets, Read = request, ThrottleLimit = throttleLimit }, onTargets, ct);

    /// <summary>Writes a file on the selected targets (atomically on each); one outcome per target.</summary>
    public IAsyncEnumerable<FleetFileOutcome<WriteFileResult>> WriteFilesAsync(TargetSelection targets, WriteFileParams request, int throttleLimit, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        FileOutcomesAsync<WriteFileResult>(OperatorOperations.WriteFiles, new FileOperationArgs { Targets = targets, Write = request, ThrottleLimit = throttleLimit }, onTargets, ct);

    /// <summary>Lists a directory on the selected targets; one outcome per target.</summary>
    public IAsyncEnumerable<FleetFileOutcome<ListFilesResult>> ListFilesAsync(TargetSelection targets, ListFilesParams request, int throttleLimit, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        FileOutcomesAsync<ListFilesResult>(OperatorOperations.ListFiles, new FileOperationArgs { Targets = targets, List = request, ThrottleLimit = throttleLimit }, onTargets, ct);

    /// <summary>A file operation (<see cref="OperatorOperations.ReadFiles"/>, write or list) relayed for an operator (hubs only).</summary>
    public IAsyncEnumerable<FleetFileOutcome<T>> FileOutcomesAsync<T>(string op, FileOperationArgs args, RelayOrigin? relayFor, CancellationToken ct)
        where T : class => FileOutcomesAsync<T>(op, args, null, relayFor, ct);

    private IAsyncEnumerable<FleetFileOutcome<T>> FileOutcomesAsync<T>(string op, FileOperationArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct)
        where T : class => FileOutcomesAsync<T>(op, args, onTargets, null, ct);

    private IAsyncEnumerable<FleetFileOutcome<T>> FileOutcomesAsync<T>(string op, FileOperationArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, RelayOrigin? relayFor, CancellationToken ct)
        where T : class =>
        FanOutAsync(op, OperatorOperations.ToElement(args), relayFor, onTargets,
            item => item.File is { } f
                ? new FleetFileOutcome<T>(new FleetTarget(f.Uuid, f.DisplayName, null), f.Status, f.Value is { } v ? OperatorOperations.FromElement<T>(v) : null, f.Error, f.DurationMs, f.Failure)
                : null,
            target => new FleetFileOutcome<T>(new FleetTarget(target.Uuid, target.DisplayName, null), CommandStatus.Error, null, ConnectionLostMessage, 0, FailureKind.Unreachable), ct);

    /// <summary>Hands a transfer to the selected targets' agents; one result per target, a lost connection ending the rest as errors.</summary>
    public IAsyncEnumerable<Exchange.ExchangeDeliveryResult> DeliverExchangeAsync(ExchangeDeliverArgs args, Action<IReadOnlyList<RemoteTarget>>? onTargets, CancellationToken ct) =>
        FanOutAsync(OperatorOperations.ExchangeDeliver, OperatorOperations.ToElement(args), null, onTargets, item => item.Delivery,
            target => new Exchange.ExchangeDeliveryResult(target.Uuid, target.DisplayName, CommandStatus.Error, args.TransferId, args.RemotePath, null, null, false, null, ConnectionLostMessage), ct);

    /// <summary>Rate-limit counters of the named clients (every client when null).</summary>
    public async Task<IReadOnlyList<RateLimitStats>> RateLimitStatsAsync(IReadOnlyList<string>? clients, CancellationToken ct) =>
        OperatorOperations.FromElement<RateLimitStats[]>(await Channel.InvokeAsync(OperatorOperations.RateLimitStats,
            clients is null ? null : OperatorOperations.ToElement(new { clients }), ct).ConfigureAwait(false));

    private async IAsyncEnumerable<T> FanOutAsync<T>(string op, JsonElement args, RelayOrigin? relayFor, Action<IReadOnlyList<RemoteTarget>>? onTargets,
        Func<FanOutItem, T?> pick, Func<RemoteTarget, T> lost, [EnumeratorCancellation] CancellationToken ct)
        where T : class
    {
        await using var call = await Channel.StartAsync(op, args, relayFor, ct).ConfigureAwait(false);
        var pending = new Dictionary<string, RemoteTarget>(StringComparer.Ordinal);
        var order = new List<RemoteTarget>();
        await using var items = call.ItemsAsync(ct).GetAsyncEnumerator(ct);
        while (true)
        {
            FanOutItem? item = null;
            var connectionLost = false;
            try
            {
                if (!await items.MoveNextAsync().ConfigureAwait(false))
                {
                    break;
                }

                item = OperatorOperations.FromElement<FanOutItem>(items.Current);
            }
            catch (OperatorConnectionLostException)
            {
                connectionLost = true;
            }

            if (connectionLost || item is null)
            {
                // Every target not heard from gets a result: the outcome is unknown, never a hang or a silent gap.
                foreach (var target in order.Where(t => pending.ContainsKey(t.Uuid)))
                {
                    yield return lost(target);
                }

                yield break;
            }

            if (item.Targets is { } targets)
            {
                foreach (var target in targets)
                {
                    if (pending.TryAdd(target.Uuid, target))
                    {
                        order.Add(target);
                    }
                }

                onTargets?.Invoke(targets);
            }
            else if (pick(item) is { } result)
            {
                pending.Remove(item.Result?.Uuid ?? item.Metrics?.Uuid ?? item.File?.Uuid ?? "");
                yield return result;
            }
        }
    }

    public Task<FleetStatus> FleetStatusAsync(CancellationToken ct) => FleetStatusAsync(null, ct);

    /// <summary>The fleet status with these thresholds, throttle and timeout (the server's defaults for what is null).</summary>
    public async Task<FleetStatus> FleetStatusAsync(FleetStatusArgs? args, CancellationToken ct) =>
        OperatorOperations.FromElement<FleetStatus>(await Channel.InvokeAsync(OperatorOperations.FleetStatus,
            args is null ? null : OperatorOperations.ToElement(args), ct).ConfigureAwait(false));

    /// <summary>Webhook deliveries, newest first, with their attempts.</summary>
    public async Task<WebhookDeliveryPage> WebhookDeliveriesAsync(WebhookDeliveryQuery query, CancellationToken ct) =>
        OperatorOperations.FromElement<WebhookDeliveryPage>(await Channel.InvokeAsync(OperatorOperations.WebhookDeliveries, OperatorOperations.ToElement(query), ct).ConfigureAwait(false));

    /// <summary>Queues a delivery again (by numeric id or delivery uuid); the queued delivery.</summary>
    public async Task<WebhookDelivery> ResendWebhookAsync(string id, CancellationToken ct) =>
        OperatorOperations.FromElement<WebhookDelivery>(await Channel.InvokeAsync(OperatorOperations.ResendWebhook, OperatorOperations.ToElement(new { id }), ct).ConfigureAwait(false));

    /// <summary>One key by fingerprint; null when the server has none.</summary>
    public async Task<KeyRecord?> GetKeyAsync(string fingerprint, CancellationToken ct) =>
        OperatorOperations.FromElement<KeyRecord[]>(await Channel.InvokeAsync(OperatorOperations.ListKeys,
            OperatorOperations.ToElement(new { fingerprint }), ct).ConfigureAwait(false)).FirstOrDefault(k => k.Fingerprint == fingerprint);

    public async Task<IReadOnlyList<OperatorRecord>> ListOperatorsAsync(bool includeRemoved, CancellationToken ct) =>
        OperatorOperations.FromElement<OperatorRecord[]>(await Channel.InvokeAsync(OperatorOperations.ListOperators, OperatorOperations.ToElement(new { includeRemoved }), ct).ConfigureAwait(false));

    public async Task<OperatorRecord> AddOperatorAsync(string name, string key, OperatorRole role, CancellationToken ct) =>
        OperatorOperations.FromElement<OperatorRecord>(await Channel.InvokeAsync(OperatorOperations.AddOperator,
            OperatorOperations.ToElement(new { name, key, role = OperatorRoles.Wire(role) }), ct).ConfigureAwait(false));

    public async Task<OperatorRecord> RemoveOperatorAsync(string name, CancellationToken ct) =>
        OperatorOperations.FromElement<OperatorRecord>(await Channel.InvokeAsync(OperatorOperations.RemoveOperator, OperatorOperations.ToElement(new { name }), ct).ConfigureAwait(false));

    public async Task<OperatorRecord> SetOperatorRoleAsync(string name, OperatorRole role, CancellationToken ct) =>
        OperatorOperations.FromElement<OperatorRecord>(await Channel.InvokeAsync(OperatorOperations.SetOperatorRole,
            OperatorOperations.ToElement(new { name, role = OperatorRoles.Wire(role) }), ct).ConfigureAwait(false));

    public async Task<HistoryPage> QueryHistoryAsync(HistoryQuery query, bool withTotal, CancellationToken ct) =>
        OperatorOperations.FromElement<HistoryPage>(await Channel.InvokeAsync(OperatorOperations.QueryHistory,
            OperatorOperations.ToElement(new HistoryArgs { Query = query, WithTotal = withTotal }), ct).ConfigureAwait(false));

    public async Task<IReadOnlyList<KeyRecord>> ListKeysAsync(bool pendingOnly, CancellationToken ct) =>
        OperatorOperations.FromElement<KeyRecord[]>(await Channel.InvokeAsync(OperatorOperations.ListKeys,
            OperatorOperations.ToElement(new { pending = pendingOnly }), ct).ConfigureAwait(false));

    public async Task<ApproveOutcome> ApproveKeyAsync(string id, CancellationToken ct) =>
        OperatorOperations.FromElement<ApproveOutcome>(await Channel.InvokeAsync(OperatorOperations.ApproveKey, OperatorOperations.ToElement(new { id }), ct).ConfigureAwait(false));

    public async Task<RevokeOutcome> RevokeKeyAsync(string id, CancellationToken ct) =>
        OperatorOperations.FromElement<RevokeOutcome>(await Channel.InvokeAsync(OperatorOperations.RevokeKey, OperatorOperations.ToElement(new { id }), ct).ConfigureAwait(false));

    public async Task<ClientRecord> UpdateClientAsync(string client, ClientUpdate update, CancellationToken ct) =>
        OperatorOperations.FromElement<ClientRecord>(await Channel.InvokeAsync(OperatorOperations.UpdateClient, OperatorOperations.ToElement(new { client, update }), ct).ConfigureAwait(false));

    public async Task<RemoveOutcome> RemoveClientAsync(string client, CancellationToken ct) =>
        OperatorOperations.FromElement<RemoveOutcome>(await Channel.InvokeAsync(OperatorOperations.RemoveClient, OperatorOperations.ToElement(new { client }), ct).ConfigureAwait(false));

    /// <summary>Runs any operation with JSON arguments and result (operator management and what has no typed method yet).</summary>
    public Task<JsonElement> InvokeAsync(string op, object? args, CancellationToken ct) =>
        Channel.InvokeAsync(op, args is null ? null : OperatorOperations.ToElement(args), ct);

    /// <summary>
    /// Sends a local file to one client through the server: the agent says where it resumes, the bytes go from there,
    /// and the agent checks the whole file's SHA-256 (computed here) before it keeps the file.
    /// </summary>
    public async Task<FileTransferResult> UploadAsync(string client, string localPath, string remotePath, IProgress<long>? progress, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(client);
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var clock = Stopwatch.StartNew();
        var full = Path.GetFullPath(localPath);
        await using var file = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read, 0, FileOptions.SequentialScan);
        var size = file.Length;
        await using var call = await Channel.StartAsync(OperatorOperations.Upload, OperatorOperations.ToElement(new TransferArgs
        {
            Client = client,
            RemotePath = remotePath,
            Size = size,
            Name = Path.GetFileName(full),
        }), ct).ConfigureAwait(false);

        TransferReady? ready = null;
        var credit = new CreditGate();
        call.OnCredit = credit.Add;
        Task sender = Task.CompletedTask;
        var asked = 0;
        call.OnSend = message =>
        {
            if (Interlocked.Exchange(ref asked, 1) != 0)
            {
                throw new ProtocolException(ProtocolError.Malformed, "the server asked for the file's bytes twice");
            }

            var offset = message.Offset ?? 0;
            if (offset < 0 || offset > size)
            {
                throw new OperatorConnectionLostException($"the server asked for bytes from {offset} of a {size}-byte file");
            }

            credit.Add(message.Bytes ?? 0);
            sender = Task.Run(() => SendFileAsync(call, file, offset, size, credit, progress, ct), ct);
            return Task.CompletedTask;
        };

        await foreach (var item in call.ItemsAsync(ct).ConfigureAwait(false))
        {
            ready ??= OperatorOperations.FromElement<TransferReady>(item);
        }

        await sender.ConfigureAwait(false);
        var done = OperatorOperations.FromElement<TransferDone>(call.Result);
        return new FileTransferResult
        {
            Uuid = ready?.Uuid ?? "",
            DisplayName = ready?.DisplayName ?? client,
            Direction = TransferDirection.ToClient,
            LocalPath = full,
            RemotePath = done.RemotePath,
            Size = done.Size,
            Sha256 = done.Sha256,
            ResumedFrom = done.ResumedFrom,
            DurationMs = clock.ElapsedMilliseconds,
        };
    }

    private static async Task SendFileAsync(OperatorCall call, FileStream file, long offset, long size, CreditGate credit, IProgress<long>? progress, CancellationToken ct)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[OperatorFrames.PreferredDataBytes];
        file.Position = 0;
        var hashed = 0L;
        while (hashed < offset)
        {
            // The prefix the agent kept is hashed here, never sent again.
            var n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, offset - hashed)), ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("the local file became shorter during the upload");
            }

            hash.AppendData(buffer, 0, n);
            hashed += n;
        }

        progress?.Report(offset);
        var sent = offset;
        // Two buffers: reading and hashing the next chunk overlaps sending the previous one.
        byte[][] buffers = [buffer, new byte[OperatorFrames.PreferredDataBytes]];
        var which = 0;
        var sending = Task.CompletedTask;
        while (sent < size)
        {
            var chunk = buffers[which];
            var allowed = await credit.TakeAsync((int)Math.Min(chunk.Length, size - sent), ct).ConfigureAwait(false);
            var n = await file.ReadAtLeastAsync(chunk.AsMemory(0, allowed), allowed, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            if (n == 0)
            {
                throw new IOException("the local file became shorter during the upload");
            }

            if (n < allowed)
            {
                credit.Add(allowed - n);
            }

            hash.AppendData(chunk, 0, n);
            await sending.ConfigureAwait(false);
            sending = call.SendDataAsync(chunk.AsMemory(0, n), ct);
            which ^= 1;
            sent += n;
            progress?.Report(sent);
        }

        await sending.ConfigureAwait(false);
        await call.SendAsync(new OperatorMessage { Type = OperatorMessageTypes.End, Sha256 = Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant() }, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// Fetches a file from one client through the server into <paramref name="localPath"/>: resumed from a partial file
    /// left by an earlier attempt, SHA-256 checked here against the agent's before the file takes its name.
    /// </summary>
    public async Task<FileTransferResult> DownloadAsync(string client, string remotePath, string localPath, IProgress<long>? progress, CancellationToken ct)
    {
        ArgumentException.ThrowIfNullOrEmpty(client);
        ArgumentException.ThrowIfNullOrEmpty(remotePath);
        ArgumentException.ThrowIfNullOrEmpty(localPath);
        var clock = Stopwatch.StartNew();
        var local = Path.GetFullPath(localPath);
        if (Directory.Exists(local) || Path.EndsInDirectorySeparator(localPath))
        {
            var trimmed = remotePath.TrimEnd('/', '\\');
            local = Path.Join(local, trimmed[(trimmed.LastIndexOfAny(['/', '\\']) + 1)..]);
        }

        Directory.CreateDirectory(Path.GetDirectoryName(local)!);
        var partial = Path.Join(Path.GetDirectoryName(local), FileLimits.PartialName(Path.GetFileName(local)));
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None, BufferSize = 0 };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        TransferDone done;
        string sha;
        await using (var file = new FileStream(partial, options))
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var offset = file.Length;
            var buffer = new byte[1024 * 1024];
            file.Position = 0;
            for (var hashed = 0L; hashed < offset;)
            {
                var n = await file.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, offset - hashed)), ct).ConfigureAwait(false);
                hash.AppendData(buffer, 0, n);
                hashed += n;
            }

            await using var call = await Channel.StartAsync(OperatorOperations.Download, OperatorOperations.ToElement(new TransferArgs
            {
                Client = client,
                RemotePath = remotePath,
                Offset = offset,
                Window = DownloadWindow,
            }), ct).ConfigureAwait(false);
            var received = offset;
            var ungranted = 0L;
            var granted = (long)DownloadWindow;
            TransferReady? ready = null;
            call.OnData = async data =>
            {
                // The server sends the file's bytes after saying its size, within the credit granted: anything else is
                // refused before it reaches the disk (a hostile server cannot fill it, nor queue bytes here unasked).
                if (ready is null || data.Length > ready.Size - received || data.Length > granted)
                {
                    throw new ProtocolException(ProtocolError.Malformed, ready is null
                        ? "the server sent file bytes before the file's size"
                        : $"the server sent more bytes than {(data.Length > granted ? "the credit granted" : $"the file's {ready.Size} bytes")}; the destination was not touched");
                }

                granted -= data.Length;
                hash.AppendData(data.Span);
                await file.WriteAsync(data, ct).ConfigureAwait(false);
                received += data.Length;
                progress?.Report(received);
                ungranted += data.Length;
                if (ungranted >= DownloadWindow / 4)
                {
                    granted += ungranted;
                    await call.SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Credit, Bytes = ungranted }, ct).ConfigureAwait(false);
                    ungranted = 0;
                }
            };

            await foreach (var item in call.ItemsAsync(ct).ConfigureAwait(false))
            {
                if (ready is null)
                {
                    ready = OperatorOperations.FromElement<TransferReady>(item);
                    if (ready.Offset != offset || ready.Size < offset)
                    {
                        throw new ProtocolException(ProtocolError.Malformed, $"the server answered offset {ready.Offset} of {ready.Size} bytes, asked from {offset}");
                    }
                }
            }

            done = OperatorOperations.FromElement<TransferDone>(call.Result);
            sha = Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
            if (received != done.Size || !sha.Equals(done.Sha256, StringComparison.OrdinalIgnoreCase))
            {
                file.SetLength(0); // bad bytes are not worth resuming from
                throw new RpcException(FileLimits.ChecksumMismatch, $"SHA-256 of the received file is {sha}, the agent's is {done.Sha256}; the destination was not touched");
            }

            file.Flush(flushToDisk: true);
        }

        File.Move(partial, local, overwrite: true);
        return new FileTransferResult
        {
            Uuid = "",
            DisplayName = client,
            Direction = TransferDirection.FromClient,
            LocalPath = local,
            RemotePath = done.RemotePath,
            Size = done.Size,
            Sha256 = sha,
            ResumedFrom = done.ResumedFrom,
            DurationMs = clock.ElapsedMilliseconds,
        };
    }

    public ValueTask DisposeAsync() => Channel.DisposeAsync();

    /// <summary>Bytes the server will take; the sender waits when it has none.</summary>
    private sealed class CreditGate
    {
        private readonly SemaphoreSlim _signal = new(0);
        private long _credit;

        public void Add(long bytes)
        {
            if (bytes > 0)
            {
                Interlocked.Add(ref _credit, bytes);
                _signal.Release();
            }
        }

        public async Task<int> TakeAsync(int want, CancellationToken ct)
        {
            while (true)
            {
                var have = Volatile.Read(ref _credit);
                if (have > 0)
                {
                    var take = (int)Math.Min(want, have);
                    if (Interlocked.CompareExchange(ref _credit, have - take, have) == have)
                    {
                        return take;
                    }

                    continue;
                }

                await _signal.WaitAsync(ct).ConfigureAwait(false);
            }
        }
    }
}
