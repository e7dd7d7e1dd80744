using System.Diagnostics;
using System.Text.RegularExpressions;
using EtPhoneHome.Core.Exchange;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Exchange;

/// <summary>
/// The S3-compatible test server (s3rver, installed by build/prerequisites.sh into tests/s3) on 127.0.0.1, an
/// ephemeral port and a temporary directory; stopped by its PID. <paramref name="strict"/> = false adds
/// --allow-mismatched-signatures, which the .NET SDK's bucket-level (list) requests need with s3rver.
/// </summary>
public sealed partial class S3Server : IAsyncDisposable
{
    public const string Bucket = "eph-test";
    public const string AccessKey = "S3RVER";
    public const string SecretKey = "S3RVER";

    private readonly Process _process;

    private S3Server(Process process, string directory, int port)
    {
        _process = process;
        DataPath = directory;
        Port = port;
    }

    public int Port { get; }

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

    public static async Task<S3Server> StartAsync(bool strict)
    {
        var s3dir = Path.Combine(RepositoryRoot(), "tests", "s3");
        Assert.True(File.Exists(Path.Combine(s3dir, "node_modules", "@20minutes", "s3rver", "lib", "cli.js")),
            "s3rver is not installed: run build/prerequisites.sh (npm ci in tests/s3)");
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
            return new S3Server(process, data, await port.Task.WaitAsync(TimeSpan.FromSeconds(30)));
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
            await _process.WaitForExitAsync();
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

/// <summary>One strict and one lenient server shared by the tests of a class.</summary>
public sealed class S3ServersFixture : IAsyncLifetime
{
    public S3Server Strict { get; private set; } = null!;
    public S3Server Lenient { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Strict = await S3Server.StartAsync(strict: true);
        Lenient = await S3Server.StartAsync(strict: false);
    }

    public async Task DisposeAsync()
    {
        await Strict.DisposeAsync();
        await Lenient.DisposeAsync();
    }
}
