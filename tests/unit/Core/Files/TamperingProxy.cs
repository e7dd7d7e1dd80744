using System.Net;
using System.Net.Sockets;

namespace EtPhoneHome.Tests.Unit.Files;

/// <summary>
/// A loopback TCP relay in front of an agent that can break the first connection after a number of bytes, or flip
/// one byte, in either direction: a dropped tunnel and a corrupted stream, on demand.
/// </summary>
internal sealed class TamperingProxy : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _targetPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _relays = [];
    private int _connections;

    public TamperingProxy(int targetPort)
    {
        _targetPort = targetPort;
        _listener.Start();
        _ = AcceptAsync();
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Close the first connection once this many bytes went operator → agent.</summary>
    public long? KillUpstreamAfter { get; init; }

    /// <summary>Close the first connection once this many bytes went agent → operator.</summary>
    public long? KillDownstreamAfter { get; init; }

    /// <summary>Invert the byte at this offset of the operator → agent stream (every connection).</summary>
    public long? FlipUpstreamAt { get; init; }

    /// <summary>Invert the byte at this offset of the agent → operator stream (every connection).</summary>
    public long? FlipDownstreamAt { get; init; }

    public int Connections => Volatile.Read(ref _connections);

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception)
            {
                return;
            }

            var first = Interlocked.Increment(ref _connections) == 1;
            var upstream = new TcpClient();
            await upstream.ConnectAsync(IPAddress.Loopback, _targetPort);
            var pair = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            lock (_relays)
            {
                _relays.Add(Task.WhenAll(
                    PumpAsync(client, upstream, first ? KillUpstreamAfter : null, FlipUpstreamAt, pair),
                    PumpAsync(upstream, client, first ? KillDownstreamAfter : null, FlipDownstreamAt, pair)));
            }
        }
    }

    private static async Task PumpAsync(TcpClient from, TcpClient to, long? killAfter, long? flipAt, CancellationTokenSource pair)
    {
        var buffer = new byte[64 * 1024];
        long total = 0;
        var killed = false;
        try
        {
            while (true)
            {
                var n = await from.GetStream().ReadAsync(buffer, pair.Token);
                if (n == 0)
                {
                    break;
                }

                if (flipAt is { } at && at >= total && at < total + n)
                {
                    buffer[at - total] ^= 0xFF;
                }

                if (killAfter is { } limit && total + n >= limit)
                {
                    await to.GetStream().WriteAsync(buffer.AsMemory(0, (int)(limit - total)), pair.Token);
                    killed = true;
                    break; // drop the connection mid-stream
                }

                await to.GetStream().WriteAsync(buffer.AsMemory(0, n), pair.Token);
                total += n;
            }
        }
        catch (Exception)
        {
            // Either side went away.
        }
        finally
        {
            if (killed)
            {
                // The bytes written so far must reach the receiver before the connection drops: an abortive close
                // (RST) throws away whatever still sits in the send buffer, which on a loaded machine can be all of
                // it, and then there is nothing to resume from. Close gracefully, waiting up to 10 s for the data.
                try
                {
                    to.Client.LingerState = new System.Net.Sockets.LingerOption(true, 10);
                    to.Client.Shutdown(System.Net.Sockets.SocketShutdown.Send);
                    to.Client.Close();
                }
                catch (Exception)
                {
                    // The receiver went away first.
                }
            }

            await pair.CancelAsync();
            from.Client.Close(0);
            to.Client.Close(0);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Task[] relays;
        lock (_relays)
        {
            relays = [.. _relays];
        }

        await Task.WhenAll(relays).WaitAsync(TimeSpan.FromSeconds(10));
        _stop.Dispose();
    }
}
