using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Npgsql;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// A private PostgreSQL 15 cluster, for the registry tests and the several-hubs sandbox: <c>initdb</c> into a 0700
/// directory, owned by the <c>postgres</c> system user when started as root (initdb refuses root); listening on
/// 127.0.0.1 only, on a free port, no Unix socket; password (SCRAM) authentication with a random password, since any
/// local user can reach the port. It is stopped by the postmaster's PID (fast shutdown, then immediate) and its
/// directory removed. Tuned for throwaway data (no fsync).
/// </summary>
public sealed class PrivatePostgres
{
    public const string BinDirectory = "/usr/lib/postgresql/15/bin";

    private readonly string _root;
    private readonly string _password;
    private int _pid;

    private PrivatePostgres(string root, int port, string password, string database, int pid)
    {
        _root = root;
        Port = port;
        _password = password;
        Database = database;
        _pid = pid;
    }

    public int Port { get; }

    /// <summary>The database created at start.</summary>
    public string Database { get; }

    /// <summary>The postmaster's PID (0 once stopped).</summary>
    public int Pid => _pid;

    /// <summary>The cluster's directory (data directory and log below it).</summary>
    public string Root => _root;

    /// <summary>The password of the cluster's superuser (tests that check it never shows up).</summary>
    public string Password => _password;

    /// <summary>A connection string to <see cref="Database"/>, in schema <paramref name="schema"/> when given. Holds the password.</summary>
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

    /// <summary>
    /// Creates the cluster in <paramref name="root"/> (which must not exist yet, or is replaced), starts it and creates
    /// <paramref name="database"/>. Every folder above <paramref name="root"/> must be traversable by the postgres user
    /// when running as root. Throws <see cref="InvalidOperationException"/> saying why when it cannot start.
    /// </summary>
    public static PrivatePostgres Start(string root, string database)
    {
        ArgumentException.ThrowIfNullOrEmpty(root);
        ArgumentException.ThrowIfNullOrEmpty(database);
        if (OperatingSystem.IsWindows())
        {
            throw new PlatformNotSupportedException("a private PostgreSQL cluster is started with initdb and pg_ctl on Linux");
        }

        var initdb = Path.Combine(BinDirectory, "initdb");
        if (!File.Exists(initdb))
        {
            throw new InvalidOperationException(
                $"PostgreSQL 15 is needed and {initdb} is missing: apt-get install -y postgresql-15 (./build.sh test and ./build.sh sandbox --hubs N install it)");
        }

        var asRoot = Environment.UserName == "root";
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

            var pid = int.Parse(File.ReadLines(Path.Combine(data, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);
            var cluster = new PrivatePostgres(root, port, password, database, pid);
            try
            {
                using var c = new NpgsqlConnection(cluster.ConnectionString().Replace("Database=" + database, "Database=postgres", StringComparison.Ordinal));
                c.Open();
                using var cmd = c.CreateCommand();
                cmd.CommandText = $"CREATE DATABASE \"{database.Replace("\"", "\"\"", StringComparison.Ordinal)}\"";
                cmd.ExecuteNonQuery();
            }
            catch
            {
                cluster.Stop();
                throw;
            }

            return cluster;
        }

        var log = Path.Combine(root, "log");
        throw new InvalidOperationException(
            $"the private PostgreSQL cluster did not start: {last?.Message}{(File.Exists(log) ? "\n" + File.ReadAllText(log) : "")}");
    }

    /// <summary>
    /// Stops the cluster when process <paramref name="ownerPid"/> is gone, even if that process is killed before it can:
    /// a detached watcher (its own session, reparented at once, so no tree-kill of the owner reaches it) waits for the
    /// owner to go, then stops the postmaster by its PID — only while that PID is still this cluster's — and removes the
    /// directory. It lives exactly as long as the owner.
    /// </summary>
    public void StopWhenGone(int ownerPid)
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
                     ownerPid.ToString(System.Globalization.CultureInfo.InvariantCulture),
                     _pid.ToString(System.Globalization.CultureInfo.InvariantCulture), Path.Combine(_root, "data"), _root,
                 })
        {
            psi.ArgumentList.Add(arg);
        }

        using var launcher = Process.Start(psi) ?? throw new InvalidOperationException("could not start the cluster's watcher");
        launcher.WaitForExit(10_000);
    }

    /// <summary>
    /// Restarts the cluster as an operator would (<c>pg_ctl restart -m fast</c>: every session is ended, new connections
    /// are refused until it is back); returns how long that took.
    /// </summary>
    public TimeSpan Restart()
    {
        var clock = Stopwatch.StartNew();
        var data = Path.Combine(_root, "data");
        Run(Path.Combine(BinDirectory, "pg_ctl"), ["-D", data, "-l", Path.Combine(_root, "log"), "-m", "fast", "-w", "-t", "60", "restart"], Environment.UserName == "root");
        _pid = int.Parse(File.ReadLines(Path.Combine(data, "postmaster.pid")).First(), System.Globalization.CultureInfo.InvariantCulture);
        return clock.Elapsed;
    }

    /// <summary>Stops the postmaster by its PID (fast shutdown, then immediate), then removes the cluster's directory.</summary>
    public void Stop()
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
    /// A cluster directory an earlier process left behind (killed before it stopped its cluster): stops the postmaster
    /// named by its PID file, if any, and removes the directory.
    /// </summary>
    public static void StopLeftover(string root)
    {
        var pidFile = Path.Combine(root, "data", "postmaster.pid");
        if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).FirstOrDefault(), System.Globalization.CultureInfo.InvariantCulture, out var pid))
        {
            new PrivatePostgres(root, 0, "", "", pid).Stop();
        }
        else
        {
            Directory.Delete(root, recursive: true);
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
