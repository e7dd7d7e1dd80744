using System.Diagnostics;
using System.Runtime.InteropServices;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>What a revocation did: the registry's outcome and the gate processes that were signalled.</summary>
public sealed record RevokeReport(RevokeOutcome Outcome, IReadOnlyList<int> SignalledGatePids);

/// <summary>Approving and revoking client keys, shared by eph-server, the cmdlets and MCP.</summary>
public static class KeyAdministration
{
    /// <summary>Approves a pending, mismatched or revoked key by fingerprint or client uuid.</summary>
    /// <exception cref="RegistryNotFoundException">No key or client has that id.</exception>
    public static ApproveOutcome Approve(IKeyStore registry, string fingerprintOrUuid, string actor)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        return registry.ApproveKey(fingerprintOrUuid.Trim(), actor);
    }

    /// <summary>Approves a key; the history records the operator's OS user and surface.</summary>
    /// <exception cref="RegistryNotFoundException">No key or client has that id.</exception>
    public static ApproveOutcome Approve(IKeyStore registry, string fingerprintOrUuid, OperatorContext context)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        return registry.ApproveKey(fingerprintOrUuid.Trim(), context.Actor, context.Surface);
    }

    /// <summary>
    /// The answer to show for an approval, in the reference's accept_key words: approving a client whose key
    /// is already approved is not an error, the client simply "had no key mismatch".
    /// </summary>
    public static string Describe(ApproveOutcome outcome, string requestedId)
    {
        ArgumentNullException.ThrowIfNull(outcome);
        if (outcome.AlreadyApproved)
        {
            return IsFingerprint(requestedId) || outcome.Uuid is null
                ? $"Key {outcome.Fingerprint} was already approved; nothing changed."
                : $"Client {outcome.Uuid} had no key mismatch: its key {outcome.Fingerprint} is already approved; nothing changed.";
        }

        if (outcome.ResolvedMismatch)
        {
            return $"Approved key {outcome.Fingerprint}: client {outcome.Uuid} is now pinned to it; the old key {outcome.ReplacedFingerprint} is revoked.";
        }

        return $"Approved key {outcome.Fingerprint}{(outcome.Uuid is null ? "" : $" (client {outcome.Uuid})")}; the agent will come online within seconds.";
    }

    /// <summary>True for an OpenSSH SHA256 fingerprint ("SHA256:…") rather than a client uuid.</summary>
    public static bool IsFingerprint(string id) => id.Trim().StartsWith("SHA256:", StringComparison.Ordinal);

    /// <summary>
    /// True when a key has that fingerprint or a client that uuid: what approve and revoke accept. Front ends ask before
    /// a confirmation prompt, so nobody is asked to confirm an action on something that does not exist.
    /// </summary>
    public static bool Exists(IKeyStore keys, IClientStore clients, string fingerprintOrUuid)
    {
        ArgumentNullException.ThrowIfNull(keys);
        ArgumentNullException.ThrowIfNull(clients);
        var id = fingerprintOrUuid?.Trim();
        return !string.IsNullOrEmpty(id) && (keys.GetKey(id) is not null || clients.GetClient(id) is not null);
    }

    /// <summary>True when a pending key claims the client's uuid while the client is pinned to another key.</summary>
    public static bool IsClaimed(IKeyStore registry, string uuid)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.ListKeys(KeyStatus.Pending).Any(k => k.IsMismatch && k.ClaimedUuid == uuid);
    }

    /// <summary>Revokes a key and disconnects it now; the history records the operator's OS user and surface.</summary>
    /// <exception cref="RegistryNotFoundException">No key or client has that id.</exception>
    public static RevokeReport Revoke(IKeyStore registry, string fingerprintOrUuid, OperatorContext context, Func<int, bool>? terminate = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentNullException.ThrowIfNull(context);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        var outcome = registry.RevokeKey(fingerprintOrUuid.Trim(), context.Actor, context.Surface);
        return new RevokeReport(outcome, SignalGates(outcome.ClosedSessions, terminate));
    }

    /// <summary>Sends each closed session's gate relay the signal that ends its SSH connection; returns the pids signalled.</summary>
    /// <remarks>
    /// A recorded pid is signalled only while it is still that session's gate: a gate process, on this host, started
    /// before the session was recorded. A pid the kernel has since given to another process, or a pid of another
    /// server host, is left alone.
    /// </remarks>
    public static IReadOnlyList<int> SignalGates(IEnumerable<SessionRecord> closedSessions, Func<int, bool>? terminate = null)
    {
        ArgumentNullException.ThrowIfNull(closedSessions);
        var signalled = new List<int>();
        foreach (var session in closedSessions)
        {
            if (session.GatePid is not { } pid || !IsSignallable(pid))
            {
                continue;
            }

            // A test's terminate stands in for the process table too; the real one checks the process first.
            if (terminate is not null ? terminate(pid) : IsGateOf(session, pid) && TerminateProcess(pid))
            {
                signalled.Add(pid);
            }
        }

        return signalled;
    }

    /// <summary>
    /// Revokes a key and disconnects its sessions now: the registry closes them, and each session's gate
    /// relay gets SIGTERM, which ends the SSH connection. A gate that is already gone is ignored.
    /// </summary>
    /// <param name="registry">The fleet registry.</param>
    /// <param name="fingerprintOrUuid">The key's SHA256 fingerprint, or the uuid of the client it is bound to.</param>
    /// <param name="actor">Who revokes (recorded in the registry).</param>
    /// <param name="terminate">Sends the signal; returns true when a process was signalled. Tests replace it.</param>
    /// <exception cref="RegistryNotFoundException">No key or client has that id.</exception>
    public static RevokeReport Revoke(IKeyStore registry, string fingerprintOrUuid, string actor, Func<int, bool>? terminate = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        var outcome = registry.RevokeKey(fingerprintOrUuid.Trim(), actor);
        return new RevokeReport(outcome, SignalGates(outcome.ClosedSessions, terminate));
    }

    /// <summary>Never signal init, ourselves, or nonsense pids a corrupted record might hold.</summary>
    internal static bool IsSignallable(int pid) => pid > 1 && pid != Environment.ProcessId;

    /// <summary>The name eph-gate runs under (its executable's name without extension).</summary>
    internal const string GateProcessName = "eph-gate";

    /// <summary>
    /// True while <paramref name="pid"/> is the gate of <paramref name="session"/>: the session was recorded on this host,
    /// and the process is an eph-gate that was already running when the session was opened (a pid reused after the gate
    /// exited belongs to a process started later). Slack of a few seconds covers clock granularity.
    /// </summary>
    public static bool IsGateOf(SessionRecord session, int pid)
    {
        ArgumentNullException.ThrowIfNull(session);
        if (!string.Equals(session.Host, Environment.MachineName, StringComparison.OrdinalIgnoreCase) && session.Host is not ("localhost" or "127.0.0.1"))
        {
            return false;
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            return string.Equals(process.ProcessName, GateProcessName, StringComparison.Ordinal)
                && process.StartTime.ToUniversalTime() <= session.ConnectedAt.UtcDateTime + TimeSpan.FromSeconds(5);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception or NotSupportedException)
        {
            // Gone, or not ours to inspect.
            return false;
        }
    }

    /// <summary>SIGTERM on Unix (the gate exits cleanly and sshd closes the connection); Kill on Windows.</summary>
    public static bool TerminateProcess(int pid)
    {
        if (!IsSignallable(pid))
        {
            return false;
        }

        if (!OperatingSystem.IsWindows())
        {
            return NativeMethods.Kill(pid, NativeMethods.SigTerm) == 0;
        }

        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
            return true;
        }
        catch (ArgumentException)
        {
            return false; // already gone
        }
        catch (InvalidOperationException)
        {
            return false; // exited meanwhile
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false; // not ours to signal
        }
    }

    private static class NativeMethods
    {
        public const int SigTerm = 15;

        [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
        public static extern int Kill(int pid, int signal);
    }
}
