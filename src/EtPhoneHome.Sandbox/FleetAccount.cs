using System.Runtime.InteropServices;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// The unprivileged account that agents, operators and the bench's peers log in as — what production should use.
/// sshd runs every command (the gate's forced commands included) as <c>$SHELL -c …</c> with the account's login shell,
/// and Debian's bash then reads <c>~/.bashrc</c> for SSH sessions: whatever an account's rc files do is paid on every
/// agent admission and every peer command. This account's shell is <c>/bin/sh</c> (dash: reads no rc file when not
/// interactive), it has no home, and sshd_config sets <c>PermitUserRC no</c>.
/// The sandbox's hub runs as root (the module and verbs under test read its data directory as root); the account
/// reaches only the hub's socket: the work and data directories are group-traversable (0710, group of the account,
/// not listable) and the socket is 0660 in that group. Every other file there stays 0600 root.
/// </summary>
public static partial class FleetAccount
{
    /// <summary>The account's name.</summary>
    public const string Name = "eph-fleet";

    private const string Shell = "/bin/sh";
    private static readonly SemaphoreSlim Once = new(1, 1);

    /// <summary>Creates the account when missing and makes it usable by sshd (unlocked, /bin/sh); returns its gid.</summary>
    public static async Task<uint> EnsureAsync(CancellationToken ct = default)
    {
        await Once.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (Entry() is null)
            {
                var (code, _, error) = await SandboxEnvironment.RunForResultAsync("useradd",
                    ["--system", "--user-group", "--shell", Shell, "--home-dir", "/nonexistent", "--no-create-home",
                     "--comment", "EtPhoneHome sandbox fleet account", Name], ct).ConfigureAwait(false);
                if (code != 0 && Entry() is null)
                {
                    throw new SandboxException($"could not create the fleet account {Name} (useradd exit {code}): {error.Trim()}");
                }
            }

            var entry = Entry() ?? throw new SandboxException($"the fleet account {Name} is missing from /etc/passwd");
            if (entry.Shell != Shell)
            {
                await RetryAsync(["-s", Shell, Name], ct).ConfigureAwait(false);
            }

            // sshd without PAM refuses a locked account ('!' in shadow) outright; '*' means "no password", not locked.
            if (IsLocked())
            {
                await RetryAsync(["-p", "*", Name], ct).ConfigureAwait(false);
            }

            return entry.Gid;
        }
        finally
        {
            Once.Release();
        }
    }

    /// <summary>Gives the account's group traverse-only access (0710) to <paramref name="directory"/>.</summary>
    public static void GrantTraverse(string directory, uint gid)
    {
        SetGroup(directory, gid);
        File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupExecute);
    }

    /// <summary>Hands <paramref name="path"/> to the account (owner and group), e.g. a folder a peer's scp writes into.</summary>
    public static void GiveTo(string path)
    {
        var entry = Entry() ?? throw new SandboxException($"the fleet account {Name} does not exist");
        if (Chown(path, entry.Uid, entry.Gid) != 0)
        {
            throw new SandboxException($"could not hand {path} to {Name} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>Changes the group of <paramref name="path"/> (owner unchanged).</summary>
    public static void SetGroup(string path, uint gid)
    {
        if (Chown(path, uint.MaxValue, gid) != 0)
        {
            throw new SandboxException($"could not give {path} to group {Name} (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    /// <summary>
    /// Refuses a work directory the account could not reach: every folder above it must be traversable by others
    /// (the sandbox grants access to its own folders only).
    /// </summary>
    public static void CheckReachable(string workDirectory)
    {
        for (var dir = Path.GetDirectoryName(Path.GetFullPath(workDirectory)); !string.IsNullOrEmpty(dir); dir = Path.GetDirectoryName(dir))
        {
            if ((File.GetUnixFileMode(dir) & UnixFileMode.OtherExecute) == 0)
            {
                throw new SandboxException(
                    $"{dir} is not traversable by others (mode {Convert.ToString((int)File.GetUnixFileMode(dir), 8)}): the fleet account {Name} " +
                    "could not reach the hub's socket below it; choose a work directory under a folder others may enter (e.g. /tmp)");
            }
        }
    }

    private static async Task RetryAsync(string[] usermod, CancellationToken ct)
    {
        // usermod takes /etc/shadow's lock; another tool holding it briefly is not a failure.
        for (var attempt = 1; ; attempt++)
        {
            var (code, _, error) = await SandboxEnvironment.RunForResultAsync("usermod", usermod, ct).ConfigureAwait(false);
            if (code == 0)
            {
                return;
            }

            if (attempt == 5)
            {
                throw new SandboxException($"usermod {string.Join(' ', usermod)} failed (exit {code}): {error.Trim()}");
            }

            await Task.Delay(200 * attempt, ct).ConfigureAwait(false);
        }
    }

    private sealed record PasswdEntry(uint Uid, uint Gid, string Shell);

    private static PasswdEntry? Entry()
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var f = line.Split(':');
            if (f.Length >= 7 && f[0] == Name)
            {
                return new PasswdEntry(uint.Parse(f[2], System.Globalization.CultureInfo.InvariantCulture),
                    uint.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture), f[6]);
            }
        }

        return null;
    }

    private static bool IsLocked()
    {
        foreach (var line in File.ReadLines("/etc/shadow"))
        {
            var f = line.Split(':');
            if (f.Length >= 2 && f[0] == Name)
            {
                return f[1].StartsWith('!');
            }
        }

        return false;
    }

    [LibraryImport("libc", EntryPoint = "chown", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Chown(string path, uint owner, uint group);
}
