using System.Net.Sockets;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Gate;

/// <summary>
/// eph-gate operator: an operator's SSH session (stdin/stdout) relayed to the hub's operator service. One first frame
/// names the key and the session; then bytes go both ways unchanged. When the operator's side ends, the hub is told
/// (its receive side ends) and its remaining output still reaches the operator; when the hub closes, the relay ends.
/// </summary>
internal static class OperatorRelay
{
    /// <summary>The plain line the operator's terminal gets (through ssh) when no hub listens.</summary>
    public static string HubNotRunning(string socketPath) => $"eph-gate: the hub is not running at {socketPath}";

    /// <summary>Relays until the hub closes; 0 on a clean end, 1 when the hub could not be reached.</summary>
    public static async Task<int> RunAsync(Stream input, Stream output, string socketPath, GateRequest first, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(first);
        ArgumentNullException.ThrowIfNull(error);
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            using (var connect = new CancellationTokenSource(TimeSpan.FromSeconds(10)))
            {
                await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath), connect.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ArgumentException)
        {
            socket.Dispose();
            await error.WriteLineAsync(HubNotRunning(socketPath)).ConfigureAwait(false);
            await error.FlushAsync().ConfigureAwait(false);
            return 1;
        }

        using (socket)
        {
            await using var hub = new NetworkStream(socket, ownsSocket: false);
            try
            {
                await Wire.WriteAsync(hub, first, ProtocolJson.Default.GateRequest, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or IOException)
            {
                await error.WriteLineAsync(HubNotRunning(socketPath)).ConfigureAwait(false);
                return 1;
            }

            var toHub = Task.Run(() => PumpAsync(input, hub, () => Shutdown(socket)));
            // The hub's side decides the end: its output is relayed until it closes (or the operator's ssh is gone).
            await PumpAsync(hub, output, () => { }).ConfigureAwait(false);
            _ = toHub.ContinueWith(t => _ = t.Exception, TaskScheduler.Default);
            return 0;
        }
    }

    /// <summary>
    /// Bytes one read may take: a quarter of the largest data frame, so a mebibyte crosses the relay in a few reads
    /// and writes rather than dozens (with the pipes grown, see <see cref="PipeCapacity"/>).
    /// </summary>
    internal const int BufferBytes = 256 * 1024;

    /// <summary>Copies until the source ends or either side fails, flushing each piece; then <paramref name="ended"/>.</summary>
    private static async Task PumpAsync(Stream from, Stream to, Action ended)
    {
        var buffer = new byte[BufferBytes];
        try
        {
            while (true)
            {
                var n = await from.ReadAsync(buffer).ConfigureAwait(false);
                if (n == 0)
                {
                    break;
                }

                await to.WriteAsync(buffer.AsMemory(0, n)).ConfigureAwait(false);
                await to.FlushAsync().ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // One side is gone: the relay ends as if it had ended cleanly.
        }

        ended();
    }

    private static void Shutdown(Socket socket)
    {
        try
        {
            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }
}
