using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Tunnel;

/// <summary>
/// One authenticated connection to an agent through its tunnel port. Requests on one instance run one
/// at a time; concurrent work opens one client per request, which sshd carries as its own channel.
/// </summary>
public sealed class TunnelClient : IAsyncDisposable, IDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private long _nextId;

    private TunnelClient(TcpClient tcp, NetworkStream stream, HandshakeResult agent)
    {
        _tcp = tcp;
        _stream = stream;
        Agent = agent;
    }

    /// <summary>What the agent said about itself once the handshake proved both sides (uuid, version).</summary>
    public HandshakeResult Agent { get; }

    /// <summary>Connects to 127.0.0.1:<paramref name="port"/> (or <paramref name="host"/>) and completes the mutual handshake.</summary>
    public static async Task<TunnelClient> ConnectAsync(string host, int port, byte[] secret, TimeSpan handshakeTimeout, CancellationToken ct,
        ServerPolicy? policy = null)
    {
        var tcp = new TcpClient { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(handshakeTimeout);
            try
            {
                await tcp.ConnectAsync(host, port, timeout.Token).ConfigureAwait(false);
                var stream = tcp.GetStream();
                var agent = await TunnelHandshake.ConnectAsync(stream, secret, timeout.Token, policy).ConfigureAwait(false);
                return new TunnelClient(tcp, stream, agent);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                throw new ProtocolException(ProtocolError.Timeout, $"tunnel handshake on port {port} did not finish within {handshakeTimeout.TotalSeconds:0.#} s");
            }
            catch (IOException ex)
            {
                throw new ProtocolException(ProtocolError.Truncated, $"tunnel on port {port} closed during the handshake: {ex.Message}", ex);
            }
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }

    /// <summary>Sends one request and waits for its response. Throws <see cref="RpcException"/> for an error answer.</summary>
    public async Task<JsonElement> InvokeAsync(string method, JsonElement? parameters, CancellationToken ct)
    {
        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            var id = Interlocked.Increment(ref _nextId);
            await Wire.WriteAsync(_stream, new RpcRequest { Id = id, Method = method, Params = parameters }, ProtocolJson.Default.RpcRequest, ct).ConfigureAwait(false);
            var response = await Wire.ReadAsync(_stream, ProtocolJson.Default.RpcResponse, Framing.MaxFrameBytes, ct).ConfigureAwait(false)
                ?? throw new ProtocolException(ProtocolError.Truncated, $"agent closed the tunnel before answering {method}");
            if (response.Id != id)
            {
                throw new ProtocolException(ProtocolError.Malformed, $"agent answered request {response.Id}, expected {id}");
            }

            if (response.Error is { } error)
            {
                throw new RpcException(error.Code, error.Message);
            }

            return response.Result ?? default;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Typed request/response.</summary>
    public async Task<TResult> InvokeAsync<TParams, TResult>(string method, TParams parameters, JsonTypeInfo<TParams> paramsType, JsonTypeInfo<TResult> resultType, CancellationToken ct)
        where TResult : class
    {
        var result = await InvokeAsync(method, Wire.ToElement(parameters, paramsType), ct).ConfigureAwait(false);
        return Wire.FromElement(result, resultType);
    }

    /// <summary>Typed request without parameters.</summary>
    public async Task<TResult> InvokeAsync<TResult>(string method, JsonTypeInfo<TResult> resultType, CancellationToken ct)
        where TResult : class
    {
        var result = await InvokeAsync(method, null, ct).ConfigureAwait(false);
        return Wire.FromElement(result, resultType);
    }

    /// <summary>
    /// Starts a streaming method (upload, download): sends the request, reads the first answer and leaves the
    /// connection to the caller, who then moves raw bytes through <see cref="RawStream"/>. Holds no lock: a
    /// streaming client serves one transfer only.
    /// </summary>
    internal async Task<(long Id, JsonElement Ready)> StartStreamAsync(string method, JsonElement parameters, CancellationToken ct)
    {
        var id = Interlocked.Increment(ref _nextId);
        await Wire.WriteAsync(_stream, new RpcRequest { Id = id, Method = method, Params = parameters }, ProtocolJson.Default.RpcRequest, ct).ConfigureAwait(false);
        return (id, await ReadResponseAsync(id, method, ct).ConfigureAwait(false));
    }

    /// <summary>Reads the response to request <paramref name="id"/>; RpcException for an error answer.</summary>
    internal async Task<JsonElement> ReadResponseAsync(long id, string method, CancellationToken ct)
    {
        var response = await Wire.ReadAsync(_stream, ProtocolJson.Default.RpcResponse, Framing.MaxFrameBytes, ct).ConfigureAwait(false)
            ?? throw new ProtocolException(ProtocolError.Truncated, $"agent closed the tunnel before answering {method}");
        if (response.Id != id)
        {
            throw new ProtocolException(ProtocolError.Malformed, $"agent answered request {response.Id}, expected {id}");
        }

        if (response.Error is { } error)
        {
            throw new RpcException(error.Code, error.Message);
        }

        return response.Result ?? default;
    }

    /// <summary>The connection's byte stream, for the raw phase of a transfer.</summary>
    internal NetworkStream RawStream => _stream;

    public void Dispose()
    {
        _stream.Dispose();
        _tcp.Dispose();
        _gate.Dispose();
    }

    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>An error answer from an agent, with its code from the protocol's code table.</summary>
public sealed class RpcException(int code, string message) : Exception(message)
{
    public int Code { get; } = code;

    /// <summary>PATH_DENIED, TIMEOUT, … (see <see cref="RpcErrorCodes.Name"/>).</summary>
    public string CodeName => RpcErrorCodes.Name(Code);
}
