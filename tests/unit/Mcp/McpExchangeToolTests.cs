using System.Security.Cryptography;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using EtPhoneHome.Tests.Unit.Exchange;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>The exchange tools through the SDK client against s3rver on 127.0.0.1 and a real registry.</summary>
public sealed class McpExchangeToolTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IDisposable
{
    private readonly TempData _data = new();
    private readonly DirectoryInfo _allowed = Directory.CreateTempSubdirectory("eph-mcp-exchange-");
    private readonly DirectoryInfo _outside = Directory.CreateTempSubdirectory("eph-mcp-outside-");
    private SqliteRegistry? _registry;
    private int _settingsReads;

    public void Dispose()
    {
        _registry?.Dispose();
        _data.Dispose();
        _allowed.Delete(recursive: true);
        _outside.Delete(recursive: true);
    }

    private SqliteRegistry Registry() => _registry ??= SqliteRegistry.Open(_data.Dir);

    /// <summary>A harness whose exchange is the lenient s3rver (listing needs it), counting every settings read.</summary>
    private McpHarness Harness(bool configured = true) => new(Registry(), new FakeTransport(),
        new McpServerSettings { AllowedLocalDirectories = [_allowed.FullName] },
        configured ? () => { Interlocked.Increment(ref _settingsReads); return s3.Lenient.Settings; } : null);

    private string NewFile(DirectoryInfo dir, string name, int size)
    {
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        var path = Path.Combine(dir.FullName, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public async Task UploadListDownloadDelete_RoundTrip_WithTheReferenceFields_AndMcpHistory()
    {
        var dest = Keys.Admit(Registry(), Keys.B, Keys.Identity(name: "api-01"));
        var source = NewFile(_allowed, "deploy.tar.gz", 200_000);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var upload = (await client.CallAsync("exchange_upload", new { local_path = source, dest_client = "api-01", expires_hours = 6 })).Ok();

        var transferId = upload.GetProperty("transfer_id").GetString()!;
        Assert.Matches(@"^server_\d{8}_\d{6}_deploy\.tar\.gz$", transferId);
        Assert.Equal(200_000, upload.GetProperty("size").GetInt64());
        Assert.Equal("deploy.tar.gz", upload.GetProperty("filename").GetString());
        Assert.Equal(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(source))).ToLowerInvariant(), upload.GetProperty("sha256").GetString());
        var expiresIn = DateTimeOffset.Parse(upload.GetProperty("expires_at").GetString()!, System.Globalization.CultureInfo.InvariantCulture) - DateTimeOffset.UtcNow;
        Assert.InRange(expiresIn, TimeSpan.FromHours(5.9), TimeSpan.FromHours(6));

        var listed = (await client.CallAsync("exchange_list", new { client_id = "server", dest_client = dest.Uuid })).Ok();
        var item = Assert.Single(listed.GetProperty("transfers").EnumerateArray());
        Assert.Equal($"transfers/server/{transferId}", item.GetProperty("key").GetString());
        Assert.Equal(200_000, item.GetProperty("size").GetInt64());
        Assert.False(string.IsNullOrEmpty(item.GetProperty("last_modified").GetString()));
        Assert.Equal(dest.Uuid, item.GetProperty("metadata").GetProperty("dest_client").GetString());
        Assert.Equal("deploy.tar.gz", item.GetProperty("metadata").GetProperty("filename").GetString());

        var target = Path.Combine(_allowed.FullName, "in", "received.tar.gz");
        var download = (await client.CallAsync("exchange_download", new { download_url = upload.GetProperty("download_url").GetString(), local_path = target })).Ok();
        Assert.Equal(target, download.GetProperty("local_path").GetString());
        Assert.Equal(200_000, download.GetProperty("size").GetInt64());
        Assert.True(download.GetProperty("verified").GetBoolean());
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(target));

        var deleted = (await client.CallAsync("exchange_delete", new { transfer_id = transferId, source_client = "server" })).Ok();
        Assert.Equal(($"transfers/server/{transferId}", true), (deleted.GetProperty("key").GetString(), deleted.GetProperty("deleted").GetBoolean()));
        var again = (await client.CallAsync("exchange_delete", new { transfer_id = transferId, source_client = "server" })).Ok();
        Assert.False(again.GetProperty("deleted").GetBoolean());

        var history = Registry().QueryHistory(new HistoryQuery { Since = DateTimeOffset.UtcNow.AddMinutes(-5) });
        Assert.Contains(history, e => e is { Operation: "exchange_upload", Surface: "mcp", Status: "succeeded" } && e.Uuid == dest.Uuid);
        Assert.Contains(history, e => e is { Operation: "exchange_delete", Surface: "mcp", Status: "not_found" });
    }

    [Fact]
    public async Task Unconfigured_IsR2NotConfigured_WithTheExchangesOwnText()
    {
        var source = NewFile(_allowed, "a.txt", 10);
        await using var harness = Harness(configured: false);
        var client = await harness.ConnectAsync();

        var upload = (await client.CallAsync("exchange_upload", new { local_path = source })).Error("R2_NOT_CONFIGURED");
        var list = (await client.CallAsync("exchange_list")).Error("R2_NOT_CONFIGURED");

        const string expected = "R2 not configured (missing environment variables: ETPHONEHOME_R2_ACCOUNT_ID, ETPHONEHOME_R2_ACCESS_KEY, ETPHONEHOME_R2_SECRET_KEY, ETPHONEHOME_R2_BUCKET)";
        Assert.Equal(expected, upload.GetProperty("message").GetString());
        Assert.Equal(expected, list.GetProperty("message").GetString());
        Assert.Equal(4, list.GetProperty("missing").GetArrayLength());
    }

    [Theory]
    [InlineData(13)]
    [InlineData(0)]
    public async Task Upload_ExpiresHoursOutOfRange_IsRefusedBeforeTheExchangeIsEvenOpened(int hours)
    {
        var source = NewFile(_allowed, "b.txt", 10);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var error = (await client.CallAsync("exchange_upload", new { local_path = source, expires_hours = hours })).Error("INVALID_ARGUMENT");

        Assert.Equal("expires_hours", error.GetProperty("parameter").GetString());
        Assert.Contains("between 1 and 12", error.GetProperty("message").GetString());
        Assert.Equal(0, _settingsReads);
        Assert.Empty(Registry().QueryHistory(new HistoryQuery()));
    }

    [Fact]
    public async Task LocalPathsOutsideTheServerDirectories_ArePathDenied_AndNothingIsReadOrWritten()
    {
        var secret = NewFile(_outside, "secret.key", 32);
        var escape = Path.Combine(_allowed.FullName, "..", _outside.Name, "secret.key");
        var link = Path.Combine(_allowed.FullName, "link");
        File.CreateSymbolicLink(link, secret);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        (await client.CallAsync("exchange_upload", new { local_path = secret })).Error("PATH_DENIED");
        (await client.CallAsync("exchange_upload", new { local_path = escape })).Error("PATH_DENIED");
        (await client.CallAsync("exchange_upload", new { local_path = link })).Error("PATH_DENIED");
        var download = (await client.CallAsync("exchange_download",
            new { download_url = $"{s3.Lenient.Endpoint}eph-test/transfers/server/x_20260101_000000_a.txt", local_path = Path.Combine(_outside.FullName, "out.txt") })).Error("PATH_DENIED");

        Assert.Equal([_allowed.FullName], download.GetProperty("allowed_directories").EnumerateArray().Select(d => d.GetString()));
        Assert.Equal(0, _settingsReads);
        Assert.Equal(["secret.key"], _outside.GetFiles().Select(f => f.Name));
    }

    [Fact]
    public async Task Download_FromAnotherHost_IsUrlNotAllowed_AndWritesNothing()
    {
        await using var harness = Harness();
        var client = await harness.ConnectAsync();
        var target = Path.Combine(_allowed.FullName, "evil.bin");

        var error = (await client.CallAsync("exchange_download", new { download_url = "http://127.0.0.2:9/eph-test/transfers/server/x_20260101_000000_a.txt", local_path = target })).Error("URL_NOT_ALLOWED");
        (await client.CallAsync("exchange_download", new { download_url = "file:///etc/passwd", local_path = target })).Error("INVALID_ARGUMENT");

        Assert.Contains("127.0.0.2:9", error.GetProperty("message").GetString());
        Assert.False(File.Exists(target));
        Assert.False(File.Exists(target + PresignedHttpTransferSuffix));
    }

    [Fact]
    public async Task Upload_UnknownDestClient_IsClientNotFound_AndUploadsNothing()
    {
        var source = NewFile(_allowed, "c.txt", 10);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        (await client.CallAsync("exchange_upload", new { local_path = source, dest_client = "no-such-client" })).Error("CLIENT_NOT_FOUND");
        (await client.CallAsync("exchange_upload", new { local_path = Path.Combine(_allowed.FullName, "missing.txt") })).Error("INVALID_ARGUMENT");

        Assert.Equal(0, _settingsReads);
    }

    private static string PresignedHttpTransferSuffix => EtPhoneHome.Protocol.PresignedHttpTransfer.PartialSuffix;
}
