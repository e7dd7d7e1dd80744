using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// A TCP relay on 127.0.0.1 that cuts its first connection after a number of response bytes (a broken
/// download) and relays later ones whole. <see cref="CreateHttpClient"/> routes every connection through it
/// while requests keep their original URL and Host (so presigned signatures stay valid).
/// </summary>
internal sealed class CuttingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly long _cutAfter;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private int _connections;

    public CuttingProxy(int targetPort, long cutFirstAfterBytes)
    {
        _targetPort = targetPort;
        _cutAfter = cutFirstAfterBytes;
        _listener.Start();
        _loop = Task.Run(AcceptAsync);
    }

    public int Connections => Volatile.Read(ref _connections);

    public ConcurrentQueue<string> Requests { get; } = new();

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public HttpClient CreateHttpClient() => new(new SocketsHttpHandler
    {
        ConnectCallback = async (_, ct) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await socket.ConnectAsync(IPAddress.Loopback, Port, ct);
            return new NetworkStream(socket, ownsSocket: true);
        },
    });

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException or InvalidOperationException)
            {
                // InvalidOperationException: disposed (listener stopped) before this loop first reached the accept.
                return;
            }

            var index = Interlocked.Increment(ref _connections);
            _ = Task.Run(() => RelayAsync(client, index == 1 ? _cutAfter : long.MaxValue));
        }
    }

    private async Task RelayAsync(TcpClient client, long limit)
    {
        using (client)
        using (var server = new TcpClient())
        {
            try
            {
                await server.ConnectAsync(IPAddress.Loopback, _targetPort, _stop.Token);
                var up = Pump(client.GetStream(), server.GetStream(), long.MaxValue, record: true);
                var down = Pump(server.GetStream(), client.GetStream(), limit, record: false);
                await Task.WhenAny(up, down);
            }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException)
            {
            }
        }
    }

    private async Task Pump(Stream from, Stream to, long limit, bool record)
    {
        var buffer = new byte[64 * 1024];
        long sent = 0;
        try
        {
            while (sent < limit)
            {
                var read = await from.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, limit - sent)), _stop.Token);
                if (read == 0)
                {
                    return;
                }

                if (record)
                {
                    Requests.Enqueue(Encoding.ASCII.GetString(buffer, 0, Math.Min(read, 4096)));
                }

                await to.WriteAsync(buffer.AsMemory(0, read), _stop.Token);
                sent += read;
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        try
        {
            await _loop;
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
    }
}
