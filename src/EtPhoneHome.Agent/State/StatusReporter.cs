namespace EtPhoneHome.Agent;

/// <summary>Keeps <c>status.json</c> up to date for <c>eph-agent status</c>; write failures are logged, never fatal.</summary>
public sealed class StatusReporter(string configDir, string server, int rpcPort)
{
    private readonly object _sync = new();

    /// <summary>The server the agent connects to now (user@host:port), shown by <c>eph-agent status</c>.</summary>
    public string Server { get; set; } = server;
    private AgentStatus _current = new() { State = AgentStates.Connecting, Since = DateTimeOffset.UtcNow };

    public AgentStatus Current
    {
        get
        {
            lock (_sync)
            {
                return _current;
            }
        }
    }

    /// <summary>Records a state; <c>since</c> moves only when the state itself changes.</summary>
    public void Set(string state, string? uuid = null, int? tunnelPort = null, string? lastError = null, DateTimeOffset? nextAttempt = null)
    {
        AgentStatus status;
        lock (_sync)
        {
            var since = _current.State == state ? _current.Since : DateTimeOffset.UtcNow;
            status = new AgentStatus
            {
                State = state,
                Server = Server,
                TunnelPort = tunnelPort,
                Uuid = uuid ?? _current.Uuid,
                Since = since,
                LastError = lastError ?? (state == AgentStates.Online ? null : _current.LastError),
                Pid = Environment.ProcessId,
                RpcPort = rpcPort,
                NextAttempt = nextAttempt,
            };
            _current = status;
        }

        try
        {
            status.Save(configDir);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            AgentLog.Warn($"cannot write {AgentStatus.FileName}: {ex.Message}");
        }
    }
}
