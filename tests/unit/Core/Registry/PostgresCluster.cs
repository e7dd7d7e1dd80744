using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Registry;
using Npgsql;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// A private PostgreSQL 15 cluster for the registry tests: <c>initdb</c> into a 0700 directory beside the test
/// assembly (not under /tmp), owned by the <c>postgres</c> system user when the tests run as root (initdb refuses
/// root); listening on 127.0.0.1 only, on a free port, no Unix socket; password (SCRAM) authentication with a random
/// password, since any local user can reach the port. Started on first use, shared by the test run, stopped by the
/// postmaster's PID when the test process exits. If it cannot start, every test that needs it fails saying why.
/// </summary>
internal sealed class PostgresCluster
{
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";
    private const string Database = "eph_tests";

    private static readonly Lazy<PostgresCluster> s_shared = new(() => Start("pg-" + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        LazyThreadSafetyMode.ExecutionAndPublication);
    private static int s_private;

    private readonly string _root;
    private readonly string _password;
    private int _pid;

    private PostgresCluster(string root, int port, string password)
    {
        _root = root;
        Port = port;
        _password = password;
    }

    /// <summary>The cluster of this test run (started on first use).</summary>
    public static PostgresCluster Shared => s_shared.Value;

    public int Port { get; }

    /// <summary>
    /// A cluster of its own for a test that restarts or stops it (the shared one serves every other test at the same
    /// time); <see cref="Dispose"/> stops it by its PID, and the watcher does if the test process ends first.
    /// </summary>
    public static PostgresCluster StartPrivate() =>
        Start($"pg-{Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)}-{Interlocked.Increment(ref s_private).ToString(System.Globalization.CultureInfo.InvariantCulture)}");

    /// <summary>
    /// Restarts the cluster as an operator would (<c>pg_ctl restart -m fast</c>: every session is ended, new connections
    /// are refused until it is back); returns how long it was away.
    /// </summary>
    public TimeSpan Restart()
    {
        var clock = Stopwatch.StartNew();
        var data = Path.Combine(_root, "data");
        Run(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-l", Path.Combine(_root, "log"), "-m", "fast", "-w", "-t", "60", "restart"], Environment.UserName == "root");
        _pid = ReadPid(data);
        return clock.Elapsed;
    }

    /// <summary>Stops a private cluster (<see cref="StartPrivate"/>).</summary>
    public void Dispose() => Stop();

    private static int ReadPid(string data) =>
        int.Parse(File.ReadLines(Path.Combine(data, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>A connection string to the test database, in schema <paramref name="schema"/> when given.</summary>
    public string ConnectionString(string? schema = null) => new NpgsqlConnectionStringBuilder
    {
        Host = "127.0.0.1",
        Port = Port,
        Username = "postgres",
        Password = _password,
        Database = Database,
        SearchPath = schema,
        MaxPoolSize = 20,
        ConnectionIdleLifetime = 10,
        ConnectionPruningInterval = 5,
        Timeout = 30,
    }.ConnectionString;

    /// <summary>The password of the cluster's superuser (tests that check it never shows up).</summary>
    public string Password => _password;

    private static PostgresCluster Start(string name)
    {
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("the registry tests start PostgreSQL with initdb and pg_ctl on Linux");
        }

        var initdb = Path.Combine(BinDirectory, "initdb");
        if (!File.Exists(initdb))
        {
            throw new InvalidOperationException(
                $"PostgreSQL 15 is needed by the registry tests and {initdb} is missing: apt-get install -y postgresql-15 (./build.sh test installs it)");
        }

        var asRoot = Environment.UserName == "root";
        RemoveLeftovers();
        var root = Path.Combine(BaseDirectory, name);
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }

        Directory.CreateDirectory(root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (asRoot)
        {
            Run("chown", ["postgres:postgres", root], asRoot: false);
        }

        var password = Convert.ToHexString(RandomNumberGenerator.GetBytes(24)).ToLowerInvariant();
        var pwfile = Path.Combine(root, "pw");
        File.WriteAllText(pwfile, password + "\n");
        File.SetUnixFileMode(pwfile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        if (asRoot)
        {
            Run("chown", ["postgres:postgres", pwfile], asRoot: false);
        }

        var data = Path.Combine(root, "data");
        Run(initdb, ["-D", data, "-U", "postgres", "--auth=scram-sha-256", "--pwfile=" + pwfile, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], asRoot);
        File.Delete(pwfile);

        Exception? last = null;
        for (var attempt = 0; attempt < 3; attempt++)
        {
            var port = FreePort();
            var options = $"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=400 -c fsync=off "
                          + "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=64MB";
            try
            {
                Run(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-l", Path.Combine(root, "log"), "-o", options, "-w", "-t", "60", "start"], asRoot);
            }
            catch (InvalidOperationException ex)
            {
                last = ex;
                continue;
            }

            var cluster = new PostgresCluster(root, port, password);
            cluster._pid = ReadPid(data);
            AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Stop();
            cluster.WatchTestProcess();
            using (var c = new NpgsqlConnection(cluster.ConnectionString().Replace("Database=" + Database, "Database=postgres", StringComparison.Ordinal)))
            {
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = $"CREATE DATABASE {Database}";
                cmd.ExecuteNonQuery();
            }

            return cluster;
        }

        var log = Path.Combine(root, "log");
        throw new InvalidOperationException(
            $"the test PostgreSQL cluster did not start: {last?.Message}{(File.Exists(log) ? "\n" + File.ReadAllText(log) : "")}");
    }

    /// <summary>
    /// The test runner may end this process before its exit handler has stopped the cluster: a detached watcher (its own
    /// session, reparented at once, so no tree-kill of this process reaches it) waits for this process to go, then stops
    /// the postmaster by its PID — only while that PID is still this cluster's — and removes the directory (also when the
    /// exit handler stopped the cluster but was cut off before removing it). It lives exactly as long as this process.
    /// </summary>
    private void WatchTestProcess()
    {
        const string Script = """
            t=$1; p=$2; d=$3; r=$4
            while kill -0 "$t" 2>/dev/null; do sleep 1; done
            q=$(head -n 1 "$d/postmaster.pid" 2>/dev/null); case "$q" in ''|*[!0-9]*) ;; *) p=$q ;; esac
            grep -qaF -- "$d" "/proc/$p/cmdline" 2>/dev/null && kill -INT "$p"
            i=0; while grep -qaF -- "$d" "/proc/$p/cmdline" 2>/dev/null && [ $i -lt 200 ]; do sleep 0.1; i=$((i+1)); done
            grep -qaF -- "$d" "/proc/$p/cmdline" 2>/dev/null && kill -QUIT "$p"
            i=0; while grep -qaF -- "$d" "/proc/$p/cmdline" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i+1)); done
            rm -rf -- "$r"
            """;
        var psi = new ProcessStartInfo("sh") { UseShellExecute = false, WorkingDirectory = "/" };
        foreach (var arg in new[]
                 {
                     "-c", "setsid sh -c \"$1\" pg-watch \"$2\" \"$3\" \"$4\" \"$5\" </dev/null >/dev/null 2>&1 &", "sh", Script,
                     Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     _pid.ToString(System.Globalization.CultureInfo.InvariantCulture), Path.Combine(_root, "data"), _root,
                 })
        {
            psi.ArgumentList.Add(arg);
        }

        using var launcher = Process.Start(psi) ?? throw new InvalidOperationException("could not start the cluster's watcher");
        launcher.WaitForExit(10_000);
    }

    /// <summary>Stops the postmaster by its PID (fast shutdown, then immediate), then removes the cluster's directory.</summary>
    private void Stop()
    {
        if (_pid <= 0)
        {
            return;
        }

        // SIGINT is PostgreSQL's fast shutdown (backends end, the postmaster exits); SIGQUIT after 20 s is its immediate one.
        foreach (var signal in new[] { "-INT", "-QUIT" })
        {
            try
            {
                Run("kill", [signal, _pid.ToString(System.Globalization.CultureInfo.InvariantCulture)], asRoot: false);
            }
            catch (InvalidOperationException)
            {
                break; // no such process: already gone
            }

            for (var i = 0; i < 200 && Running(); i++)
            {
                Thread.Sleep(100);
            }

            if (!Running())
            {
                break;
            }
        }

        _pid = 0;
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
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

            var pidFile = Path.Combine(dir, "data", "postmaster.pid");
            if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), System.Globalization.CultureInfo.InvariantCulture, out var pid))
            {
                new PostgresCluster(dir, 0, "") { _pid = pid }.Stop();
            }
            else
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>The postmaster still runs: its PID file is there and its process is neither gone nor a zombie.</summary>
    private bool Running()
    {
        if (!File.Exists(Path.Combine(_root, "data", "postmaster.pid")))
        {
            return false;
        }

        try
        {
            var stat = File.ReadAllText($"/proc/{_pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].FirstOrDefault() != 'Z';
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private static void Run(string file, string[] args, bool asRoot)
    {
        var psi = new ProcessStartInfo(asRoot ? "runuser" : file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = "/",
        };
        if (asRoot)
        {
            foreach (var a in new[] { "-u", "postgres", "--", file })
            {
                psi.ArgumentList.Add(a);
            }
        }

        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        using var p = Process.Start(psi) ?? throw new InvalidOperationException($"cannot start {file}");
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(120_000))
        {
            p.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"{Path.GetFileName(file)} did not finish in 120 s");
        }

        if (p.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Path.GetFileName(file)} failed ({p.ExitCode}): {stderr.Result.Trim()} {stdout.Result.Trim()}");
        }
    }
}
