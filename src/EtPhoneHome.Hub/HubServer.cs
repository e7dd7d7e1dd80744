using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;

using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Webhooks;
namespace EtPhoneHome.Hub;

/// <summary>
/// The hub daemon: answers eph-gate on the data directory's unix socket — key checks for sshd, and the
/// control channel of every session (hello, admission, tunnel check, heartbeats). Fully asynchronous:
/// a connection costs a few tasks, not a thread.
/// </summary>
public sealed partial class HubServer : IAsyncDisposable
{
    /// <summary>The source of the hub's log entries (its health monitor's and registry watch's too).</summary>
    public const string LogSource = "eph-hub";

    private const int MaxGateFrameBytes = 64 * 1024;
    private const int MaxControlFrameBytes = 64 * 1024;

    private readonly SqliteRegistry _registry;
    private readonly HubOptions _options;
    private readonly OfferedKeyCache _offered;
    private readonly SemaphoreSlim _admissions;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _background = [];
    private readonly object _connectionsLock = new();
    private readonly HashSet<Task> _connections = [];
    private readonly Dictionary<string, int> _sessionsPerKey = new(StringComparer.Ordinal);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<long, DateTimeOffset> _lastControlFrame = new();
    private readonly RegistryWriteWatch _writes;
    // Sessions a previous hub left open whose gates may re-attach them (until the resume grace ends), and the sessions
    // this hub serves now (a session is attached to one control channel at a time).
    private readonly Dictionary<long, SessionRecord> _awaitingResume = [];
    private readonly HashSet<long> _attached = [];
    private bool _resumeGraceOver;
    private Socket? _listener;
    private FileStream? _lock;
    private volatile OpenSessionSnapshot _snapshot = new(0, []);
    private int _activeSessions;
    private string? _hubId;

    public HubServer(SqliteRegistry registry, HubOptions options)
    {
        _registry = registry ?? throw new ArgumentNullException(nameof(registry));
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _offered = new OfferedKeyCache(Math.Max(1, options.MaxOfferedKeys));
        _admissions = new SemaphoreSlim(Math.Max(1, options.MaxConcurrentAdmissions));
        _writes = new RegistryWriteWatch(options.DataDirectory.Path, options.Log);
        if (options.RelayAddress is not null)
        {
            _relay = new HubRelay(FindHub, options.DataDirectory.HubRelayKeyFile, options.RelaySsh) { DeadAfter = options.DeadHubTimeout };
        }

        var operators = NewOperatorService();
        OperatorSessionHandler = operators.ServeAsync;
        HubPeerHandler = operators.ServeAsync;
    }

    /// <summary>True while the registry refuses writes (a full disk): sessions are kept, new ones refused.</summary>
    public bool RegistryUnwritable => _writes.Unwritable;

    /// <summary>Path of the unix socket eph-gate connects to.</summary>
    public string SocketPath => _options.DataDirectory.HubSocket;

    /// <summary>This hub's id among the hubs sharing the registry (known once started).</summary>
    public string HubId => _hubId ?? throw new InvalidOperationException("the hub id is known once the hub has started");

    /// <summary>Host name recorded in this hub's sessions and heartbeat.</summary>
    private string HostName => _options.Host ?? Environment.MachineName;

    /// <summary>Sessions currently served by this hub (admitted and not yet closed).</summary>
    public int ActiveSessions => Volatile.Read(ref _activeSessions);

    /// <summary>
    /// Takes the hub lock, keeps the sessions a previous hub left open whose gates still run (they may re-attach for
    /// <see cref="HubOptions.ResumeGrace"/>) and closes the rest, binds the socket (removing a stale socket file, mode
    /// 0660) and starts accepting. Returns once the socket is ready.
    /// </summary>
    public Task StartAsync(CancellationToken ct = default)
    {
        if (_listener is not null)
        {
            throw new InvalidOperationException("the hub is already started");
        }

        var path = SocketPath;
        // The lock decides who owns the socket file; a hub that cannot take it touches nothing.
        var hubLock = AcquireLock(_options.DataDirectory.HubLockFile, path);
        try
        {
            if (File.Exists(path))
            {
                if (HubPresence.SocketAnswers(path))
                {
                    // Something serves it without holding the lock (a hub of an older build): leave it alone.
                    throw new InvalidOperationException($"another hub is already listening on {path}; this one changed nothing");
                }

                // Left by a hub that died without cleaning up (the lock was free, so nobody serves it).
                File.Delete(path);
            }
        }
        catch
        {
            hubLock.Dispose();
            throw;
        }

        _lock = hubLock;

        try
        {
            _hubId = _options.HubId is { } given ? HubIds.Validate(given) : HubIdentity.Resolve(_options.DataDirectory, null);
            RefuseHubIdInUse(_hubId);
        }
        catch
        {
            ReleaseLock();
            throw;
        }

        try
        {
            _registry.BeatHub(_hubId, HostName, Environment.ProcessId);
            PublishRelay(_hubId);
            RefreshRelayKeys();
            AdoptSessionsLeftOpen();

            _registry.SetSetting(SqliteRegistry.HeartbeatSetting, _options.HeartbeatSeconds.ToString(CultureInfo.InvariantCulture));
            _registry.SetSetting(TunnelPortRange.Setting, _options.TunnelPorts.ToString());
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            // A full disk: the hub still starts and serves what it can; readers already treat the old sessions as offline
            // (their heartbeats are stale), and the next hub start closes them.
        }

        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            listener.Bind(new UnixDomainSocketEndPoint(path));
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite);
            }

            listener.Listen(1024);
        }
        catch
        {
            listener.Dispose();
            ReleaseLock();
            throw;
        }

        _listener = listener;
        _ = ct;
        _background.Add(Task.Run(() => AcceptLoopAsync(listener, _stop.Token)));
        _background.Add(Task.Run(() => PollLoopAsync(_stop.Token)));
        _background.Add(Task.Run(() => ExpireResumesAsync(_stop.Token)));
        _background.Add(Task.Run(WarmClientIndex));
        _background.Add(Task.Run(() => HubHeartbeatLoopAsync(_stop.Token)));
        if (_options.Health is { } health)
        {
            // The monitor asks this hub, not the registry, when a session's control channel last spoke: a session whose
            // agent keeps talking is not closed over tunnel trouble alone (anyone on the server can crowd a tunnel port).
            var control = new ControlChannelLiveness(
                id => _lastControlFrame.TryGetValue(id, out var at) ? at : null,
                TimeSpan.FromSeconds(2.0 * _options.HeartbeatSeconds));
            var monitor = new HealthMonitor(_registry, _registry, _options.HealthProbe ?? new TunnelHealthProbe(_options.TunnelHost), health, log: _options.Log,

                control: control, registryFault: _writes.Failed, watches: HoldsSession);
            _background.Add(Task.Run(() => monitor.RunAsync(_stop.Token)));
        }

        Log(EphLogLevel.Information, $"hub listening on {path}");
        return Task.CompletedTask;
    }

    /// <summary>
    /// Reads every client into this process's index once at start, so the first search the hub serves (a local
    /// `eph-server clients`, an operator's Get-EphClient) costs a refresh, not a full load (about 0.85 s at 100,000
    /// clients). Later searches refresh it by the rows changed since.
    /// </summary>
    private int _clientSearchesServed;

    /// <summary>Client searches this hub answered over its socket (tests).</summary>
    internal int ClientSearchesServed => Volatile.Read(ref _clientSearchesServed);

    private void WarmClientIndex()
    {
        try
        {
            _ = _registry.QueryClients(new ClientQuery { Ids = [""] });
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.Data.Common.DbException or IOException)
        {
            Log(EphLogLevel.Warning, $"the client index was not loaded at start (the first search loads it): {ex.Message}");
        }
    }

    /// <summary>Starts the hub and runs it until <paramref name="ct"/> is cancelled.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        await StartAsync(ct).ConfigureAwait(false);
        try
        {
            await Task.Delay(Timeout.Infinite, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // Normal shutdown.
        }

        await StopAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Stops accepting and closes every connection. Admitted sessions stay open in the registry: their gates keep the SSH
    /// sessions and re-attach them to the next hub (which closes those not back within its resume grace).
    /// </summary>
    public async Task StopAsync()
    {
        if (_stop.IsCancellationRequested)
        {
            return;
        }

        _stop.Cancel();
        _listener?.Dispose();
        Task[] all;
        lock (_connectionsLock)
        {
            all = [.. _connections, .. _background];
        }

        try
        {
            await Task.WhenAll(all).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException)
        {
            // Best effort.
        }

        if (_lock is not null)
        {
            // Only the lock holder created the socket file; nobody else can have replaced it while the lock was held.
            try
            {
                File.Delete(SocketPath);
            }
            catch (IOException)
            {
                // Already gone.
            }

            ReleaseLock();
        }
    }

    /// <summary>Takes the hub lock or says which hub holds it; never waits.</summary>
    private static FileStream AcquireLock(string lockFile, string socketPath)
    {
        var options = new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.ReadWrite, Share = FileShare.None };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            // FileShare.None is an exclusive flock on Unix: released by the kernel when the process dies, however it dies.
            return new FileStream(lockFile, options);
        }
        catch (IOException ex) when (File.Exists(lockFile))
        {
            throw new InvalidOperationException(
                $"another hub is already running on this data directory (it holds {lockFile} and serves {socketPath}); this one changed nothing", ex);
        }
    }

    private void ReleaseLock()
    {
        _lock?.Dispose();
        _lock = null;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        if (_relay is not null)
        {
            await _relay.DisposeAsync().ConfigureAwait(false);
        }

        _stop.Dispose();
        _admissions.Dispose();
    }

    // ------------------------------------------------------------------ accept and dispatch

    private async Task AcceptLoopAsync(Socket listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(ct).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException)
            {
                return;
            }
            catch (SocketException ex)
            {
                Log(EphLogLevel.Error, $"accept failed: {ex.Message}");
                await Task.Delay(100, CancellationToken.None).ConfigureAwait(false);
                continue;
            }

            var task = HandleConnectionAsync(socket, ct);
            lock (_connectionsLock)
            {
                _connections.Add(task);
            }

            _ = task.ContinueWith(t =>
            {
                lock (_connectionsLock)
                {
                    _connections.Remove(t);
                }
            }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
    }

    private async Task HandleConnectionAsync(Socket socket, CancellationToken ct)
    {
        await Task.Yield();
        await using var stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            GateRequest? request;
            using (var first = CancellationTokenSource.CreateLinkedTokenSource(ct))
            {
                first.CancelAfter(TimeSpan.FromSeconds(10));
                request = await Wire.ReadAsync(stream, ProtocolJson.Default.GateRequest, MaxGateFrameBytes, first.Token).ConfigureAwait(false);
            }

            if (request is null)
            {
                return;
            }

            switch (request.Op)
            {
                case "keys":
                    await AnswerKeysAsync(stream, request, ct).ConfigureAwait(false);
                    break;
                case "session":
                    await ServeSessionAsync(stream, request, ct).ConfigureAwait(false);
                    break;
                case GateResume.Op:
                    await ResumeSessionAsync(stream, request, PeerPid(socket), ct).ConfigureAwait(false);
                    break;
                case OperatorOp:
                    await OperatorConnectionAsync(stream, request, PeerPid(socket), ct).ConfigureAwait(false);
                    break;
                case HubClientSearch.Op:
                    if (await HubClientSearch.ServeAsync(stream, HubClientSearch.PeerUid(socket), query => ClientQueries.Search(_registry, query), ct).ConfigureAwait(false))
                    {
                        Interlocked.Increment(ref _clientSearchesServed);
                    }
                    else
                    {
                        Log(EphLogLevel.Warning, $"client search from pid {PeerPid(socket)?.ToString(CultureInfo.InvariantCulture) ?? "?"} refused: only the hub's own user may ask; closing");
                    }

                    break;
                default:
                    Log(EphLogLevel.Warning, $"gate sent an unknown op \"{Clip(request.Op)}\"; closing");
                    break;
            }
        }
        catch (OperationCanceledException)
        {
            // Shutdown or a first-frame timeout.
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or SocketException)
        {
            Log(EphLogLevel.Warning, $"gate connection ended: {ex.Message}");
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            // The registry is out of reach (said once by the watch): a key question goes unanswered, so sshd refuses
            // the key — closed, not open — until the registry answers again.
        }
        catch (Exception ex)
        {
            Log(EphLogLevel.Error, $"unexpected fault on a gate connection: {ex}");
        }
    }

    // ------------------------------------------------------------------ keys

    /// <summary>The authorized_keys lines for one offered key (empty = refuse).</summary>
    internal string[] KeyLines(string fingerprint, string keyType, string key)
    {
        if (!FingerprintPattern().IsMatch(fingerprint) || !KeyTypePattern().IsMatch(keyType) || !KeyBlobPattern().IsMatch(key))
        {
            return [];
        }

        // An operator key is answered before anything about clients: a forced eph-gate operator and no forwarding at all
        // (restrict: no port forwarding, pty, agent or X11); a removed operator's key gets nothing, so sshd refuses it.
        if (_registry.FindOperatorKey(fingerprint) is { } op)
        {
            return OperatorKeyLines(op, fingerprint, keyType, key);
        }

        // Another hub's relay key (published in the registry by that hub): the same forced, restricted operator gate
        // while that hub lives. Once it is taken for dead, nothing: a hub's credential is never a client's key, so it
        // must not land in the approval queue as a pending client (and the relaying hub is refused, not answered in a
        // protocol it does not speak).
        if (PublishedRelayKey(fingerprint) is { } hub)
        {
            if (hub.IsAlive(DateTimeOffset.UtcNow, _options.DeadHubTimeout))
            {
                return HubKeyLines(hub, fingerprint, keyType, key);
            }

            Log(EphLogLevel.Warning, $"key {fingerprint} is the relay key of hub {hub.Id}, which has not beaten since {hub.LastSeen:u}; refused");
            return [];
        }

        _offered.Remember(fingerprint, keyType + " " + key);
        var record = _registry.GetKey(fingerprint);
        var command = $"{_options.GatePath} session --socket {SocketPath} --fingerprint {fingerprint}";
        if (record?.Status == KeyStatus.Revoked)
        {
            return [];
        }

        // An approved key may listen on its own server port and no other: permitlisten names exactly that port, so a
        // client (compromised or not) can never take a port meant for another client or for the server's own services.
        // Without a port (none left) the session still comes, without forwarding, and the hello is refused with why.
        var port = record?.Status == KeyStatus.Approved ? TunnelPortOf(record) : null;
        return port is { } p
            ? [string.Create(CultureInfo.InvariantCulture, $"restrict,port-forwarding,permitlisten=\"{_options.TunnelHost}:{p}\",command=\"{command}\" {keyType} {key}")]
            : [$"restrict,command=\"{command}\" {keyType} {key}"];
    }

    /// <summary>The approved key's server port, assigned now when it has none (or one outside this hub's range).</summary>
    private int? TunnelPortOf(KeyRecord key)
    {
        if (key.TunnelPort is { } port && _options.TunnelPorts.Contains(port))
        {
            return port;
        }

        return NewTunnelPort(key.Fingerprint);
    }

    /// <summary>A new port for the key, free on this host now; null (logged) when the key is no longer approved or the range is full.</summary>
    private int? NewTunnelPort(string fingerprint)
    {
        try
        {
            return _registry.AssignTunnelPort(fingerprint, _options.TunnelPorts, p => TunnelPortRange.IsFree(_options.TunnelHost, p));
        }
        catch (InvalidOperationException ex)
        {
            Log(EphLogLevel.Warning, $"no tunnel port for key {fingerprint}: {ex.Message}");
            return null;
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            // A full disk, said once by the watch: the key gets no forward now, and its agent is told to retry.
            return null;
        }
    }

    private async Task AnswerKeysAsync(Stream stream, GateRequest request, CancellationToken ct)
    {
        var lines = KeyLines(request.Fingerprint, request.KeyType ?? "", request.Key ?? "");
        await Wire.WriteAsync(stream, new GateKeysResponse { Lines = lines }, ProtocolJson.Default.GateKeysResponse, ct).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ sessions

    private async Task ServeSessionAsync(Stream stream, GateRequest gate, CancellationToken ct)
    {
        // Every session is an sshd process and an eph-gate on this server: one key holds only a few, counted from the
        // moment the gate names the key (sshd authenticated it), so sessions that never say hello count too. The extra
        // session is told why and closed, which ends its gate and its sshd process.
        var fingerprint = gate.Fingerprint;
        KeyStatus? status;
        try
        {
            status = _registry.GetKey(fingerprint)?.Status;
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            // A PostgreSQL registry out of reach fails reads too: the agent is told to come back, as on a full disk.
            await SendAsync(stream, RegistryRefusal(), ct).ConfigureAwait(false);
            return;
        }

        var limit = KeyLimits.MaxSessions(status, _options.MaxSessionsPerPendingKey, _options.MaxSessionsPerApprovedKey);
        if (!TryTakeKeySlot(fingerprint, limit))
        {
            await RefuseExtraSessionAsync(stream, fingerprint, limit, status == KeyStatus.Approved, ct).ConfigureAwait(false);
            return;
        }

        try
        {
            await ServeSessionWithSlotAsync(stream, gate, ct).ConfigureAwait(false);
        }
        finally
        {
            ReleaseKeySlot(fingerprint);
        }
    }

    private async Task RefuseExtraSessionAsync(Stream stream, string fingerprint, int limit, bool approved, CancellationToken ct)
    {
        Log(EphLogLevel.Warning, $"key {fingerprint} already holds {limit} session(s); refused another");
        using (var drain = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            // Read the hello the agent sends first, so the refusal is read before the close (a close with unread data
            // resets the connection); a peer that sends nothing gets a few seconds, not the hello timeout.
            drain.CancelAfter(TimeSpan.FromSeconds(Math.Min(5, _options.HelloTimeout.TotalSeconds)));
            try
            {
                await ReadControlAsync(stream, drain.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                // Nothing or garbage: refused all the same.
            }
        }

        await SendAsync(stream, Refused(
            $"key {fingerprint} already holds {limit} open session(s), the most a{(approved ? "n approved" : " pending")} key may hold; this one is closed",
            retryAfter: 60), ct).ConfigureAwait(false);
    }

    // ------------------------------------------------------------------ re-attaching sessions after a hub restart

    /// <summary>
    /// At start: a session a previous hub left open whose gate still runs (an eph-gate of this host, started before the
    /// session, whose command line names the session's key) may be re-attached by that gate until the resume grace ends;
    /// every other open session is closed now.
    /// </summary>
    private void AdoptSessionsLeftOpen()
    {
        var kept = 0;
        var closed = 0;
        // Only this hub's sessions: the others' belong to hubs that run (or that the survivors close once dead).
        foreach (var session in _registry.ListOpenSessions().Where(HoldsSession))
        {
            if (_options.ResumeGrace > TimeSpan.Zero && session.GatePid is { } pid && GateRuns(session, pid))
            {
                lock (_awaitingResume)
                {
                    _awaitingResume[session.Id] = session;
                }

                kept++;
            }
            else
            {
                _registry.CloseSession(session.Id, "hub restarted");
                closed++;
            }
        }

        if (closed > 0)
        {
            Log(EphLogLevel.Information, $"closed {closed} session(s) left open by a previous hub (their gates are gone)");
        }

        if (kept > 0)
        {
            Log(EphLogLevel.Information, $"kept {kept} session(s) left open by a previous hub for their gates to re-attach (for {_options.ResumeGrace.TotalSeconds:0} s)");
        }
    }

    /// <summary>Closes the sessions a previous hub left whose gates did not re-attach them within the resume grace.</summary>
    private async Task ExpireResumesAsync(CancellationToken ct)
    {
        lock (_awaitingResume)
        {
            if (_awaitingResume.Count == 0)
            {
                return;
            }
        }

        try
        {
            await Task.Delay(_options.ResumeGrace, ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }

        List<SessionRecord> expired;
        lock (_awaitingResume)
        {
            expired = [.. _awaitingResume.Values];
            _awaitingResume.Clear();
            _resumeGraceOver = true;
        }

        foreach (var session in expired)
        {
            try
            {
                if (_registry.GetOpenSession(session.Uuid)?.Id != session.Id)
                {
                    continue; // Closed meanwhile (revoked, replaced, unhealthy).
                }

                _registry.CloseSession(session.Id, "not re-attached after a hub restart");
                Log(EphLogLevel.Information, $"client {session.Uuid}: session {session.Id} closed, its gate did not re-attach it within {_options.ResumeGrace.TotalSeconds:0} s");
            }
            catch (Exception ex)
            {
                Log(EphLogLevel.Error, $"could not close session {session.Id}: {ex.Message}");
            }
        }
    }

    /// <summary>
    /// A gate whose hub went away re-attaches its session: verified against the registry and the process table, then
    /// the control channel is served again as before — no new welcome, so the agent keeps its secret and its tunnel.
    /// </summary>
    private async Task ResumeSessionAsync(Stream stream, GateRequest gate, int? peerPid, CancellationToken ct)
    {
        // After a restart every gate comes back within a second: the registry work is bounded like admissions.
        string? refusal;
        SessionRecord? session;
        string who;
        await _admissions.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            refusal = CheckResume(gate, peerPid, out session);
            if (refusal is null && !TryTakeKeySlot(session!.Fingerprint, _options.MaxSessionsPerApprovedKey))
            {
                refusal = $"key {session.Fingerprint} already holds {_options.MaxSessionsPerApprovedKey} open session(s)";
            }
            else if (refusal is null && !TryAttachResumed(session!.Id))
            {
                ReleaseKeySlot(session.Fingerprint);
                refusal = $"session {session.Id} is not waiting to be re-attached";
            }

            who = refusal is null ? $"client {session!.Uuid} ({_registry.GetClient(session.Uuid)?.DisplayName ?? "?"})" : "";
            if (refusal is null)
            {
                try
                {
                    _registry.TouchSession(session!.Id);
                }
                catch
                {
                    // Closed without an answer: the gate tries again, and the session waits for it.
                    Detach(session!.Id, backToWaiting: session);
                    ReleaseKeySlot(session.Fingerprint);
                    throw;
                }
            }
        }
        finally
        {
            _admissions.Release();
        }

        if (refusal is not null)
        {
            Log(EphLogLevel.Warning, $"refused to re-attach session {gate.SessionId?.ToString(CultureInfo.InvariantCulture) ?? "?"} of client {Clip(gate.Uuid)} " +
                $"(key {Clip(gate.Fingerprint)}, gate pid {gate.GatePid?.ToString(CultureInfo.InvariantCulture) ?? "?"}, " +
                $"peer pid {peerPid?.ToString(CultureInfo.InvariantCulture) ?? "unknown"}): {refusal}");
            await Wire.WriteAsync(stream, new GateResumeResponse { Ok = false, Message = refusal }, ProtocolJson.Default.GateResumeResponse, ct).ConfigureAwait(false);
            return;
        }

        var resumed = session!;
        try
        {
            try
            {
                await Wire.WriteAsync(stream, new GateResumeResponse { Ok = true }, ProtocolJson.Default.GateResumeResponse, ct).ConfigureAwait(false);
            }
            catch
            {
                // The gate is gone or will try again; the session waits for it (the grace still runs).
                Detach(resumed.Id, backToWaiting: resumed);
                throw;
            }

            Log(EphLogLevel.Information, $"{who}: session {resumed.Id} re-attached by its gate (pid {resumed.GatePid}), tunnel port {resumed.TunnelPort}");
            await ServeAttachedSessionAsync(stream, resumed, who, ct).ConfigureAwait(false);
        }
        finally
        {
            ReleaseKeySlot(resumed.Fingerprint);
        }
    }

    /// <summary>Why a resume request is refused; null when it names an open session of this gate and its key is approved.</summary>
    private string? CheckResume(GateRequest gate, int? peerPid, out SessionRecord? session)
    {
        session = null;
        if (gate.Uuid is not { Length: > 0 } uuid || gate.SessionId is not { } id || gate.GatePid is not { } pid)
        {
            return "a resume names the client, the session and the gate's pid";
        }

        if (peerPid is { } peer && peer != pid)
        {
            return $"pid {pid} is not the connecting process";
        }

        var open = _registry.GetOpenSession(uuid);
        if (open is null || open.Id != id)
        {
            return $"session {id} is not open";
        }

        if (!string.Equals(open.Fingerprint, gate.Fingerprint, StringComparison.Ordinal))
        {
            return $"session {id} belongs to another key";
        }

        if (open.GatePid != pid)
        {
            return $"session {id} belongs to another gate";
        }

        if (!string.Equals(open.Host, _options.Host ?? Environment.MachineName, StringComparison.OrdinalIgnoreCase))
        {
            return $"session {id} is served by another host";
        }

        if (!HoldsSession(open))
        {
            return $"session {id} is held by another hub";
        }

        if (!GateResume.Verify(open.Secret, gate.SessionSecret))
        {
            return "the session secret does not match";
        }

        if (!GateRuns(open, pid))
        {
            return $"process {pid} is not the gate of session {id}";
        }

        if (_registry.GetKey(open.Fingerprint)?.Status != KeyStatus.Approved)
        {
            CloseQuietly(open.Id, "key no longer approved");
            return $"key {open.Fingerprint} is not approved";
        }

        if (open.OnlineAt is null)
        {
            CloseQuietly(open.Id, "not online when the hub restarted");
            return $"session {id} never came online";
        }

        session = open;
        return null;
    }

    /// <summary>True while <paramref name="pid"/> runs that session's gate (tests replace the process table).</summary>
    private bool GateRuns(SessionRecord session, int pid)
        => _options.GateProcessCheck?.Invoke(session, pid)
           ?? (KeyAdministration.IsGateOf(session, pid) && CommandLineNamesKey(pid, session.Fingerprint));

    /// <summary>On Linux, the gate's command line names the key sshd authenticated (--fingerprint FP); elsewhere not checked.</summary>
    private static bool CommandLineNamesKey(int pid, string fingerprint)
    {
        if (!OperatingSystem.IsLinux())
        {
            return true;
        }

        try
        {
            var args = File.ReadAllText($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}/cmdline").Split('\0');
            for (var i = 0; i + 1 < args.Length; i++)
            {
                if (args[i] == "--fingerprint" && string.Equals(args[i + 1], fingerprint, StringComparison.Ordinal))
                {
                    return true;
                }
            }

            return false;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>The pid of the process on the other end of a unix socket (SO_PEERCRED); null where it cannot be read.</summary>
    internal static int? PeerPid(Socket socket)
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            // struct ucred { pid_t pid; uid_t uid; gid_t gid; } at SOL_SOCKET (1), SO_PEERCRED (17).
            Span<byte> credentials = stackalloc byte[12];
            var n = socket.GetRawSocketOption(1, 17, credentials);
            return n >= 4 ? System.Runtime.InteropServices.MemoryMarshal.Read<int>(credentials) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    private bool TryAttach(long sessionId)
    {
        lock (_awaitingResume)
        {
            return _attached.Add(sessionId);
        }
    }

    /// <summary>Moves a session from waiting (left by the previous hub) to attached; false when it was not waiting.</summary>
    private bool TryAttachResumed(long sessionId)
    {
        lock (_awaitingResume)
        {
            if (!_awaitingResume.Remove(sessionId))
            {
                return false;
            }

            _attached.Add(sessionId);
            return true;
        }
    }

    private void Detach(long sessionId, SessionRecord? backToWaiting = null)
    {
        bool closeNow;
        lock (_awaitingResume)
        {
            _attached.Remove(sessionId);
            closeNow = backToWaiting is not null && _resumeGraceOver;
            if (backToWaiting is not null && !closeNow)
            {
                _awaitingResume[sessionId] = backToWaiting;
            }
        }

        if (closeNow)
        {
            CloseQuietly(sessionId, "not re-attached after a hub restart");
        }
    }

    private void CloseQuietly(long sessionId, string reason)
    {
        try
        {
            _registry.CloseSession(sessionId, reason);
        }
        catch (Exception ex)
        {
            Log(EphLogLevel.Error, $"could not close session {sessionId}: {ex.Message}");
        }
    }

    private async Task ServeSessionWithSlotAsync(Stream stream, GateRequest gate, CancellationToken ct)
    {
        var fingerprint = gate.Fingerprint;
        var startedAt = Stopwatch.GetTimestamp();
        ControlMessage? hello;
        using (var helloTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            helloTimeout.CancelAfter(_options.HelloTimeout);
            try
            {
                hello = await Wire.ReadAsync(stream, ProtocolJson.Default.ControlMessage, MaxControlFrameBytes, helloTimeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                await SendAsync(stream, Refused($"no hello within {_options.HelloTimeout.TotalSeconds:0} s"), ct).ConfigureAwait(false);
                return;
            }
            catch (ProtocolException ex)
            {
                await SendAsync(stream, Refused($"the first control frame was not a hello: {ex.Message}"), ct).ConfigureAwait(false);
                return;
            }
        }

        if (hello is null)
        {
            return;
        }

        if (hello.Type != ControlTypes.Hello)
        {
            await SendAsync(stream, Refused($"expected a hello as the first control message, got \"{Clip(hello.Type)}\""), ct).ConfigureAwait(false);
            return;
        }

        if (hello.Protocol != ProtocolInfo.Version)
        {
            await SendAsync(stream, Refused(
                $"protocol version mismatch: the hub speaks {ProtocolInfo.Version}, the agent speaks {hello.Protocol?.ToString(CultureInfo.InvariantCulture) ?? "none"}; upgrade the older side"), ct).ConfigureAwait(false);
            return;
        }

        // Everything in the hello is unauthenticated text (an unapproved key's too): neutralised and cut before it is
        // logged or stored.
        var identity = ClaimedIdentityRules.Normalise(new AgentIdentity
        {
            ClaimedUuid = hello.Uuid,
            Hostname = hello.Hostname,
            Platform = hello.Platform,
            Username = hello.Username,
            AgentVersion = hello.AgentVersion,
            Capabilities = hello.Capabilities ?? [],
            DisplayName = hello.DisplayName,
            Purpose = hello.Purpose,
            Tags = hello.Tags ?? [],
        });

        var key = _registry.GetKey(fingerprint);
        if (key?.Status == KeyStatus.Revoked)
        {
            await SendAsync(stream, Refused("this key has been revoked"), ct).ConfigureAwait(false);
            return;
        }

        try
        {
            await AnswerHelloAsync(stream, gate, hello, identity, key, startedAt, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            // Nothing was half-written (SQLite rolled the transaction back); the agent is told why and retries later.
            await SendAsync(stream, RegistryRefusal(), ct).ConfigureAwait(false);
        }
    }

    /// <summary>What an agent is told when the registry cannot record its admission.</summary>
    public const string OutOfDiskSpace = "the server is out of disk space (its registry takes no writes); retry later";

    /// <summary>What an agent is told when the registry database cannot be reached.</summary>
    public const string RegistryUnreachable = "the server cannot reach its registry database now; retry later";

    /// <summary>The refusal for the registry's last fault: a full disk or a database out of reach.</summary>
    private ControlMessage RegistryRefusal() => Refused(_writes.Unreachable ? RegistryUnreachable : OutOfDiskSpace, retryAfter: 60);

    private bool TryTakeKeySlot(string fingerprint, int limit)
    {
        lock (_sessionsPerKey)
        {
            var held = _sessionsPerKey.GetValueOrDefault(fingerprint);
            if (held >= limit)
            {
                return false;
            }

            _sessionsPerKey[fingerprint] = held + 1;
            return true;
        }
    }

    private void ReleaseKeySlot(string fingerprint)
    {
        lock (_sessionsPerKey)
        {
            if (_sessionsPerKey.GetValueOrDefault(fingerprint) <= 1)
            {
                _sessionsPerKey.Remove(fingerprint);
            }
            else
            {
                _sessionsPerKey[fingerprint]--;
            }
        }
    }

    /// <summary>Sessions this hub serves per key fingerprint now (tests).</summary>
    internal int SessionsOf(string fingerprint)
    {
        lock (_sessionsPerKey)
        {
            return _sessionsPerKey.GetValueOrDefault(fingerprint);
        }
    }

    private async Task AnswerHelloAsync(Stream stream, GateRequest gate, ControlMessage hello, AgentIdentity identity, KeyRecord? key, long startedAt, CancellationToken ct)
    {
        var fingerprint = gate.Fingerprint;
        if (key?.Status != KeyStatus.Approved)
        {
            KeyRecord pending;
            try
            {
                pending = _registry.RecordPendingKey(fingerprint, _offered.Get(fingerprint) ?? key?.PublicKey, identity);
                _writes.Succeeded();
            }
            catch (InvalidOperationException ex)
            {
                await SendAsync(stream, Refused(ex.Message, retryAfter: 300), ct).ConfigureAwait(false);
                return;
            }

            var type = pending.IsMismatch ? ControlTypes.KeyMismatch : ControlTypes.Pending;
            Log(EphLogLevel.Information, $"{type}: key {fingerprint} from {identity.Hostname ?? "unknown host"} waits for approval");
            await SendAsync(stream, new ControlMessage
            {
                Type = type,
                Message = pending.IsMismatch
                    ? $"client {identity.ClaimedUuid} is pinned to another key; an operator must approve key {fingerprint}"
                    : $"key {fingerprint} is waiting for an operator's approval",
            }, ct).ConfigureAwait(false);
            await WaitForDecisionAsync(stream, fingerprint, pending.PublicKey, identity, ct).ConfigureAwait(false);
            return;
        }

        var assigned = TunnelPortOf(key);
        if (assigned is null)
        {
            await SendAsync(stream, RegistryUnwritable
                ? RegistryRefusal()
                : Refused($"no tunnel port is free on the server (range {_options.TunnelPorts})", retryAfter: 300), ct).ConfigureAwait(false);
            return;
        }

        if (hello.TunnelPort != assigned)
        {
            // The agent did not know its port (first connection, or a new machine state), asked for another one, or the
            // key was approved after this connection authenticated (sshd fixed its options without forwarding). When it
            // asked for exactly its port and sshd could not open it, something else holds that port on this host
            // (a leftover session, another program): the key moves to a free port.
            var port = assigned.Value;
            var why = "the key is approved; reconnect to get a tunnel";
            if (hello.RequestedTunnelPort == port && hello.TunnelPort is null && NewTunnelPort(fingerprint) is { } moved)
            {
                Log(EphLogLevel.Information, $"key {fingerprint}: tunnel port {port} could not be opened on this host; the key moves to port {moved}");
                why = $"tunnel port {port} is taken on the server; use port {moved}";
                port = moved;
            }
            else if (hello.RequestedTunnelPort != port)
            {
                why = $"reconnect with the tunnel port of this key, {port}";
            }

            await SendAsync(stream, new ControlMessage
            {
                Type = ControlTypes.Reconnect,
                Message = why,
                TunnelPort = port,
                RetryAfterSeconds = 0,
            }, ct).ConfigureAwait(false);
            return;
        }

        await RunAdmittedSessionAsync(stream, gate, identity, assigned.Value, startedAt, ct).ConfigureAwait(false);
    }

    private async Task WaitForDecisionAsync(Stream stream, string fingerprint, string? publicKey, AgentIdentity identity, CancellationToken ct)
    {
        var lastRefresh = Stopwatch.GetTimestamp();
        var read = ReadControlAsync(stream, ct);
        while (!ct.IsCancellationRequested)
        {
            var tick = Task.Delay(_options.PollInterval, ct);
            if (await Task.WhenAny(read, tick).ConfigureAwait(false) == read)
            {
                var message = await read.ConfigureAwait(false);
                if (message is null)
                {
                    return; // The agent left.
                }

                if (message.Type == ControlTypes.Heartbeat)
                {
                    await SendAsync(stream, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = message.Sequence }, ct).ConfigureAwait(false);
                }

                read = ReadControlAsync(stream, ct);
                continue;
            }

            var key = _registry.GetKey(fingerprint);
            if (key?.Status == KeyStatus.Approved)
            {
                var port = TunnelPortOf(key);
                Log(EphLogLevel.Information, $"key {fingerprint} approved; telling the agent to reconnect{(port is { } p ? $" with tunnel port {p}" : string.Empty)}");
                await SendAsync(stream, new ControlMessage { Type = ControlTypes.Reconnect, Message = "the key was approved", TunnelPort = port, RetryAfterSeconds = 0 }, ct).ConfigureAwait(false);
                return;
            }

            if (key?.Status == KeyStatus.Revoked)
            {
                await SendAsync(stream, Refused("this key has been revoked"), ct).ConfigureAwait(false);
                return;
            }

            // The agent is still here: its key is seen now. A key that was purged or gave way to a newer one while the
            // agent waited is recorded again, so a waiting machine never drops out of the pending list.
            if (key is null || Stopwatch.GetElapsedTime(lastRefresh) >= _options.PendingKeyRefreshInterval)
            {
                lastRefresh = Stopwatch.GetTimestamp();
                try
                {
                    _registry.RecordPendingKey(fingerprint, publicKey, identity);
                }
                catch (InvalidOperationException ex)
                {
                    Log(EphLogLevel.Warning, $"could not refresh pending key {fingerprint}: {ex.Message}");
                }
                catch (Exception ex) when (_writes.Failed(ex))
                {
                    // The agent keeps waiting; the key is recorded again once the disk takes writes.
                }
            }
        }
    }

    private async Task RunAdmittedSessionAsync(Stream stream, GateRequest gate, AgentIdentity identity, int tunnelPort, long startedAt, CancellationToken ct)
    {
        SessionRecord session;
        ClientRecord client;
        // Where an admission's time goes, in its log line: a reconnect storm's slow step is then visible in the log.
        var steps = new AdmissionSteps(startedAt);
        await _admissions.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            steps.Queued();
            client = _registry.AdmitClient(gate.Fingerprint, identity);
            var secret = TunnelHandshake.NewSecret();
            session = _registry.OpenSession(client.Uuid, gate.Fingerprint, _options.Host ?? Environment.MachineName, tunnelPort, secret,
                gate.GatePid, Environment.ProcessId, _hubId);
            await SendAsync(stream, new ControlMessage
            {
                Type = ControlTypes.Welcome,
                Uuid = client.Uuid,
                SessionId = session.Id,
                SessionSecret = Convert.ToBase64String(secret),
                Settings = new SessionSettings
                {
                    AllowedPaths = client.AllowedPaths?.ToArray(),
                    HeartbeatSeconds = _options.HeartbeatSeconds,
                    MaxOutputBytes = _options.MaxOutputBytes,
                },
            }, ct).ConfigureAwait(false);
            steps.Registered();

            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(_options.TunnelTimeout);
                await using var tunnel = await TunnelClient.ConnectAsync(_options.TunnelHost, tunnelPort, secret, _options.TunnelTimeout, timeout.Token).ConfigureAwait(false);
                await tunnel.InvokeAsync(RpcMethods.Heartbeat, null, timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is ProtocolException or RpcException or IOException or SocketException
                                           || (ex is OperationCanceledException && !ct.IsCancellationRequested))
            {
                var reason = ex is OperationCanceledException ? "tunnel check timed out" : $"tunnel check failed: {ex.Message}";
                try
                {
                    _registry.CloseSession(session.Id, reason);
                }
                catch (Exception closeFault) when (_writes.Failed(closeFault))
                {
                    // Left open in the registry; its heartbeat goes stale, so readers show it offline.
                }

                Log(EphLogLevel.Warning, $"client {client.Uuid} ({client.DisplayName}): {reason}");
                return;
            }

            steps.TunnelChecked();
            try
            {
                _registry.MarkSessionOnline(session.Id);
                _writes.Succeeded();
            }
            catch (Exception ex) when (_writes.Failed(ex))
            {
                try
                {
                    _registry.CloseSession(session.Id, "the registry could not record the session online (disk full)");
                }
                catch (Exception closeFault) when (_writes.Failed(closeFault))
                {
                    // Its heartbeat goes stale; readers show it offline.
                }

                await SendAsync(stream, RegistryRefusal(), ct).ConfigureAwait(false);
                return;
            }
        }
        finally
        {
            _admissions.Release();
        }

        Log(EphLogLevel.Information, $"client {client.Uuid} ({client.DisplayName}) online on port {tunnelPort}, session {session.Id} ({steps.Describe()})");
        if (!TryAttach(session.Id))
        {
            return; // Cannot happen for a session opened just now; kept for symmetry with resumes.
        }

        await ServeAttachedSessionAsync(stream, session, $"client {client.Uuid} ({client.DisplayName})", ct).ConfigureAwait(false);
    }

    /// <summary>Serves the control channel of an open session this hub attached, until it ends; then closes it, unless the hub stops.</summary>
    private async Task ServeAttachedSessionAsync(Stream stream, SessionRecord session, string who, CancellationToken ct)
    {
        Interlocked.Increment(ref _activeSessions);
        string? reasonClosed = null;
        try
        {
            reasonClosed = await SessionLoopAsync(stream, session, ct).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or SocketException)
        {
            reasonClosed = $"control channel failed: {ex.Message}";
        }
        catch (OperationCanceledException)
        {
            // The hub stops: the session stays open; its gate keeps the SSH session and re-attaches it to the next hub.
            reasonClosed = null;
        }
        catch (Exception ex)
        {
            // Not a stop of the hub: say what it was.
            reasonClosed = $"hub fault: {ex.Message}";
            Log(EphLogLevel.Error, $"unexpected fault in session {session.Id}: {ex}");
        }
        finally
        {
            Interlocked.Decrement(ref _activeSessions);
            _lastControlFrame.TryRemove(session.Id, out _);
            Detach(session.Id);
            if (reasonClosed is null)
            {
                Log(EphLogLevel.Information, $"{who}: session {session.Id} left open for the next hub (this hub stops)");
            }
            else
            {
                try
                {
                    _registry.CloseSession(session.Id, reasonClosed);
                }
                catch (Exception ex) when (_writes.Failed(ex))
                {
                    // Said once by the watch; the session's heartbeat goes stale, so readers show it offline.
                }
                catch (Exception ex)
                {
                    Log(EphLogLevel.Warning, $"could not record the end of session {session.Id}: {ex.Message}");
                }

                Log(EphLogLevel.Information, $"{who} offline: {reasonClosed}");
            }
        }
    }

    private async Task<string> SessionLoopAsync(Stream stream, SessionRecord session, CancellationToken ct)
    {
        var startedAt = Stopwatch.GetTimestamp();
        var missedAfter = TimeSpan.FromSeconds(3.0 * _options.HeartbeatSeconds);
        var lastFrame = Stopwatch.GetTimestamp();
        var read = ReadControlAsync(stream, ct);
        while (true)
        {
            var tick = Task.Delay(_options.PollInterval, ct);
            if (await Task.WhenAny(read, tick).ConfigureAwait(false) == read)
            {
                var message = await read.ConfigureAwait(false);
                if (message is null)
                {
                    return "control channel closed";
                }

                lastFrame = Stopwatch.GetTimestamp();
                _lastControlFrame[session.Id] = DateTimeOffset.UtcNow;
                if (message.Type == ControlTypes.Heartbeat)
                {
                    // A heartbeat that cannot be recorded (a full disk) is still a heartbeat: the session is kept.
                    try
                    {
                        _registry.TouchSession(session.Id);
                        _writes.Succeeded();
                    }
                    catch (Exception ex) when (_writes.Failed(ex))
                    {
                    }

                    await SendAsync(stream, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = message.Sequence }, ct).ConfigureAwait(false);
                }

                read = ReadControlAsync(stream, ct);
                continue;
            }

            ct.ThrowIfCancellationRequested();
            if (Stopwatch.GetElapsedTime(lastFrame) > missedAfter)
            {
                return "missed heartbeats";
            }

            var snapshot = _snapshot;
            if (snapshot.TakenAt > startedAt && !snapshot.OpenIds.Contains(session.Id))
            {
                var current = _registry.GetOpenSession(session.Uuid);
                if (current?.Id != session.Id)
                {
                    return current is null ? "session closed in the registry" : "replaced";
                }
            }
        }
    }

    private async Task PollLoopAsync(CancellationToken ct)
    {
        long? lastExpiry = null;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                var takenAt = Stopwatch.GetTimestamp();
                var ids = _registry.ListOpenSessions().Select(s => s.Id).ToHashSet();
                _snapshot = new OpenSessionSnapshot(takenAt, ids);
                if (_options.PendingKeyMaxAge is { } maxAge
                    && (lastExpiry is not { } last || Stopwatch.GetElapsedTime(last) >= _options.PendingKeyExpiryInterval))
                {
                    lastExpiry = takenAt;
                    var purged = KeyLimits.PurgePendingKeys(_registry, maxAge, new OperatorContext(KeyLimits.HubActor, Surfaces.Hub));
                    if (purged.Count > 0)
                    {
                        Log(EphLogLevel.Information, $"purged {purged.Count} pending key(s) unseen for more than {KeyLimits.DescribeAge(maxAge)}");
                    }
                }

                await Task.Delay(_options.PollInterval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (Exception ex)
            {
                if (!_writes.Failed(ex))
                {
                    Log(EphLogLevel.Warning, $"registry poll failed: {ex.Message}");
                }

                try
                {
                    await Task.Delay(_options.PollInterval, ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    // ------------------------------------------------------------------ several hubs on one registry

    /// <summary>
    /// True for a session this hub holds: its own, or one recorded before hubs had ids by a hub of this host.
    /// </summary>
    private bool HoldsSession(SessionRecord session)
        => session.HubId is { } hub
            ? string.Equals(hub, _hubId, StringComparison.Ordinal)
            : string.Equals(session.Host, HostName, StringComparison.OrdinalIgnoreCase);

    /// <summary>
    /// Two live hubs with one id would adopt, monitor and close each other's sessions: a start is refused while the id's
    /// heartbeat is fresh and comes from another host (a copied data directory, an id given twice). On this host the
    /// data directory's lock already keeps a second hub out, and the previous holder of the lock may still be exiting.
    /// </summary>
    private void RefuseHubIdInUse(string hubId)
    {
        HubRecord? row;
        try
        {
            row = _registry.ListHubs().FirstOrDefault(h => h.Id == hubId);
        }
        catch (Exception ex) when (_writes.Failed(ex))
        {
            return;
        }

        if (row is null || row.Pid == Environment.ProcessId)
        {
            return; // New, or written by this very process (a hub started again in it).
        }

        var fresh = DateTimeOffset.UtcNow - row.LastSeen < _options.DeadHubTimeout;
        var sameHost = string.Equals(row.Host, HostName, StringComparison.OrdinalIgnoreCase);
        if (fresh && !sameHost)
        {
            throw new InvalidOperationException(
                $"hub id {hubId} is in use by a running hub (host {Clip(row.Host)}, pid {row.Pid}, last heartbeat {row.LastSeen:u}); " +
                "give each hub its own id (--hub-id, $ETPHONEHOME_HUB_ID, or the data directory's hub-id file); this one changed nothing");
        }
    }

    /// <summary>
    /// Writes this hub's heartbeat row and closes the sessions of hubs whose heartbeat is older than
    /// <see cref="HubOptions.DeadHubTimeout"/> (their agents reconnect to a hub that runs).
    /// </summary>
    private async Task HubHeartbeatLoopAsync(CancellationToken ct)
    {
        var hubId = HubId;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await Task.Delay(_options.HubHeartbeatInterval, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }

            try
            {
                _registry.BeatHub(hubId, HostName, Environment.ProcessId);
                RefreshRelayKeys();
                var closed = _registry.CloseSessionsOfDeadHubs(hubId, _options.DeadHubTimeout);
                foreach (var group in closed.GroupBy(s => s.HubId))
                {
                    Log(EphLogLevel.Warning, $"hub {group.Key} has written no heartbeat for over {_options.DeadHubTimeout.TotalSeconds:0} s: closed its {group.Count()} session(s)");
                }
            }
            catch (Exception ex) when (!_writes.Failed(ex))
            {
                Log(EphLogLevel.Warning, $"hub heartbeat failed: {ex.Message}");
            }
            catch
            {
                // A full disk: said once by the write watch.
            }
        }
    }

    // ------------------------------------------------------------------ helpers

    private static Task<ControlMessage?> ReadControlAsync(Stream stream, CancellationToken ct)
        => Wire.ReadAsync(stream, ProtocolJson.Default.ControlMessage, MaxControlFrameBytes, ct);

    private static Task SendAsync(Stream stream, ControlMessage message, CancellationToken ct)
        => Wire.WriteAsync(stream, message, ProtocolJson.Default.ControlMessage, ct);

    private static ControlMessage Refused(string message, int? retryAfter = null)
        => new() { Type = ControlTypes.Refused, Message = message, RetryAfterSeconds = retryAfter };

    private static string Clip(string? s) => s is null ? "" : s.Length <= 40 ? s : s[..40] + "…";

    /// <summary>
    /// Writes one log entry. Entries carry agent-supplied text (claimed names, hostnames, protocol fields): the entry
    /// escapes controls (<see cref="EphLogEntry"/>), so a claimed name can neither forge a second line nor send escape
    /// sequences to whoever reads the log.
    /// </summary>
    private void Log(EphLogLevel level, string line) => _options.Log.Write(level, LogSource, line);

    [GeneratedRegex("^SHA256:[A-Za-z0-9+/=]{20,100}$")]
    private static partial Regex FingerprintPattern();

    [GeneratedRegex("^[A-Za-z0-9@._-]{1,64}$")]
    private static partial Regex KeyTypePattern();

    [GeneratedRegex("^[A-Za-z0-9+/=]{16,16384}$")]
    private static partial Regex KeyBlobPattern();

    private sealed record OpenSessionSnapshot(long TakenAt, HashSet<long> OpenIds);
}
