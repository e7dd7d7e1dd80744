using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The operator's end of one connection to the hub's operator service: many requests in flight at once, each with its
/// own id; their replies are routed to them as they arrive. When the connection ends, every request still waiting is
/// told so (<see cref="OperatorConnectionLostException"/>) — none waits forever.
/// </summary>
/// <remarks>
/// The channel never sends more than the service takes (<see cref="OperatorLimits"/>): a request past a bound waits for
/// a place, cancellable, instead of being refused BUSY, so any number of callers may share one connection (a hub's relay
/// link, parallel pipelines, concurrent MCP tool calls). A place is freed when the request's end arrives, whether or not
/// its caller has read it yet: replies are never held back by a caller busy elsewhere, so a caller that starts requests
/// while it reads the results of earlier ones cannot block itself. Only a transfer needs its caller to go on (credit,
/// bytes); a caller must not wait for a second transfer while it leaves the first one unread.
/// </remarks>
public sealed class OperatorChannel : IAsyncDisposable
{
    private readonly Stream _fromServer;
    private readonly Stream _toServer;
    private readonly IAsyncDisposable? _owner;
    private readonly ConcurrentDictionary<long, OperatorCall> _calls = new();
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly CancellationTokenSource _closing = new();
    private readonly OperatorCallGate _gate;
    private readonly Task _reader;
    private long _nextId;
    private volatile Exception? _fault;

    /// <param name="fromServer">What the server sends (ssh's stdout).</param>
    /// <param name="toServer">Where requests go (ssh's stdin).</param>
    /// <param name="owner">Disposed with the channel (the ssh process).</param>
    public OperatorChannel(Stream fromServer, Stream toServer, IAsyncDisposable? owner = null)
        : this(fromServer, toServer, owner, new OperatorCallGate())
    {
    }

    /// <summary>A channel held to other bounds (tests).</summary>
    internal OperatorChannel(Stream fromServer, Stream toServer, IAsyncDisposable? owner, OperatorCallGate gate)
    {
        _gate = gate ?? throw new ArgumentNullException(nameof(gate));
        _fromServer = fromServer ?? throw new ArgumentNullException(nameof(fromServer));
        _toServer = toServer ?? throw new ArgumentNullException(nameof(toServer));
        _owner = owner;
        // A thread of its own: with a stream that blocks in its reads (ssh's stdout) the loop never returns to the pool.
        _reader = Task.Factory.StartNew(ReadLoopAsync, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();
    }

    /// <summary>Whether the connection still carries requests.</summary>
    public bool IsOpen => _fault is null && !_reader.IsCompleted;

    /// <summary>Why the connection ended, once it has.</summary>
    public Exception? Fault => _fault;

    /// <summary>Completes when the connection ends.</summary>
    public Task Closed => _reader;

    /// <summary>Requests that hold a place on the connection now (sent, their end not yet arrived).</summary>
    public int InFlight => _gate.InFlight;

    /// <summary>Requests waiting for a place now (<see cref="OperatorLimits"/>).</summary>
    public int Waiting => _gate.Waiting;

    /// <summary>Bytes of request messages in flight now (the service bounds them too).</summary>
    internal long BytesInFlight => _gate.Bytes;

    /// <summary>Starts request <paramref name="op"/>; its replies arrive on the returned call.</summary>
    public Task<OperatorCall> StartAsync(string op, JsonElement? args, CancellationToken ct) => StartAsync(op, args, null, ct);

    /// <summary>
    /// Starts request <paramref name="op"/> relayed for an operator (a hub's call to another hub). Waits first, as long as
    /// <paramref name="ct"/> allows, while the connection already carries as much as the service takes.
    /// </summary>
    public async Task<OperatorCall> StartAsync(string op, JsonElement? args, RelayOrigin? relayFor, CancellationToken ct)
    {
        ThrowIfClosed();
        var id = Interlocked.Increment(ref _nextId);
        var frame = OperatorFrames.EncodeMessage(new OperatorMessage { Type = OperatorMessageTypes.Call, Id = id, Op = op, Body = args, For = relayFor });

        // The service counts a call's frame payload (the frame less its 4-byte length) until the call ends.
        var cost = new OperatorCallCost(op is OperatorOperations.Upload or OperatorOperations.Download, frame.Length - 4);
        await _gate.EnterAsync(cost, ct).ConfigureAwait(false);
        var call = new OperatorCall(this, id, op, cost);
        _calls[id] = call;
        try
        {
            await SendFrameAsync(frame, ct).ConfigureAwait(false);
        }
        catch
        {
            if (_calls.TryRemove(id, out _))
            {
                _gate.Release(cost);
            }

            throw;
        }

        if (_fault is { } fault)
        {
            call.Fail(fault);
        }

        return call;
    }

    /// <summary>Runs a request that answers with one result.</summary>
    public async Task<JsonElement> InvokeAsync(string op, JsonElement? args, CancellationToken ct)
    {
        await using var call = await StartAsync(op, args, ct).ConfigureAwait(false);
        await foreach (var _ in call.ItemsAsync(ct).ConfigureAwait(false))
        {
            // A single-result request sends no items; any that come are ignored.
        }

        return call.Result;
    }

    internal Task SendAsync(OperatorMessage message, CancellationToken ct) => SendFrameAsync(OperatorFrames.EncodeMessage(message), ct);

    private async Task SendFrameAsync(byte[] frame, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            await OperatorFrames.WriteFrameAsync(_toServer, frame, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            throw await LostAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    internal async Task SendDataAsync(long id, ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ThrowIfClosed();
            await OperatorFrames.WriteDataAsync(_toServer, id, data, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            throw await LostAsync(ex).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Tells the server to stop request <paramref name="id"/>; never throws (the connection may be gone).</summary>
    internal void CancelQuietly(long id)
    {
        if (_fault is not null)
        {
            return;
        }

        _ = Task.Run(async () =>
        {
            try
            {
                await SendAsync(new OperatorMessage { Type = OperatorMessageTypes.Cancel, Id = id }, _closing.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperatorConnectionLostException or OperationCanceledException or ObjectDisposedException)
            {
                // The connection is gone: the server cancels everything of a closed connection.
            }
        });
    }

    /// <summary>The end of request <paramref name="id"/> arrived: its place goes to the next request waiting.</summary>
    private void Ended(long id)
    {
        if (_calls.TryRemove(id, out var call))
        {
            _gate.Release(call.Cost);
        }
    }

    private async Task ReadLoopAsync()
    {
        Exception end;
        try
        {
            while (true)
            {
                // A data frame's bytes come in a pooled buffer, handed back by the call once used.
                var frame = await OperatorFrames.ReadPooledAsync(_fromServer, OperatorFrames.MaxFrameBytes, _closing.Token).ConfigureAwait(false);
                if (frame is not { } f)
                {
                    end = new OperatorConnectionLostException("the server closed the connection");
                    break;
                }

                if (f.Id == 0 && f.Message is { Type: OperatorMessageTypes.Error } closing)
                {
                    // The server's last word about the connection itself (a protocol violation, too many connections).
                    end = new OperatorConnectionLostException($"the server closed the connection: {UntrustedText.ForTerminal(closing.Error?.Message ?? "no reason given")}");
                    break;
                }

                if (!_calls.TryGetValue(f.Id, out var call) || !call.Deliver(f))
                {
                    OperatorFrames.ReturnData(f.Data);
                }

                if (f.Message is { Type: OperatorMessageTypes.Result or OperatorMessageTypes.Error })
                {
                    // Freed here, as the end arrives, not when the caller reads it: a caller waiting for a place while
                    // it has not read its earlier requests' ends still gets one.
                    Ended(f.Id);
                }
            }
        }
        catch (OperationCanceledException)
        {
            end = new OperatorConnectionLostException("the connection was closed");
        }
        catch (ProtocolException ex)
        {
            end = new OperatorConnectionLostException($"the server sent a frame that breaks the protocol ({ex.Message}); the connection was closed", ex);
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            end = new OperatorConnectionLostException($"the connection to the server was lost ({ex.Message})", ex);
        }

        _fault ??= end;
        _gate.Close(_fault);
        foreach (var call in _calls.Values)
        {
            call.Fail(_fault);
        }

        if (end.InnerException is ProtocolException)
        {
            // A peer that breaks the protocol is not talked to any more.
            try
            {
                _toServer.Close();
            }
            catch (IOException)
            {
            }
        }
    }

    /// <summary>A failed write: the reader may still hold the server's last word (why it closed), so it is given a moment.</summary>
    private async Task<OperatorConnectionLostException> LostAsync(Exception ex)
    {
        try
        {
            await _reader.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        return Lost(ex);
    }

    private OperatorConnectionLostException Lost(Exception ex)
    {
        var lost = _fault as OperatorConnectionLostException ?? new OperatorConnectionLostException($"the connection to the server was lost ({ex.Message})", ex);
        _fault ??= lost;
        _gate.Close(lost);
        return lost;
    }

    private void ThrowIfClosed()
    {
        if (_fault is { } fault)
        {
            throw fault as OperatorConnectionLostException ?? new OperatorConnectionLostException(fault.Message, fault);
        }
    }

    public async ValueTask DisposeAsync()
    {
        _fault ??= new OperatorConnectionLostException("the connection was closed");
        _gate.Close(_fault);
        try
        {
            _toServer.Close();
        }
        catch (IOException)
        {
        }

        await _closing.CancelAsync().ConfigureAwait(false);
        if (_owner is not null)
        {
            await _owner.DisposeAsync().ConfigureAwait(false);
        }

        try
        {
            await _reader.WaitAsync(TimeSpan.FromSeconds(5)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
        }

        _closing.Dispose();
    }
}

/// <summary>
/// One request in flight: its items, data and progress as they arrive, then exactly one end (result or error). Disposing
/// a call that has not ended cancels it on the server.
/// </summary>
public sealed class OperatorCall : IAsyncDisposable
{
    private readonly OperatorChannel _channel;
    private readonly Channel<OperatorFrame> _inbound = Channel.CreateUnbounded<OperatorFrame>(new UnboundedChannelOptions { SingleReader = true });
    private int _ended;

    internal OperatorCall(OperatorChannel channel, long id, string op, OperatorCallCost cost)
    {
        _channel = channel;
        Id = id;
        Op = op;
        Cost = cost;
    }

    /// <summary>What the call holds of the connection's bounds until its end arrives.</summary>
    internal OperatorCallCost Cost { get; }

    public long Id { get; }

    public string Op { get; }

    /// <summary>The result, once the call ended well.</summary>
    public JsonElement Result { get; private set; }

    /// <summary>Whether the call ended (result, error or a lost connection).</summary>
    public bool Ended => Volatile.Read(ref _ended) != 0;

    /// <summary>Told of each progress message.</summary>
    public Action<OperatorMessage>? OnProgress { get; set; }

    /// <summary>Told of each <c>send</c> request (uploads: the server asks for bytes from an offset).</summary>
    public Func<OperatorMessage, Task>? OnSend { get; set; }

    /// <summary>Told of each <c>credit</c> grant (uploads: the server takes this many more bytes).</summary>
    public Action<long>? OnCredit { get; set; }

    /// <summary>Told of each chunk of bytes (downloads).</summary>
    public Func<ReadOnlyMemory<byte>, Task>? OnData { get; set; }

    /// <summary>Queues a frame for the call; false when the call has ended (a data frame's buffer is then the caller's).</summary>
    internal bool Deliver(OperatorFrame frame) => _inbound.Writer.TryWrite(frame);

    internal void Fail(Exception fault) => _inbound.Writer.TryComplete(fault);

    /// <summary>
    /// The call's items as they arrive, until its end: returns after a result, throws <see cref="OperatorRemoteException"/>
    /// after an error and <see cref="OperatorConnectionLostException"/> when the connection ends first. Cancelling
    /// <paramref name="ct"/> asks the server to stop the request and keeps reading until it says it has (its last items
    /// still arrive), then throws <see cref="OperationCanceledException"/>.
    /// </summary>
    public async IAsyncEnumerable<JsonElement> ItemsAsync([EnumeratorCancellation] CancellationToken ct = default)
    {
        using var cancel = ct.Register(() => _channel.CancelQuietly(Id));
        while (true)
        {
            OperatorFrame frame;
            try
            {
                frame = await _inbound.Reader.ReadAsync(CancellationToken.None).ConfigureAwait(false);
            }
            catch (ChannelClosedException ex)
            {
                End();
                throw ex.InnerException as OperatorConnectionLostException
                    ?? new OperatorConnectionLostException(ex.InnerException?.Message ?? "the connection was closed", ex.InnerException);
            }

            if (frame.IsData)
            {
                if (OnData is { } onData)
                {
                    await onData(frame.Data).ConfigureAwait(false);
                }

                // The bytes were used (written and hashed) or refused: their pooled buffer goes back.
                OperatorFrames.ReturnData(frame.Data);
                continue;
            }

            var message = frame.Message!;
            switch (message.Type)
            {
                case OperatorMessageTypes.Item when message.Body is { } body:
                    yield return body;
                    break;
                case OperatorMessageTypes.Progress:
                    OnProgress?.Invoke(message);
                    break;
                case OperatorMessageTypes.Credit when message.Bytes is > 0 and var bytes:
                    OnCredit?.Invoke(bytes);
                    break;
                case OperatorMessageTypes.Send when OnSend is { } onSend:
                    await onSend(message).ConfigureAwait(false);
                    break;
                case OperatorMessageTypes.Result:
                    Result = message.Body ?? default;
                    End();
                    yield break;
                case OperatorMessageTypes.Error:
                    End();
                    var error = message.Error ?? new OperatorError { Code = OperatorErrorCodes.Internal, Message = "the server failed without saying why" };
                    if (error.Code == OperatorErrorCodes.Cancelled && ct.IsCancellationRequested)
                    {
                        throw new OperationCanceledException(error.Message, ct);
                    }

                    throw new OperatorRemoteException(error);
            }
        }
    }

    /// <summary>Sends a chunk of the request's bytes (uploads).</summary>
    public Task SendDataAsync(ReadOnlyMemory<byte> data, CancellationToken ct) => _channel.SendDataAsync(Id, data, ct);

    /// <summary>Sends a control message for this request (end of bytes, credit).</summary>
    public Task SendAsync(OperatorMessage message, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(message);
        message.Id = Id;
        return _channel.SendAsync(message, ct);
    }

    private void End() => Interlocked.Exchange(ref _ended, 1);

    /// <summary>
    /// Cancels a call that has not ended: what still arrives for it is dropped, and it keeps its place on the connection
    /// until the server's end of it (the service counts it until then too).
    /// </summary>
    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0)
        {
            _inbound.Writer.TryComplete();
            _channel.CancelQuietly(Id);
        }

        return ValueTask.CompletedTask;
    }
}

/// <summary>The connection to the server ended while a request waited; the request's outcome is unknown or cancelled.</summary>
public sealed class OperatorConnectionLostException(string message, Exception? inner = null) : RemoteConnectionException(message, inner);

/// <summary>The server refused or failed a request and said why.</summary>
public sealed class OperatorRemoteException(OperatorError error) : Exception(UntrustedText.ForTerminal(error?.Message ?? ""))
{
    public OperatorError Error { get; } = error ?? throw new ArgumentNullException(nameof(error));

    public string Code => Error.Code;
}
