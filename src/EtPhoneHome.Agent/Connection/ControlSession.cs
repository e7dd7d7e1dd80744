using System.Diagnostics;
using System.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// One SSH connection to the hub: spawns ssh with the reverse forward, waits for sshd's verdict on the
/// forward, sends the hello, then follows the hub's messages on the control channel (ssh's stdout) and
/// keeps heartbeats going until the channel ends, the hub asks to reconnect, or the hub goes silent.
/// </summary>
public sealed class ControlSession
{
    /// <summary>
    /// How long ssh may take to connect and finish the key exchange (its ConnectTimeout): a server that is down or out of
    /// reach gives way to the next one after this.
    /// </summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15);

    /// <summary>
    /// How long to wait for sshd's answer about the forward before giving up on this attempt. Connecting is bounded by
    /// <see cref="ConnectTimeout"/>; this bounds what follows — authentication (the hub answers for the key) and the
    /// forward — which a server in a reconnect storm answers slowly but does answer. Giving up on it after 15 s, as
    /// before, threw away a key exchange the server had already paid for and came back later to pay it again: in a
    /// storm of 150 agents on a loaded machine, 361 attempts ended so and only 57 agents were back after 180 s.
    /// </summary>
    public static readonly TimeSpan ForwardVerdictTimeout = TimeSpan.FromSeconds(90);

    private readonly AgentConfig _config;
    private readonly string _configDir;
    private readonly RpcServer _rpc;
    private readonly StatusReporter _status;
    private readonly CapabilityCache _capabilities;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private long _lastFrameTicks;
    private string? _lastSshError;

    public ControlSession(AgentConfig config, string configDir, RpcServer rpc, StatusReporter status, CapabilityCache capabilities)
    {
        _capabilities = capabilities;
        _config = config;
        _configDir = configDir;
        _rpc = rpc;
        _status = status;
    }

    public async Task<SessionOutcome> RunAsync(CancellationToken ct)
    {
        var state = AgentState.Load(_configDir);
        _lastSshError = null;
        _status.Set(AgentStates.Connecting, uuid: state.Uuid);

        var psi = new ProcessStartInfo(_config.SshPath)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
        };
        foreach (var arg in SshCommandBuilder.Build(_config, _rpc.Port, ValidTunnelPort(state.TunnelPort) ?? 0))
        {
            psi.ArgumentList.Add(arg);
        }

        using var ssh = new Process { StartInfo = psi };
        try
        {
            ssh.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return new SessionOutcome { Error = $"cannot start {_config.SshPath}: {ex.Message}" };
        }

        AgentLog.Info($"ssh started (pid {ssh.Id}) to {_config.ServerUser}@{_config.ServerHost}:{_config.ServerPort}, forwarding to rpc port {_rpc.Port}");
        using var sessionCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var forwardVerdict = new TaskCompletionSource<int?>(TaskCreationOptions.RunContinuationsAsynchronously);
        var stderrTask = Task.Run(() => ReadStderrAsync(ssh.StandardError, forwardVerdict), CancellationToken.None);

        try
        {
            return await FollowAsync(ssh, state, forwardVerdict.Task, sessionCts.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return new SessionOutcome { Error = "stopping" };
        }
        finally
        {
            _rpc.ClearSession();
            await sessionCts.CancelAsync().ConfigureAwait(false);
            await StopSshAsync(ssh).ConfigureAwait(false);
            await stderrTask.WaitAsync(TimeSpan.FromSeconds(2), CancellationToken.None).ContinueWith(_ => { }, TaskScheduler.Default).ConfigureAwait(false);
        }
    }

    private async Task<SessionOutcome> FollowAsync(Process ssh, AgentState state, Task<int?> forwardVerdict, CancellationToken ct)
    {
        var exited = ssh.WaitForExitAsync(ct);
        var verdictTimeout = Task.Delay(ForwardVerdictTimeout, ct);
        var first = await Task.WhenAny(forwardVerdict, exited, verdictTimeout).ConfigureAwait(false);
        ct.ThrowIfCancellationRequested();
        if (first != forwardVerdict)
        {
            if (first == exited)
            {
                // Let the stderr reader catch the last lines (the reason) before reporting.
                await Task.Delay(50, CancellationToken.None).ConfigureAwait(false);
                return new SessionOutcome { Error = SshExitReason(ssh) };
            }

            return new SessionOutcome { Error = $"no answer about the reverse forward within {ForwardVerdictTimeout.TotalSeconds:0} s" };
        }

        var tunnelPort = await forwardVerdict.ConfigureAwait(false);
        AgentLog.Info(tunnelPort is { } p ? $"reverse forward allocated: tunnel port {p}" : "reverse forward refused by the server (key not approved yet?)");

        var stdin = ssh.StandardInput.BaseStream;
        var stdout = ssh.StandardOutput.BaseStream;
        var capabilities = await _capabilities.GetAsync(ct).ConfigureAwait(false);
        try
        {
            await SendAsync(stdin, new ControlMessage
            {
                Type = ControlTypes.Hello,
                Protocol = ProtocolInfo.Version,
                Uuid = state.Uuid,
                Hostname = HostIdentity.Hostname(),
                Platform = HostIdentity.Platform(),
                Username = HostIdentity.Username(),
                AgentVersion = ProtocolInfo.ProductVersion,
                Capabilities = capabilities,
                DisplayName = _config.DisplayName,
                Purpose = _config.Purpose,
                Tags = _config.Tags,
                TunnelPort = tunnelPort,
                RequestedTunnelPort = ValidTunnelPort(state.TunnelPort),
            }, ct).ConfigureAwait(false);
        }
        catch (IOException ex)
        {
            // ssh exited between the forward verdict and the hello (seen under load: the gate's forced command
            // failed): a failed session to retry with backoff, not a reason for the agent to exit.
            await WaitQuietlyAsync(ssh.WaitForExitAsync(CancellationToken.None), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            return new SessionOutcome { ReachedWelcome = false, Error = ssh.HasExited ? SshExitReason(ssh) : $"control channel broken before the hello: {ex.Message}" };
        }

        Touch();

        using var heartbeatCts = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var heartbeatSeconds = _config.HeartbeatS;
        var heartbeatInterval = new StrongBox(TimeSpan.FromSeconds(heartbeatSeconds));
        var silence = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var heartbeats = Task.Run(() => HeartbeatLoopAsync(stdin, heartbeatInterval, silence, heartbeatCts.Token), CancellationToken.None);

        var reachedWelcome = false;
        var uuid = state.Uuid;
        try
        {
            while (true)
            {
                var read = Wire.ReadAsync(stdout, ProtocolJson.Default.ControlMessage, Framing.MaxFrameBytes, ct);
                var done = await Task.WhenAny(read, silence.Task).ConfigureAwait(false);
                if (done == silence.Task)
                {
                    var limit = heartbeatInterval.Value.TotalSeconds * 3;
                    return new SessionOutcome { ReachedWelcome = reachedWelcome, Error = $"no frame from the hub for {limit:0.#} s" };
                }

                ControlMessage? message;
                try
                {
                    message = await read.ConfigureAwait(false);
                }
                catch (ProtocolException ex)
                {
                    return new SessionOutcome { ReachedWelcome = reachedWelcome, Error = $"control channel broken: {ex.Message}" };
                }
                catch (IOException ex)
                {
                    return new SessionOutcome { ReachedWelcome = reachedWelcome, Error = $"control channel broken: {ex.Message}" };
                }

                if (message is null)
                {
                    await WaitQuietlyAsync(ssh.WaitForExitAsync(CancellationToken.None), TimeSpan.FromSeconds(1)).ConfigureAwait(false);
                    var reason = ssh.HasExited ? SshExitReason(ssh) : "control channel closed by the server";
                    return new SessionOutcome { ReachedWelcome = reachedWelcome, Error = reason };
                }

                Touch();
                switch (message.Type)
                {
                    case ControlTypes.Welcome:
                        var secret = DecodeSecret(message.SessionSecret);
                        if (secret is null || string.IsNullOrEmpty(message.Uuid))
                        {
                            return new SessionOutcome { ReachedWelcome = reachedWelcome, Error = "hub sent a welcome without a valid uuid or session secret" };
                        }

                        uuid = message.Uuid;
                        if (state.Uuid != uuid)
                        {
                            state = state with { Uuid = uuid, RegisteredAt = state.RegisteredAt ?? DateTimeOffset.UtcNow };
                            SaveState(state);
                        }

                        _rpc.SetSession(secret, uuid, message.Settings);
                        CryptoClear(secret);
                        if (message.Settings is { HeartbeatSeconds: > 0 } settings)
                        {
                            heartbeatInterval.Value = TimeSpan.FromSeconds(settings.HeartbeatSeconds);
                        }

                        reachedWelcome = true;
                        _status.Set(AgentStates.Online, uuid: uuid, tunnelPort: tunnelPort);
                        AgentLog.Info($"welcome: online as {uuid} on tunnel port {tunnelPort}");
                        break;

                    case ControlTypes.Pending:
                        _status.Set(AgentStates.Pending, uuid: uuid, lastError: message.Message ?? "key awaiting operator approval");
                        AgentLog.Info($"pending: {message.Message ?? "key awaiting operator approval"}; waiting on the open channel");
                        break;

                    case ControlTypes.KeyMismatch:
                        _status.Set(AgentStates.KeyMismatch, uuid: uuid, lastError: message.Message ?? "the uuid is pinned to another key");
                        AgentLog.Warn($"key_mismatch: {message.Message ?? "the claimed uuid is pinned to another key"}; waiting for an operator");
                        break;

                    case ControlTypes.Refused:
                        AgentLog.Warn($"refused by the hub: {message.Message ?? "no reason given"}");
                        return new SessionOutcome { ReachedWelcome = reachedWelcome, Refused = true, Error = "refused: " + (message.Message ?? "no reason given") };

                    case ControlTypes.Reconnect:
                        if (ValidTunnelPort(message.TunnelPort) is { } assigned && assigned != state.TunnelPort)
                        {
                            // The one port this key may forward on the server: the next ssh asks for exactly that.
                            state = state with { TunnelPort = assigned };
                            SaveState(state);
                        }

                        AgentLog.Info($"hub asked to reconnect{(message.Message is null ? string.Empty : ": " + message.Message)}");
                        return new SessionOutcome { ReachedWelcome = reachedWelcome, ReconnectNow = true };

                    case ControlTypes.Heartbeat:
                        break;

                    case ControlTypes.Online:
                        AgentLog.Info("hub confirmed the session is online");
                        break;

                    default:
                        AgentLog.Warn($"ignoring unknown control message type '{Truncate(message.Type)}'");
                        break;
                }
            }
        }
        finally
        {
            await heartbeatCts.CancelAsync().ConfigureAwait(false);
            await WaitQuietlyAsync(heartbeats, TimeSpan.FromSeconds(2)).ConfigureAwait(false);
        }
    }

    private async Task HeartbeatLoopAsync(Stream stdin, StrongBox interval, TaskCompletionSource silence, CancellationToken ct)
    {
        long sequence = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                var period = interval.Value;
                await Task.Delay(period, ct).ConfigureAwait(false);
                var quiet = TimeSpan.FromTicks(Environment.TickCount64 * TimeSpan.TicksPerMillisecond - Interlocked.Read(ref _lastFrameTicks));
                if (quiet > period * 3)
                {
                    silence.TrySetResult();
                    return;
                }

                await SendAsync(stdin, new ControlMessage { Type = ControlTypes.Heartbeat, Sequence = ++sequence }, ct).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        catch (IOException)
        {
            silence.TrySetResult(); // ssh's stdin is gone; the read side reports the reason
        }
    }

    private async Task SendAsync(Stream stdin, ControlMessage message, CancellationToken ct)
    {
        await _writeLock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            await Wire.WriteAsync(stdin, message, ProtocolJson.Default.ControlMessage, ct).ConfigureAwait(false);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadStderrAsync(StreamReader stderr, TaskCompletionSource<int?> forwardVerdict)
    {
        try
        {
            while (await stderr.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                var outcome = SshStderrParser.Parse(line);
                switch (outcome.Kind)
                {
                    case ForwardOutcomeKind.Allocated:
                        forwardVerdict.TrySetResult(outcome.Port);
                        break;
                    case ForwardOutcomeKind.Refused:
                        forwardVerdict.TrySetResult(null);
                        break;
                    default:
                        if (line.Length > 0 && !SshStderrParser.IsDebug(line))
                        {
                            _lastSshError = Truncate(line, 300);
                            AgentLog.Info("ssh: " + _lastSshError);
                        }

                        break;
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
        }
    }

    private string SshExitReason(Process ssh)
    {
        var code = ssh.HasExited ? ssh.ExitCode.ToString(System.Globalization.CultureInfo.InvariantCulture) : "?";
        return _lastSshError is { } last ? $"ssh exited ({code}): {last}" : $"ssh exited ({code})";
    }

    private static async Task StopSshAsync(Process ssh)
    {
        try
        {
            if (!ssh.HasExited)
            {
                ssh.Kill(entireProcessTree: true);
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or System.ComponentModel.Win32Exception)
        {
        }

        await WaitQuietlyAsync(ssh.WaitForExitAsync(CancellationToken.None), TimeSpan.FromSeconds(5)).ConfigureAwait(false);
    }

    /// <summary>A tunnel port the hub may assign (never a privileged port); anything else is ignored.</summary>
    internal static int? ValidTunnelPort(int? port) => port is >= 1024 and <= 65535 ? port : null;

    private void SaveState(AgentState state)
    {
        try
        {
            state.Save(_configDir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            AgentLog.Warn($"cannot write {AgentState.FileName}: {ex.Message}");
        }
    }

    private void Touch() => Interlocked.Exchange(ref _lastFrameTicks, Environment.TickCount64 * TimeSpan.TicksPerMillisecond);

    private static byte[]? DecodeSecret(string? base64)
    {
        if (string.IsNullOrEmpty(base64))
        {
            return null;
        }

        var buffer = new byte[(base64.Length * 3 / 4) + 3];
        return Convert.TryFromBase64String(base64, buffer, out var n) && n >= 16 ? buffer[..n] : null;
    }

    private static void CryptoClear(byte[] secret) => System.Security.Cryptography.CryptographicOperations.ZeroMemory(secret);

    private static string Truncate(string value, int max = 64) => value.Length <= max ? value : value[..max] + "…";

    private static async Task WaitQuietlyAsync(Task task, TimeSpan limit)
    {
        try
        {
            await task.WaitAsync(limit).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException or IOException or InvalidOperationException)
        {
        }
    }

    /// <summary>A mutable interval shared by the reader (which applies the hub's settings) and the heartbeat loop.</summary>
    private sealed class StrongBox(TimeSpan value)
    {
        private long _ticks = value.Ticks;

        public TimeSpan Value
        {
            get => TimeSpan.FromTicks(Interlocked.Read(ref _ticks));
            set => Interlocked.Exchange(ref _ticks, value.Ticks);
        }
    }
}
