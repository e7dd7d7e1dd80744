using System.Diagnostics;
using System.Text.RegularExpressions;
using EtPhoneHome.Core.Exchange;

namespace EtPhoneHome.Sandbox;

/// <summary>
/// The S3-compatible test server of the exchange tests and benchmark (s3rver, installed by build/prerequisites.sh into tests/s3) on 127.0.0.1, an
/// ephemeral port and a temporary directory; stopped by its PID. A lenient server (strict: false) adds
/// --allow-mismatched-signatures, which the .NET SDK's bucket-level (list) requests need with s3rver: the SDK sends and
/// signs a path-style listing as "GET /bucket/?list-type=2…" (SigV4's canonical URI is the path as sent), and s3rver
/// rebuilds the canonical URI without the trailing '/', so every listing fails there with SignatureDoesNotMatch, whatever
/// its prefix. Object requests (keys with spaces, '+', '~', '%', '=') pass the strict server.
/// </summary>
public sealed partial class S3TestServer : IAsyncDisposable
{
    public const string Bucket = "eph-test";
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly Process _process;

    private S3TestServer(Process process, string directory, int port)
    {
        _process = process;
        DataPath = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>The node process's id (a bench reads its CPU time from /proc).</summary>
    public int ProcessId => _process.Id;

    private string DataPath { get; }

    public Uri Endpoint => new($"http://127.0.0.1:{Port}");

    public ExchangeSettings Settings => new(Endpoint, Bucket, AccessKey, SecretKey);

    [GeneratedRegex(@"listening on 127\.0\.0\.1:(\d+)")]
    private static partial Regex Listening();

    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "tests", "s3", "package.json")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("repository root (tests/s3/package.json) not found");
    }

    public static async Task<S3TestServer> StartAsync(bool strict, string? repositoryRoot = null)
    {
        var s3dir = Path.Combine(repositoryRoot ?? RepositoryRoot(), "tests", "s3");
        if (!File.Exists(Path.Combine(s3dir, "node_modules", "@20minutes", "s3rver", "lib", "cli.js")))
        {
            throw new InvalidOperationException("s3rver is not installed: run build/prerequisites.sh (npm ci in tests/s3)");
        }
        var data = Directory.CreateTempSubdirectory("eph-s3-").FullName;
        var start = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "--openssl-legacy-provider", Path.Combine(s3dir, "s3rver.js"), "-d", data, "-a", "127.0.0.1", "-p", "0", "--silent", "--configure-bucket", Bucket })
        {
            start.ArgumentList.Add(arg);
        }

        if (!strict)
        {
            start.ArgumentList.Add("--allow-mismatched-signatures");
        }

        var process = Process.Start(start) ?? throw new InvalidOperationException("node did not start");
        var port = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data is { } line && Listening().Match(line) is { Success: true } m)
            {
                port.TrySetResult(int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
            }
        };
        process.ErrorDataReceived += (_, _) => { };
        process.Exited += (_, _) => port.TrySetException(new InvalidOperationException("s3rver exited before it listened"));
        process.EnableRaisingEvents = true;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            return new S3TestServer(process, data, await port.Task.WaitAsync(TimeSpan.FromSeconds(30)).ConfigureAwait(false));
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            process.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        try
        {
            Directory.Delete(DataPath, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One strict and one lenient server shared by the tests of a class (xunit's IAsyncLifetime shape).</summary>
public sealed class S3ServerPair : IAsyncDisposable
{
    public S3TestServer Strict { get; private set; } = null!;
    public S3TestServer Lenient { get; private set; } = null!;

    public async Task StartAsync()
    {
        Strict = await S3TestServer.StartAsync(strict: true).ConfigureAwait(false);
        Lenient = await S3TestServer.StartAsync(strict: false).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        await Strict.DisposeAsync().ConfigureAwait(false);
        await Lenient.DisposeAsync().ConfigureAwait(false);
    }
}
