using System.Buffers.Binary;
using System.Diagnostics;
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
/// <remarks>
/// It relays whole frames only (4-byte big-endian length + JSON, at most <see cref="Framing.MaxFrameBytes"/>), so a
/// hub that dies inside a frame hands the agent nothing of it, and a new hub never gets half a frame. When the hub
/// goes away (end of stream, reset, kill -9) while the session is welcomed, the relay keeps the SSH session and tries
/// the hub socket again every <see cref="SessionRelayOptions.RetryInterval"/> for <see cref="SessionRelayOptions.Grace"/>,
/// dropping the agent's frames meanwhile (heartbeats; nothing is buffered). On a connection it sends a "resume" request
/// naming the session it learned from the welcome it relayed, with that session's secret; the hub's answer
/// is read here and not relayed. Refused, or no hub within the grace period: the relay ends, and with it the SSH session.
/// </remarks>
internal sealed class SessionRelay
{
    private const int MaxAnswerBytes = 64 * 1024;

    private readonly Stream _agentIn;
    private readonly Stream _agentOut;
    private readonly Func<CancellationToken, Task<Socket>> _connectHub;
    private readonly GateRequest _first;
    private readonly SessionRelayOptions _options;
    private readonly Action<string> _log;
    private volatile HubLink? _link;
    private ResumeTicket? _ticket;
    private bool _toldToGo;
    private long _dropped;

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

    /// <summary>Relays until the session ends; 1 when the hub cannot be reached at all at the start.</summary>
    public async Task<int> RunAsync(CancellationToken ct = default)
    {
        HubLink link;
        try
        {
            link = await ConnectAsync(_first, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException)
        {
            _log($"the hub is not reachable ({ex.Message}); try again later");
            return 1;
        }

        _link = link;
        var up = Task.Run(() => UpAsync(ct), CancellationToken.None);
        while (true)
        {
            var down = Task.Run(() => DownAsync(link, ct), CancellationToken.None);
            if (await Task.WhenAny(up, down).ConfigureAwait(false) == up)
            {
                // The agent closed its side: the hub sees the end of the stream; give it a moment to answer, then leave.
                link.ShutdownSend();
                await Task.WhenAny(down, Task.Delay(TimeSpan.FromSeconds(5), CancellationToken.None)).ConfigureAwait(false);
                _link = null;
                link.Dispose();
                return 0;
            }

            var (agentGone, reason) = await down.ConfigureAwait(false);
            _link = null;
            link.Dispose();
            if (agentGone || ct.IsCancellationRequested)
            {
                return 0;
            }

            if (_ticket is null || _toldToGo)
            {
                // Nothing to re-attach (a pending session), or the hub ended the session on purpose.
                return 0;
            }

            _log($"the hub connection ended ({reason}); keeping the session and re-attaching it for up to {_options.Grace.TotalSeconds:0} s");
            var next = await ReattachAsync(up, ct).ConfigureAwait(false);
            if (next is null)
            {
                return 0;
            }

            link = next;
            _link = link;
        }
    }

    /// <summary>Agent → hub: whole frames to the hub attached now; dropped while there is none. Ends with the agent.</summary>
    private async Task UpAsync(CancellationToken ct)
    {
        while (true)
        {
            byte[]? frame;
            try
            {
                frame = await Framing.ReadFrameAsync(_agentIn, Framing.MaxFrameBytes, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException or IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                if (ex is ProtocolException)
                {
                    _log($"the agent sent what is not a frame ({ex.Message}); ending the session");
                }

                return;
            }

            if (frame is null)
            {
                return;
            }

            var link = _link;
            if (link is null || !await link.TryWriteAsync(frame, ct).ConfigureAwait(false))
            {
                Interlocked.Increment(ref _dropped);
            }
        }
    }

    /// <summary>Hub → agent: whole frames, until the hub connection ends (or the agent's side breaks).</summary>
    private async Task<(bool AgentGone, string Reason)> DownAsync(HubLink link, CancellationToken ct)
    {
        while (true)
        {
            byte[]? frame;
            try
            {
                frame = await Framing.ReadFrameAsync(link.Stream, Framing.MaxFrameBytes, ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException or IOException or SocketException or ObjectDisposedException)
            {
                return (false, ex.Message);
            }
            catch (OperationCanceledException)
            {
                return (false, "stopping");
            }

            if (frame is null)
            {
                return (false, "closed by the hub");
            }

            Inspect(frame);
            try
            {
                await _agentOut.WriteAsync(WithHeader(frame), ct).ConfigureAwait(false);
                await _agentOut.FlushAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                return (true, "the SSH session ended");
            }
        }
    }

    /// <summary>Learns the session from the welcome; notes a hub that tells the agent to go.</summary>
    private void Inspect(byte[] frame)
    {
        ControlMessage message;
        try
        {
            message = Wire.Deserialize(frame, ProtocolJson.Default.ControlMessage);
        }
        catch (ProtocolException)
        {
            return; // Not ours to judge: the agent reads it.
        }

        switch (message.Type)
        {
            case ControlTypes.Welcome when message is { Uuid: { Length: > 0 } uuid, SessionId: { } sessionId, SessionSecret: { Length: > 0 } secret }:
                _ticket = new ResumeTicket(uuid, sessionId, secret);
                break;
            case ControlTypes.Refused or ControlTypes.Reconnect:
                _toldToGo = true;
                break;
        }
    }

    /// <summary>Tries the hub until it takes the session back, refuses it, or the grace period ends; null ends the relay.</summary>
    private async Task<HubLink?> ReattachAsync(Task agentGone, CancellationToken ct)
    {
        var ticket = _ticket!;
        var request = _first with { Op = GateResume.Op, Uuid = ticket.Uuid, SessionId = ticket.SessionId, SessionSecret = ticket.SessionSecret };
        var lost = Stopwatch.StartNew();
        var attempts = 0;
        string? lastError = null;
        while (true)
        {
            if (agentGone.IsCompleted || ct.IsCancellationRequested)
            {
                return null;
            }

            if (lost.Elapsed >= _options.Grace)
            {
                _log($"the hub did not come back within {_options.Grace.TotalSeconds:0} s ({attempts} attempt(s), last: {lastError ?? "none"}); ending the session");
                return null;
            }

            attempts++;
            HubLink? link = null;
            try
            {
                link = await ConnectAsync(request, ct).ConfigureAwait(false);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.AnswerTimeout);
                var answer = await Wire.ReadAsync(link.Stream, ProtocolJson.Default.GateResumeResponse, MaxAnswerBytes, timeout.Token).ConfigureAwait(false);
                if (answer is null)
                {
                    // Closed without an answer: a hub dying (again) or still starting; a refusal is always said.
                    lastError = "the hub closed the connection without an answer";
                }
                else if (!answer.Ok)
                {
                    _log($"the hub refused to re-attach session {ticket.SessionId}: {answer.Message ?? "no reason given"}; ending the session");
                    link.Dispose();
                    return null;
                }
                else
                {
                    var dropped = Interlocked.Exchange(ref _dropped, 0);
                    _log($"session {ticket.SessionId} re-attached after {lost.Elapsed.TotalSeconds:0.0} s; {dropped} frame(s) from the agent dropped meanwhile");
                    return link;
                }
            }
            catch (Exception ex) when (ex is SocketException or IOException or ProtocolException
                                           || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                lastError = ex.Message;
            }

            link?.Dispose();
            await Task.WhenAny(agentGone, Task.Delay(_options.RetryInterval, ct)).ConfigureAwait(false);
        }
    }

    private async Task<HubLink> ConnectAsync(GateRequest first, CancellationToken ct)
    {
        Socket socket;
        using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            timeout.CancelAfter(_options.AnswerTimeout);
            socket = await _connectHub(timeout.Token).ConfigureAwait(false);
        }

        var link = new HubLink(socket);
        try
        {
            await Wire.WriteAsync(link.Stream, first, ProtocolJson.Default.GateRequest, ct).ConfigureAwait(false);
            return link;
        }
        catch
        {
            link.Dispose();
            throw;
        }
    }

    private static byte[] WithHeader(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }

    /// <summary>What re-attaches the session: its uuid, id and secret, from the welcome. Never logged.</summary>
    private sealed record ResumeTicket(string Uuid, long SessionId, string SessionSecret)
    {
        public override string ToString() => $"ResumeTicket {{ Uuid = {Uuid}, SessionId = {SessionId} }}";
    }

    /// <summary>One connection to the hub. Only the agent → hub pump writes to it once it is attached.</summary>
    private sealed class HubLink(Socket socket) : IDisposable
    {
        public NetworkStream Stream { get; } = new(socket, ownsSocket: true);

        /// <summary>Writes one whole frame; false (and the connection is cut, so the reader notices) when it fails.</summary>
        public async Task<bool> TryWriteAsync(byte[] payload, CancellationToken ct)
        {
            try
            {
                await Stream.WriteAsync(WithHeader(payload), ct).ConfigureAwait(false);
                await Stream.FlushAsync(ct).ConfigureAwait(false);
                return true;
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                Shutdown(SocketShutdown.Both);
                return false;
            }
        }

        public void ShutdownSend() => Shutdown(SocketShutdown.Send);

        private void Shutdown(SocketShutdown how)
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

        public void Dispose() => Stream.Dispose();
    }
}
