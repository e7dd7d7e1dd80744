using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Operations;
namespace EtPhoneHome.Hub;

/// <summary>Settings of the hub's health monitor.</summary>
public sealed record HealthOptions
{
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(30);
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(10);
    public const int DefaultThreshold = 3;

    /// <summary>Time between two rounds of checks.</summary>
    public TimeSpan Interval { get; init; } = DefaultInterval;

    /// <summary>Longest wait for one check (tunnel handshake and heartbeat RPC).</summary>
    public TimeSpan Timeout { get; init; } = DefaultTimeout;

    /// <summary>Failed checks in a row after which the client is unhealthy and its session is closed.</summary>
    public int Threshold { get; init; } = DefaultThreshold;

    /// <summary>Checks run at once.</summary>
    public int MaxConcurrentChecks { get; init; } = 32;

    /// <summary>Throws with the setting's name and limits when a value is out of range.</summary>
    public void Validate()
    {
        if (Interval < TimeSpan.FromMilliseconds(100) || Interval > TimeSpan.FromHours(1))
        {
            throw new ArgumentOutOfRangeException(nameof(Interval), Interval, "the health interval must be between 0.1 s and 3600 s");
        }

        if (Timeout < TimeSpan.FromMilliseconds(100) || Timeout > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentOutOfRangeException(nameof(Timeout), Timeout, "the health timeout must be between 0.1 s and 600 s");
        }

        if (Threshold is < 1 or > 100)
        {
            throw new ArgumentOutOfRangeException(nameof(Threshold), Threshold, "the health threshold must be between 1 and 100 failed checks");
        }

        if (MaxConcurrentChecks < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxConcurrentChecks), MaxConcurrentChecks, "at least one check must be allowed at a time");
        }
    }
}

/// <summary>One liveness check of a session through its tunnel. Throws when the client does not answer properly.</summary>
public interface IHealthProbe
{
    Task CheckAsync(SessionRecord session, TimeSpan timeout, CancellationToken ct);
}

/// <summary>
/// The default probe: connects to the session's tunnel port, completes the mutual handshake over the session
/// secret and calls <c>heartbeat</c>. That proves the whole path — sshd's forward, the agent's listener, the agent
/// process itself — not just the control channel. The probe is the hub's own check, so it is not recorded in the
/// operator history.
/// </summary>
public sealed class TunnelHealthProbe(string host = "127.0.0.1") : IHealthProbe
{
    public async Task CheckAsync(SessionRecord session, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(session);
        await using var tunnel = await TunnelClient.ConnectAsync(host, session.TunnelPort, session.Secret, timeout, ct).ConfigureAwait(false);
        var beat = await tunnel.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, ct).ConfigureAwait(false);
        if (!string.Equals(beat.Uuid, session.Uuid, StringComparison.OrdinalIgnoreCase))
        {
            throw new ProtocolException(ProtocolError.Malformed, $"the tunnel answered for client {beat.Uuid}, not {session.Uuid}");
        }
    }
}

/// <summary>
/// What the hub knows of a session's control channel: when its last frame (a heartbeat) arrived, and how recent that
/// must be to count as fresh (the heartbeat interval with some slack). The monitor reads it from the hub's memory, not
/// from the registry, so it holds when the registry cannot record heartbeats (a full disk).
/// </summary>
public sealed record ControlChannelLiveness(Func<long, DateTimeOffset?> LastFrameAt, TimeSpan FreshFor);

/// <summary>What one round of checks found.</summary>
public sealed record HealthSweep(int Checked, int Healthy, IReadOnlyList<HealthFailure> Failures)
{
    /// <summary>Sessions that reached the threshold in this round and were closed.</summary>
    public IEnumerable<HealthFailure> MarkedUnhealthy => Failures.Where(f => f.MarkedUnhealthy);
}

/// <summary>
/// A failed check. <paramref name="MarkedUnhealthy"/>: the threshold was reached in this round and the client marked
/// unhealthy; <paramref name="SessionKept"/>: it was marked but its session stays open, because its control channel
/// proved the agent alive while the tunnel failed.
/// </summary>
public sealed record HealthFailure(string Uuid, long SessionId, string Reason, int ConsecutiveFailures, bool MarkedUnhealthy, bool SessionKept = false);

/// <summary>
/// The hub's health monitor. Every <see cref="HealthOptions.Interval"/> it checks each online session through its
/// tunnel (<see cref="IHealthProbe"/>) within <see cref="HealthOptions.Timeout"/>. Failures in a row are counted
/// per session; at <see cref="HealthOptions.Threshold"/> the registry marks the client unhealthy, emits
/// <c>client.unhealthy</c> with the reason and closes the session in one transaction, and the hub's session loop
/// then ends the control channel, so the agent reconnects once it can. An answered check resets the count and
/// clears the unhealthy mark. The control-channel heartbeats catch a dead connection; this catches a live
/// connection whose agent no longer serves requests (hung, frozen, tunnel broken).
/// <para>
/// Anyone on the server can connect to a tunnel port, so tunnel trouble alone is not proof of a dead agent. A check
/// whose handshake went through but whose request was answered BUSY is an answered check. And a session whose control
/// channel carried a frame since its failures began, within <see cref="ControlChannelLiveness.FreshFor"/>, is marked
/// unhealthy (once, with the event) but not closed: the agent process is alive and talking; only a session whose
/// control channel is quiet too is closed.
/// </para>
/// </summary>
public sealed class HealthMonitor
{
    private readonly ISessionStore _sessions;
    private readonly IHealthStore _health;
    private readonly IHealthProbe _probe;
    private readonly HealthOptions _options;
    private readonly TimeProvider _time;
    private readonly IEphLog _log;
    private readonly Dictionary<long, int> _failures = [];
    private readonly Dictionary<long, DateTimeOffset> _failingSince = [];
    private readonly HashSet<long> _markedKept = [];
    private readonly HashSet<long> _seen = [];
    private readonly ControlChannelLiveness? _control;
    private readonly Func<Exception, bool>? _registryFault;
    private readonly Func<SessionRecord, bool>? _watches;

    /// <summary>A monitor; <paramref name="watches"/> picks the sessions it checks (a hub's own when several hubs share the registry; null: all).</summary>
    public HealthMonitor(ISessionStore sessions, IHealthStore health, IHealthProbe probe, HealthOptions options, TimeProvider? time = null, IEphLog? log = null,
        ControlChannelLiveness? control = null, Func<Exception, bool>? registryFault = null, Func<SessionRecord, bool>? watches = null)
    {
        _watches = watches;
        _control = control;
        _registryFault = registryFault;
        _sessions = sessions ?? throw new ArgumentNullException(nameof(sessions));
        _health = health ?? throw new ArgumentNullException(nameof(health));
        _probe = probe ?? throw new ArgumentNullException(nameof(probe));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _options.Validate();
        _time = time ?? TimeProvider.System;
        _log = log ?? NullLog.Instance;
    }

    public HealthOptions Options => _options;

    /// <summary>Runs rounds until cancelled; the first round starts one interval after the start.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.Interval, _time, ct).ConfigureAwait(false);
                await CheckOnceAsync(ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A registry hiccup must not end monitoring; the next round tries again. A full disk is said once by the
                // hub (registryFault), not once per round.
                if (_registryFault?.Invoke(ex) != true)
                {
                    _log.Warning(HubServer.LogSource, $"health check round failed: {ex.Message}");
                }
            }
        }
    }

    /// <summary>One round: checks every online session once and applies the threshold.</summary>
    public async Task<HealthSweep> CheckOnceAsync(CancellationToken ct)
    {
        var sessions = _sessions.ListOpenSessions().Where(s => s.OnlineAt is not null && s.ClosedAt is null && _watches?.Invoke(s) != false).ToList();
        var open = sessions.Select(s => s.Id).ToHashSet();
        foreach (var gone in _failures.Keys.Where(id => !open.Contains(id)).ToList())
        {
            _failures.Remove(gone);
        }

        foreach (var gone in _failingSince.Keys.Where(id => !open.Contains(id)).ToList())
        {
            _failingSince.Remove(gone);
        }

        _seen.IntersectWith(open);
        _markedKept.IntersectWith(open);
        var roundStart = _time.GetUtcNow();

        var outcomes = new (SessionRecord Session, string? Error)[sessions.Count];
        await Parallel.ForEachAsync(Enumerable.Range(0, sessions.Count),
            new ParallelOptions { MaxDegreeOfParallelism = _options.MaxConcurrentChecks, CancellationToken = ct },
            async (i, token) => outcomes[i] = (sessions[i], await ProbeAsync(sessions[i], token).ConfigureAwait(false))).ConfigureAwait(false);

        var healthy = 0;
        var failures = new List<HealthFailure>();
        foreach (var (session, error) in outcomes)
        {
            var firstCheck = _seen.Add(session.Id);
            if (error is null)
            {
                healthy++;
                _failingSince.Remove(session.Id);
                var wasMarked = _markedKept.Remove(session.Id);
                // Writes only on a change: a recovery, or the first check of a session (clears an earlier mark).
                if (_failures.Remove(session.Id) | firstCheck | wasMarked)
                {
                    _health.RecordHealthSuccess(session.Uuid);
                    if (wasMarked)
                    {
                        _log.Information(HubServer.LogSource, $"client {session.Uuid} answers through its tunnel again; no longer unhealthy");
                    }
                }

                continue;
            }

            var count = _failures.GetValueOrDefault(session.Id) + 1;
            _failures[session.Id] = count;
            if (!_failingSince.ContainsKey(session.Id))
            {
                _failingSince[session.Id] = roundStart;
            }

            var marked = false;
            var kept = false;
            if (count >= _options.Threshold && ControlChannelFresh(session.Id) is { } quietFor)
            {
                // The tunnel fails but the agent keeps talking on its control channel: a crowded or broken tunnel, not a
                // dead agent. Marked and evented once; the session stays.
                kept = true;
                if (_markedKept.Add(session.Id))
                {
                    marked = _health.MarkUnhealthy(session.Uuid, session.Id, error, count, closeSession: false);
                    _log.Warning(HubServer.LogSource, $"client {session.Uuid} unhealthy after {count} failed check(s): {error}; session {session.Id} kept " +
                         $"(its control channel spoke {quietFor.TotalSeconds:0.#} s ago)");
                }
                else
                {
                    _health.RecordHealthFailure(session.Uuid, error, count);
                }
            }
            else if (count >= _options.Threshold)
            {
                marked = _health.MarkUnhealthy(session.Uuid, session.Id, error, count);
                _failures.Remove(session.Id);
                _failingSince.Remove(session.Id);
                _markedKept.Remove(session.Id);
                _log.Warning(HubServer.LogSource, marked
                    ? $"client {session.Uuid} unhealthy after {count} failed check(s): {error}; session {session.Id} closed"
                    : $"client {session.Uuid} failed {count} check(s) but session {session.Id} was already closed");
            }
            else
            {
                _health.RecordHealthFailure(session.Uuid, error, count);
                _log.Information(HubServer.LogSource, $"client {session.Uuid} health check {count}/{_options.Threshold} failed: {error}");

            }

            failures.Add(new HealthFailure(session.Uuid, session.Id, error, count, marked, kept));
        }

        return new HealthSweep(sessions.Count, healthy, failures);
    }

    /// <summary>
    /// How long ago the session's control channel last carried a frame, when that was after its checks began to fail
    /// and within <see cref="ControlChannelLiveness.FreshFor"/>; null otherwise (or when the hub does not say).
    /// </summary>
    private TimeSpan? ControlChannelFresh(long sessionId)
    {
        if (_control?.LastFrameAt(sessionId) is not { } last || !_failingSince.TryGetValue(sessionId, out var since))
        {
            return null;
        }

        var quietFor = _time.GetUtcNow() - last;
        return last >= since && quietFor <= _control.FreshFor ? quietFor : null;
    }

    /// <summary>Null when the client answered; otherwise the reason.</summary>
    private async Task<string?> ProbeAsync(SessionRecord session, CancellationToken ct)
    {
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(ct);
        limit.CancelAfter(_options.Timeout);
        try
        {
            await _probe.CheckAsync(session, _options.Timeout, limit.Token).WaitAsync(_options.Timeout, _time, limit.Token).ConfigureAwait(false);
            return null;
        }
        catch (RpcException ex) when (ex.Code == RpcErrorCodes.Busy)
        {
            // The agent proved the secret and answered: alive, only at its limit of connections.
            return null;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException
                                   || (ex is ProtocolException { Error: ProtocolError.Timeout }))
        {
            return $"no answer through the tunnel within {_options.Timeout.TotalSeconds:0.#} s";
        }
        catch (Exception ex)
        {
            return HealthText.Describe(ex);
        }
    }
}
