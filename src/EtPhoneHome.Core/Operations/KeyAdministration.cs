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
    public static ApproveOutcome Approve(IFleetRegistry registry, string fingerprintOrUuid, string actor)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        return registry.ApproveKey(fingerprintOrUuid.Trim(), actor);
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
    public static RevokeReport Revoke(IFleetRegistry registry, string fingerprintOrUuid, string actor, Func<int, bool>? terminate = null)
    {
        ArgumentNullException.ThrowIfNull(registry);
        ArgumentException.ThrowIfNullOrWhiteSpace(fingerprintOrUuid);
        ArgumentException.ThrowIfNullOrWhiteSpace(actor);
        terminate ??= TerminateProcess;
        var outcome = registry.RevokeKey(fingerprintOrUuid.Trim(), actor);
        var signalled = new List<int>();
        foreach (var session in outcome.ClosedSessions)
        {
            if (session.GatePid is { } pid && IsSignallable(pid) && terminate(pid))
            {
                signalled.Add(pid);
            }
        }

        return new RevokeReport(outcome, signalled);
    }

    /// <summary>Never signal init, ourselves, or nonsense pids a corrupted record might hold.</summary>
    internal static bool IsSignallable(int pid) => pid > 1 && pid != Environment.ProcessId;

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
