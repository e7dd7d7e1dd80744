using System.Net.Sockets;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Gate;

/// <summary>Settings of a session relay.</summary>
internal sealed record SessionRelayOptions
{
    /// <summary>How long the relay waits for a hub that went away to come back before it ends the session.</summary>
    public TimeSpan Grace { get; init; } = TimeSpan.FromSeconds(120);

    /// <summary>Pause between attempts to reach the hub again.</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Time the hub has to answer a connection attempt.</summary>
    public TimeSpan AnswerTimeout { get; init; } = TimeSpan.FromSeconds(5);
}

/// <summary>
/// The relay of <c>eph-gate session</c>: the SSH session's stdin/stdout on one side, the hub's unix socket on the other.
/// </summary>
internal sealed class SessionRelay
{
    private readonly Stream _agentIn;
    private readonly Stream _agentOut;
    private readonly Func<CancellationToken, Task<Socket>> _connectHub;
    private readonly GateRequest _first;
    private readonly SessionRelayOptions _options;
    private readonly Action<string> _log;

    public SessionRelay(Stream agentIn, Stream agentOut, Func<CancellationToken, Task<Socket>> connectHub, GateRequest first,
        SessionRelayOptions options, Action<string> log)
    {
        _agentIn = agentIn;
        _agentOut = agentOut;
        _connectHub = connectHub;
        _first = first;
        _options = options;
        _log = log;
    }

    /// <summary>Relays until either side closes; 1 when the hub cannot be reached at all.</summary>
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        Socket socket;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(_options.AnswerTimeout);
            socket = await _connectHub(timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            _log($"the hub is not reachable ({ex.Message}); try again later");
            return 1;
        }

        using (socket)
        {
            await using var hub = new NetworkStream(socket, ownsSocket: false);
            try
            {
                await Wire.WriteAsync(hub, _first, ProtocolJson.Default.GateRequest, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException)
            {
                _log($"the hub closed the connection ({ex.Message})");
                return 1;
            }

            using var done = CancellationTokenSource.CreateLinkedTokenSource(ct);
            var up = CopyAsync(_agentIn, hub, done.Token, () => TryShutdown(socket, SocketShutdown.Send));
            var down = CopyAsync(hub, _agentOut, done.Token, null);
            await Task.WhenAny(up, down).ConfigureAwait(false);
            if (down.IsCompleted)
            {
                // The hub ended the session: stop relaying at once.
                await done.CancelAsync().ConfigureAwait(false);
            }
            else
            {
                // The agent closed its side: give the hub a moment to answer, then leave.
                await Task.WhenAny(down, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
                await done.CancelAsync().ConfigureAwait(false);
            }

            return 0;
        }
    }

    private static async Task CopyAsync(Stream from, Stream to, CancellationToken ct, Action? onEnd)
    {
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer, ct).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                await to.WriteAsync(buffer.AsMemory(0, n), ct).ConfigureAwait(false);
                await to.FlushAsync(ct).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Either side went away; the relay ends.
        }
        finally
        {
            onEnd?.Invoke();
        }
    }

    private static void TryShutdown(Socket socket, SocketShutdown how)
    {
        try
        {
            socket.Shutdown(how);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed.
        }
    }
}
