using System.Security.Cryptography;
using System.Text;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Mcp;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Mcp;

/// <summary>
/// read_file, write_file, list_files, upload_file and download_file through the SDK client, against a real registry
/// and a real in-process agent whose allowed paths are one directory (<see cref="_remote"/>).
/// </summary>
public sealed class McpFileToolTests : IAsyncLifetime
{
    private const int Budget = 1024;
    private readonly TempData _data = new();
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly string _remote;
    private readonly string _local;
    private readonly string _outside;
    private readonly RpcServer _agent;
    private SqliteRegistry _registry = null!;
    private ClientRecord _client = null!;

    public McpFileToolTests()
    {
        _remote = Directory.CreateDirectory(Path.Combine(_data.Root, "remote")).FullName;
        _local = Directory.CreateDirectory(Path.Combine(_data.Root, "local")).FullName;
        _outside = Directory.CreateDirectory(Path.Combine(_data.Root, "outside")).FullName;
        _agent = new RpcServer(agentAllowedPaths: [_remote]);
    }

    public Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        _client = Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01"));
        _agent.Start();
        _agent.SetSession(_secret, _client.Uuid, null);
        var session = _registry.OpenSession(_client.Uuid, Keys.A, "gw", _agent.Port, _secret, Environment.ProcessId, Environment.ProcessId);
        _registry.MarkSessionOnline(session.Id);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _agent.DisposeAsync();
        _registry.Dispose();
        _data.Dispose();
    }

    private McpHarness Harness() => new(_registry, new FakeTransport(), new McpServerSettings { MaxOutputBytes = Budget, AllowedLocalDirectories = [_local] });

    private static string Sha256(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

    [Fact]
    public async Task WriteFile_ThenReadFile_RoundTripsTheText_AndRecordsBothWithTheMcpSurface()
    {
        await using var harness = Harness();
        var client = await harness.ConnectAsync();
        var path = Path.Combine(_remote, "conf", "app.ini");
        const string text = "name = web-01\nmotto = ünïcødé ✓\n";

        var written = (await client.CallAsync("write_file", new { path, content = text, client_id = "web-01" })).Ok();
        var read = (await client.CallAsync("read_file", new { path, client_id = _client.Uuid })).Ok();

        var bytes = Encoding.UTF8.GetBytes(text);
        Assert.Equal((bytes.Length, Sha256(bytes), true), (written.GetProperty("size").GetInt32(), written.GetProperty("sha256").GetString(), written.GetProperty("created").GetBoolean()));
        Assert.Equal(text, File.ReadAllText(path));
        Assert.Equal(text, read.GetProperty("content").GetString());
        Assert.Equal((bytes.Length, Sha256(bytes)), (read.GetProperty("size").GetInt32(), read.GetProperty("sha256").GetString()));
        Assert.False(read.TryGetProperty("truncated", out _));
        var recorded = _registry.QueryHistory(new HistoryQuery { Operations = ["write_file", "read_file"] });
        Assert.Equal(2, recorded.Count);
        Assert.All(recorded, e => Assert.Equal((Surfaces.Mcp, "succeeded", _client.Uuid), (e.Surface, e.Status, e.Uuid)));
    }

    [Fact]
    public async Task ReadFile_LargeText_IsCutAtTheBudget_WithAMarkerNamingTheFullSize()
    {
        var path = Path.Combine(_remote, "big.log");
        var line = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n";
        File.WriteAllText(path, string.Concat(Enumerable.Repeat(line, 1000)));
        await using var harness = Harness();
        var client = await harness.ConnectAsync();
        (await client.CallAsync("select_client", new { client_id = "web-01" })).Ok();

        var read = (await client.CallAsync("read_file", new { path })).Ok();

        var content = read.GetProperty("content").GetString()!;
        Assert.True(read.GetProperty("truncated").GetBoolean());
        Assert.Equal(64_000, read.GetProperty("size").GetInt32());
        Assert.EndsWith(OutputBudget.Marker(Budget, 64_000), content);
        Assert.StartsWith(line, content);
        Assert.True(Encoding.UTF8.GetByteCount(content) < Budget + 100, $"content is {content.Length} characters");
        Assert.False(read.TryGetProperty("sha256", out _), "a hash of the shown start would pass for the file's");
    }

    [Fact]
    public async Task ReadFile_BinaryFile_IsNeverDumped_ButSizedAndHashedWhole()
    {
        var bytes = new byte[5000];
        new Random(7).NextBytes(bytes);
        bytes[10] = 0;
        var path = Path.Combine(_remote, "blob.bin");
        File.WriteAllBytes(path, bytes);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var result = await client.CallAsync("read_file", new { path, client_id = "web-01" });

        var read = result.Ok();
        Assert.True(read.GetProperty("binary").GetBoolean());
        Assert.Equal((5000, Sha256(bytes)), (read.GetProperty("size").GetInt32(), read.GetProperty("sha256").GetString()));
        Assert.Contains("download_file", read.GetProperty("note").GetString());
        Assert.False(read.TryGetProperty("content", out _));
        Assert.DoesNotContain(Convert.ToBase64String(bytes, 0, 48), ToolCalls.Text(result));
    }

    [Fact]
    public async Task FileTools_OutsideTheAgentsAllowedPaths_ArePathDenied_AndNothingIsWritten()
    {
        var secret = Path.Combine(_outside, "secret.txt");
        File.WriteAllText(secret, "do not show");
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var read = await client.CallAsync("read_file", new { path = secret, client_id = "web-01" });
        read.Error("PATH_DENIED");
        (await client.CallAsync("write_file", new { path = Path.Combine(_outside, "new.txt"), content = "x", client_id = "web-01" })).Error("PATH_DENIED");
        (await client.CallAsync("list_files", new { path = _outside, client_id = "web-01" })).Error("PATH_DENIED");
        File.WriteAllText(Path.Combine(_local, "up.txt"), "payload");
        (await client.CallAsync("upload_file", new { local_path = Path.Combine(_local, "up.txt"), remote_path = Path.Combine(_outside, "up.txt"), client_id = "web-01" })).Error("PATH_DENIED");
        (await client.CallAsync("download_file", new { remote_path = secret, local_path = Path.Combine(_local, "secret.txt"), client_id = "web-01" })).Error("PATH_DENIED");

        Assert.DoesNotContain("do not show", ToolCalls.Text(read));
        Assert.Equal(["secret.txt"], Directory.GetFiles(_outside).Select(Path.GetFileName));
        Assert.Equal(["up.txt"], Directory.GetFiles(_local).Select(Path.GetFileName));
        Assert.Contains(_registry.QueryHistory(new HistoryQuery { Operations = ["read_file"] }), e => e.Status == "denied");
    }

    [Fact]
    public async Task ReadFile_MissingFile_IsNotFound_AndWriteFile_OverTheLimit_IsTooLarge_BeforeAnyRequest()
    {
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        (await client.CallAsync("read_file", new { path = Path.Combine(_remote, "nope.txt"), client_id = "web-01" })).Error("NOT_FOUND");
        var big = new string('é', 600_000); // 1.2 MB as UTF-8, under the character limit of the schema
        (await client.CallAsync("write_file", new { path = Path.Combine(_remote, "big.txt"), content = big, client_id = "web-01" })).Error("TOO_LARGE");
        (await client.CallAsync("read_file", new { path = "relative.txt", client_id = "web-01" })).Error("INVALID_ARGUMENT");
        (await client.CallAsync("read_file", new { path = Path.Combine(_remote, "x") })).Error("NO_CLIENT_SELECTED");

        Assert.False(File.Exists(Path.Combine(_remote, "big.txt")));
        Assert.Empty(_registry.QueryHistory(new HistoryQuery { Operations = ["write_file"] }));
    }

    [Fact]
    public async Task ListFiles_ListsTheDirectory_WithTypesAndSizes()
    {
        File.WriteAllText(Path.Combine(_remote, "a.txt"), "hello");
        Directory.CreateDirectory(Path.Combine(_remote, "sub"));
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var listed = (await client.CallAsync("list_files", new { path = _remote, client_id = "web-01" })).Ok();

        var entries = listed.GetProperty("entries").EnumerateArray().ToDictionary(e => e.GetProperty("name").GetString()!, e => e);
        Assert.Equal(["a.txt", "sub"], entries.Keys.Order());
        Assert.Equal(("file", 5), (entries["a.txt"].GetProperty("type").GetString(), entries["a.txt"].GetProperty("size").GetInt32()));
        Assert.Equal("dir", entries["sub"].GetProperty("type").GetString());
        Assert.Equal(2, listed.GetProperty("count").GetInt32());
    }

    [Fact]
    public async Task UploadThenDownload_KeepTheBytesIdentical_BySha256()
    {
        var bytes = new byte[3 * 1024 * 1024 + 17];
        new Random(11).NextBytes(bytes);
        var source = Path.Combine(_local, "payload.bin");
        File.WriteAllBytes(source, bytes);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var up = (await client.CallAsync("upload_file", new { local_path = source, remote_path = _remote + "/in/", client_id = "web-01" })).Ok();
        var back = Path.Combine(_local, "back.bin");
        var down = (await client.CallAsync("download_file", new { remote_path = Path.Combine(_remote, "in", "payload.bin"), local_path = back, client_id = "web-01" })).Ok();

        var sha = Sha256(bytes);
        Assert.Equal((sha, bytes.Length, true), (up.GetProperty("sha256").GetString(), up.GetProperty("size").GetInt32(), up.GetProperty("verified").GetBoolean()));
        Assert.Equal(Path.Combine(_remote, "in", "payload.bin"), up.GetProperty("remote_path").GetString());
        Assert.Equal(sha, Sha256(File.ReadAllBytes(Path.Combine(_remote, "in", "payload.bin"))));
        Assert.Equal((sha, back), (down.GetProperty("sha256").GetString(), down.GetProperty("local_path").GetString()));
        Assert.Equal(sha, Sha256(File.ReadAllBytes(back)));
        var recorded = _registry.QueryHistory(new HistoryQuery { Operations = ["upload_file", "download_file"] });
        Assert.Equal(2, recorded.Count);
        Assert.All(recorded, e => Assert.Equal((Surfaces.Mcp, "succeeded"), (e.Surface, e.Status)));
    }

    [Fact]
    public async Task DownloadFile_IntoAnAllowedDirectory_KeepsTheRemoteName()
    {
        File.WriteAllText(Path.Combine(_remote, "report.txt"), "numbers");
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var down = (await client.CallAsync("download_file", new { remote_path = Path.Combine(_remote, "report.txt"), local_path = _local, client_id = "web-01" })).Ok();

        Assert.Equal(Path.Combine(_local, "report.txt"), down.GetProperty("local_path").GetString());
        Assert.Equal("numbers", File.ReadAllText(Path.Combine(_local, "report.txt")));
    }

    [Fact]
    public async Task LocalPathsOutsideTheServerDirectories_AreRefused_BeforeTheAgentIsAsked_AndNothingIsWritten()
    {
        File.WriteAllText(Path.Combine(_remote, "data.txt"), "remote data");
        var outsideSource = Path.Combine(_outside, "private.txt");
        File.WriteAllText(outsideSource, "server secret");
        File.CreateSymbolicLink(Path.Combine(_local, "escape"), _outside);
        await using var harness = Harness();
        var client = await harness.ConnectAsync();

        var down = await client.CallAsync("download_file", new { remote_path = Path.Combine(_remote, "data.txt"), local_path = Path.Combine(_outside, "data.txt"), client_id = "web-01" });
        var viaLink = await client.CallAsync("download_file", new { remote_path = Path.Combine(_remote, "data.txt"), local_path = Path.Combine(_local, "escape", "data.txt"), client_id = "web-01" });
        var dotDot = await client.CallAsync("download_file", new { remote_path = Path.Combine(_remote, "data.txt"), local_path = _local + "/../outside/data.txt", client_id = "web-01" });
        var up = await client.CallAsync("upload_file", new { local_path = outsideSource, remote_path = Path.Combine(_remote, "stolen.txt"), client_id = "web-01" });

        foreach (var refused in new[] { down, viaLink, dotDot, up })
        {
            var error = refused.Error("PATH_DENIED");
            Assert.Equal(_local, Assert.Single(error.GetProperty("allowed_directories").EnumerateArray()).GetString());
        }

        Assert.Equal(["private.txt"], Directory.GetFiles(_outside).Select(Path.GetFileName));
        Assert.False(File.Exists(Path.Combine(_remote, "stolen.txt")));
        Assert.Empty(_registry.QueryHistory(new HistoryQuery { Operations = ["upload_file", "download_file"] }));
    }

    [Fact]
    public async Task FileTools_OfflineClient_IsClientOffline_WithoutContactingIt()
    {
        var registry = new FakeFleet();
        registry.AddClient("33333333-cccc", "db-01", false, 0, "db");
        await using var harness = new McpHarness(registry, new FakeTransport(), new McpServerSettings { AllowedLocalDirectories = [_local] });
        var client = await harness.ConnectAsync();

        (await client.CallAsync("read_file", new { path = "/etc/hostname", client_id = "db-01" })).Error("CLIENT_OFFLINE");
        (await client.CallAsync("list_files", new { path = "/etc", client_id = "db-01" })).Error("CLIENT_OFFLINE");
        (await client.CallAsync("download_file", new { remote_path = "/etc/hostname", local_path = Path.Combine(_local, "h"), client_id = "db-01" })).Error("CLIENT_OFFLINE");

        Assert.Empty(Directory.GetFiles(_local));
    }
}
