using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// The private PostgreSQL 15 cluster of the registry tests (<see cref="PrivatePostgres"/>: initdb, 127.0.0.1 only, a free
/// port, SCRAM with a random password), in a directory beside the test assembly (not under /tmp). Started on first use,
/// shared by the test run, stopped by the postmaster's PID when the test process exits — by a detached watcher too, in
/// case the runner ends this process first. If it cannot start, every test that needs it fails saying why.
/// </summary>
internal static class PostgresCluster
{
    private const string Database = "eph_tests";

    private static readonly Lazy<PrivatePostgres> s_shared = new(Start, LazyThreadSafetyMode.ExecutionAndPublication);

    private static int s_private;

    /// <summary>The cluster of this test run (started on first use).</summary>
    public static PrivatePostgres Shared => s_shared.Value;

    /// <summary>
    /// A cluster of its own for a test that restarts or stops it (the shared one serves every other test at the same
    /// time); the test stops it, and the watcher does if the test process ends first.
    /// </summary>
    public static PrivatePostgres StartPrivate()
    {
        var name = $"pg-{Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)}-{Interlocked.Increment(ref s_private).ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        var cluster = PrivatePostgres.Start(Path.Combine(BaseDirectory, name), Database);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Stop();
        cluster.StopWhenGone(Environment.ProcessId);
        return cluster;
    }

    private static PrivatePostgres Start()
    {
        RemoveLeftovers();
        var cluster = PrivatePostgres.Start(Path.Combine(BaseDirectory, "pg-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)), Database);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Stop();
        cluster.StopWhenGone(Environment.ProcessId);
        return cluster;
    }

    /// <summary>
    /// Where clusters live. As root the cluster runs as the postgres user, which must reach its directory: the test
    /// assembly's folder may sit below one others cannot enter (a clone under /root), and /tmp would let any local user
    /// plant a folder there first; /run is root's, tmpfs, and others may pass through it. Otherwise the assembly's folder.
    /// </summary>
    private static string BaseDirectory
    {
        get
        {
            if (OperatingSystem.IsWindows() || Environment.UserName != "root")
            {
                return AppContext.BaseDirectory;
            }

            const string dir = "/run/etphonehome-tests";
            Directory.CreateDirectory(dir, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute |
                UnixFileMode.GroupExecute | UnixFileMode.OtherExecute);
            return dir;
        }
    }

    /// <summary>
    /// Clusters of earlier test processes that ended without stopping theirs (killed, or the runner did not wait for the
    /// exit handler): each is stopped by its postmaster's PID when its test process is gone, and its directory removed.
    /// </summary>
    private static void RemoveLeftovers()
    {
        foreach (var dir in Directory.GetDirectories(BaseDirectory, "pg-*"))
        {
            if (!int.TryParse(Path.GetFileName(dir)[3..].Split('-')[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var owner)
                || owner == Environment.ProcessId || Directory.Exists("/proc/" + owner))
            {
                continue;
            }

            PrivatePostgres.StopLeftover(dir);
        }
    }
}
