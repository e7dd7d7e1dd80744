namespace EtPhoneHome.Core.Registry;

/// <summary>The agents' sessions: opened by the gate, marked online and kept alive by the hub, closed by either.</summary>
public interface ISessionStore
{
    /// <summary>
    /// Opens a session held by hub <paramref name="hubId"/> (closing any earlier open session of the client as "replaced",
    /// whichever hub held it).
    /// </summary>
    SessionRecord OpenSession(string uuid, string fingerprint, string host, int tunnelPort, byte[] secret, int? gatePid, int? hubPid, string? hubId = null);

    /// <summary>Marks a session online after the hub's tunnel handshake succeeded; emits client.connected.</summary>
    void MarkSessionOnline(long sessionId);

    /// <summary>Records a heartbeat.</summary>
    void TouchSession(long sessionId);

    /// <summary>Closes a session; emits client.disconnected when it had been online.</summary>
    void CloseSession(long sessionId, string reason);

    /// <summary>Closes every session still open (a hub start after a crash). Returns how many.</summary>
    int CloseAllSessions(string reason);

    SessionRecord? GetOpenSession(string uuid);

    IReadOnlyList<SessionRecord> ListOpenSessions();
}
