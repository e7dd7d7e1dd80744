using System.Security.Cryptography;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Files;

/// <summary>Upload, download and the small file operations through an in-process agent RpcServer and the real tunnel client.</summary>
public sealed class FileTransferTests : IAsyncLifetime
{
    private const string Uuid = "0a4c1f3e-7b2d-4e55-9c10-2f6a8d3b9e71";
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-transfer-").FullName;
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly RpcServer _server = new();

    public Task InitializeAsync()
    {
        _server.Start();
        Directory.CreateDirectory(Remote(""));
        Directory.CreateDirectory(Local(""));
        _server.SetSession(_secret, Uuid, new SessionSettings { AllowedPaths = [Remote("")] });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Remote(string name) => Path.Combine(_dir, "remote", name);

    private string Local(string name) => Path.Combine(_dir, "local", name);

    private FleetTarget Target(int? port = null) => new(Uuid, "files-1", new SessionRecord
    {
        Id = 1,
        Uuid = Uuid,
        Fingerprint = "SHA256:test",
        Host = "localhost",
        TunnelPort = port ?? _server.Port,
        Secret = _secret,
        ConnectedAt = DateTimeOffset.UtcNow,
        LastHeartbeat = DateTimeOffset.UtcNow,
    });

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(count).NextBytes(bytes);
        return bytes;
    }

    private static string Sha(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant();

    private sealed class LastValue : IProgress<long>
    {
        public long Value;
        public void Report(long value) => Volatile.Write(ref Value, value);
    }

    [Fact]
    public async Task Upload_ThenDownload_RoundTripsBytesAndHash()
    {
        var bytes = RandomBytes(5 * 1024 * 1024 + 17);
        File.WriteAllBytes(Local("blob.bin"), bytes);
        var client = new FileTransferClient();
        var progress = new LastValue();

        var up = await client.UploadAsync(Target(), Local("blob.bin"), Remote("dir/"), progress, CancellationToken.None);
        Assert.Equal(Remote("dir/blob.bin"), up.RemotePath);
        Assert.Equal(Sha(bytes), up.Sha256);
        Assert.Equal(bytes.Length, progress.Value);
        Assert.Equal(bytes, File.ReadAllBytes(Remote("dir/blob.bin")));
        Assert.False(File.Exists(Remote("dir/" + FileLimits.PartialName("blob.bin"))));

        var down = await client.DownloadAsync(Target(), Remote("dir/blob.bin"), Local("copy.bin"), null, CancellationToken.None);
        Assert.Equal(Sha(bytes), down.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(Local("copy.bin")));
        Assert.Equal(0, down.ResumedFrom);
    }

    [Fact]
    public async Task Upload_EmptyFile_Works()
    {
        File.WriteAllBytes(Local("empty"), []);
        var up = await new FileTransferClient().UploadAsync(Target(), Local("empty"), Remote("empty"), null, CancellationToken.None);
        Assert.Equal(0, up.Size);
        Assert.Equal(Sha([]), up.Sha256);
        Assert.True(File.Exists(Remote("empty")));
    }

    [Fact]
    public async Task Upload_ConnectionKilledMidStream_ResumesFromThePartial()
    {
        var bytes = RandomBytes(6 * 1024 * 1024);
        File.WriteAllBytes(Local("big.bin"), bytes);
        await using var proxy = new TamperingProxy(_server.Port) { KillUpstreamAfter = 3 * 1024 * 1024 };
        var retries = new List<Exception>();

        var up = await new FileTransferClient { MaxAttempts = 3, OnRetry = (_, ex) => retries.Add(ex) }
            .UploadAsync(Target(proxy.Port), Local("big.bin"), Remote("big.bin"), null, CancellationToken.None);

        Assert.Equal(2, up.Attempts);
        Assert.Single(retries);
        Assert.InRange(up.ResumedFrom, 1, 3 * 1024 * 1024);
        Assert.Equal(Sha(bytes), up.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(Remote("big.bin")));
    }

    [Fact]
    public async Task Upload_KilledWithoutRetry_LeavesPartial_NextCallResumes()
    {
        var bytes = RandomBytes(4 * 1024 * 1024);
        File.WriteAllBytes(Local("p.bin"), bytes);
        await using (var proxy = new TamperingProxy(_server.Port) { KillUpstreamAfter = 2 * 1024 * 1024 })
        {
            await Assert.ThrowsAnyAsync<IOException>(() => new FileTransferClient { MaxAttempts = 1 }
                .UploadAsync(Target(proxy.Port), Local("p.bin"), Remote("p.bin"), null, CancellationToken.None));
        }

        Assert.False(File.Exists(Remote("p.bin")));
        // The agent may not have noticed the drop yet (BUSY); the client waits that out instead of failing.
        var up = await new FileTransferClient { MaxAttempts = 1 }.UploadAsync(Target(), Local("p.bin"), Remote("p.bin"), null, CancellationToken.None);
        Assert.True(up.ResumedFrom > 0, "the second upload should resume from the partial file");
        Assert.Equal(bytes, File.ReadAllBytes(Remote("p.bin")));
    }

    [Fact]
    public async Task Download_ConnectionKilledMidStream_ResumesFromTheLocalPartial()
    {
        var bytes = RandomBytes(6 * 1024 * 1024);
        File.WriteAllBytes(Remote("d.bin"), bytes);
        await using var proxy = new TamperingProxy(_server.Port) { KillDownstreamAfter = 3 * 1024 * 1024 };

        var down = await new FileTransferClient { MaxAttempts = 3 }.DownloadAsync(Target(proxy.Port), Remote("d.bin"), Local(""), null, CancellationToken.None);

        Assert.Equal(2, down.Attempts);
        Assert.True(down.ResumedFrom > 0);
        Assert.Equal(Local("d.bin"), down.LocalPath);
        Assert.Equal(bytes, File.ReadAllBytes(Local("d.bin")));
        Assert.False(File.Exists(Local(FileLimits.PartialName("d.bin"))));
    }

    [Fact]
    public async Task Upload_CorruptedInTransit_IsChecksumMismatch_AndReplacesNothing()
    {
        File.WriteAllText(Remote("keep.txt"), "original");
        var bytes = RandomBytes(1024 * 1024);
        File.WriteAllBytes(Local("keep.txt"), bytes);
        await using var proxy = new TamperingProxy(_server.Port) { FlipUpstreamAt = 4096 + 512 * 1024 }; // inside the raw bytes

        var ex = await Assert.ThrowsAsync<RpcException>(() => new FileTransferClient().UploadAsync(Target(proxy.Port), Local("keep.txt"), Remote("keep.txt"), null, CancellationToken.None));
        Assert.Equal(FileLimits.ChecksumMismatch, ex.Code);
        Assert.Equal("original", File.ReadAllText(Remote("keep.txt")));
        Assert.False(File.Exists(Remote(FileLimits.PartialName("keep.txt"))));
    }

    [Fact]
    public async Task Download_CorruptedInTransit_IsChecksumMismatch_AndCreatesNothing()
    {
        File.WriteAllBytes(Remote("c.bin"), RandomBytes(1024 * 1024));
        await using var proxy = new TamperingProxy(_server.Port) { FlipDownstreamAt = 8192 + 300 * 1024 };

        var ex = await Assert.ThrowsAsync<RpcException>(() => new FileTransferClient().DownloadAsync(Target(proxy.Port), Remote("c.bin"), Local("c.bin"), null, CancellationToken.None));
        Assert.Equal(FileLimits.ChecksumMismatch, ex.Code);
        Assert.False(File.Exists(Local("c.bin")));
    }

    [Fact]
    public async Task Transfers_OutsideAllowedPaths_ArePathDenied_AndTouchNothing()
    {
        File.WriteAllText(Local("x.txt"), "x");
        File.WriteAllText(Path.Combine(_dir, "secret.txt"), "s");
        var client = new FileTransferClient();
        var up = await Assert.ThrowsAsync<RpcException>(() => client.UploadAsync(Target(), Local("x.txt"), Path.Combine(_dir, "evil.txt"), null, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, up.Code);
        Assert.False(File.Exists(Path.Combine(_dir, "evil.txt")));
        Assert.False(File.Exists(Path.Combine(_dir, FileLimits.PartialName("evil.txt"))));

        File.CreateSymbolicLink(Remote("link"), Path.Combine(_dir, "secret.txt"));
        var down = await Assert.ThrowsAsync<RpcException>(() => client.DownloadAsync(Target(), Remote("link"), Local("s.txt"), null, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, down.Code);
        Assert.False(File.Exists(Local("s.txt")));
    }

    [Fact]
    public async Task FileOperations_ThroughTheTunnel()
    {
        var ops = new RemoteFileOperations();
        var written = await ops.WriteAsync(Target(), new WriteFileParams { Path = Remote("notes/a.txt"), Content = "hello" }, CancellationToken.None);
        Assert.True(written.Created);
        var read = await ops.ReadAsync(Target(), new ReadFileParams { Path = Remote("notes/a.txt") }, CancellationToken.None);
        Assert.Equal(("hello", FileEncodings.Utf8), (read.Content, read.Encoding));
        var list = await ops.ListAsync(Target(), new ListFilesParams { Path = Remote("notes") }, CancellationToken.None);
        Assert.Equal("a.txt", Assert.Single(list.Entries).Name);
        var denied = await Assert.ThrowsAsync<RpcException>(() => ops.ReadAsync(Target(), new ReadFileParams { Path = "/etc/passwd" }, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, denied.Code);
    }

    [Fact]
    public async Task TheServerPolicySentWithAConnection_AppliesToIt_NarrowingButNeverWideningTheAgentsOwn()
    {
        // An allowed_paths edit must apply to the next request on a live session: each connection carries the
        // registry's current list, and the agent intersects it with its own.
        Directory.CreateDirectory(Remote("a"));
        Directory.CreateDirectory(Remote("b"));
        File.WriteAllText(Remote("a/x.txt"), "a");
        File.WriteAllText(Remote("b/y.txt"), "b");
        File.WriteAllText(Path.Combine(_dir, "outside.txt"), "o");
        var ops = new RemoteFileOperations();
        var onlyB = Target() with { Policy = new ServerPolicy { AllowedPaths = [Remote("b")] } };

        var denied = await Assert.ThrowsAsync<RpcException>(() => ops.ReadAsync(onlyB, new ReadFileParams { Path = Remote("a/x.txt") }, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, denied.Code);
        Assert.Equal("b", (await ops.ReadAsync(onlyB, new ReadFileParams { Path = Remote("b/y.txt") }, CancellationToken.None)).Content);

        // The next connection without the narrowing is back to the session's list: the policy is per connection.
        Assert.Equal("a", (await ops.ReadAsync(Target(), new ReadFileParams { Path = Remote("a/x.txt") }, CancellationToken.None)).Content);

        // A server list wider than the agent's own configured list does not widen it.
        await using var restricted = new RpcServer(agentAllowedPaths: [Remote("")]);
        restricted.Start();
        restricted.SetSession(_secret, Uuid, new SessionSettings());
        var wide = Target(restricted.Port) with { Policy = new ServerPolicy { AllowedPaths = [_dir] } };
        var stillDenied = await Assert.ThrowsAsync<RpcException>(() => ops.ReadAsync(wide, new ReadFileParams { Path = Path.Combine(_dir, "outside.txt") }, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, stillDenied.Code);
        Assert.Equal("a", (await ops.ReadAsync(wide, new ReadFileParams { Path = Remote("a/x.txt") }, CancellationToken.None)).Content);
    }

    [Fact]
    public async Task TheLargestPolicyTheRegistryAllows_FitsTheProof_EvenFullyEscaped()
    {
        // 16 Ki characters of non-ASCII paths (each escaped to \uXXXX in the proof) beside the one that matters.
        File.WriteAllText(Remote("kept.txt"), "kept");
        var padding = Enumerable.Range(0, 4).Select(i => "/" + new string('\u00e9', (SqliteRegistry.MaxAllowedPathsTotal - Remote("").Length) / 4 - 2) + i).ToArray();
        var policy = new ServerPolicy { AllowedPaths = [Remote(""), .. padding] };
        Assert.True(policy.AllowedPaths.Sum(p => p.Length) <= SqliteRegistry.MaxAllowedPathsTotal);

        var read = await new RemoteFileOperations().ReadAsync(Target() with { Policy = policy }, new ReadFileParams { Path = Remote("kept.txt") }, CancellationToken.None);

        Assert.Equal("kept", read.Content);
    }

    [Fact]
    public async Task AnOversizedProofFromAnUnauthenticatedPeer_IsRefusedWithoutBeingRead()
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();
        Assert.NotNull(await Wire.ReadAsync(stream, ProtocolJson.Default.HandshakeChallenge, TunnelHandshake.MaxHandshakeFrameBytes));
        var header = new byte[4];
        // 1 MiB: what the proof limit once was, so 128 such peers held 128 MiB of the agent's memory.
        System.Buffers.Binary.BinaryPrimitives.WriteInt32BigEndian(header, 1024 * 1024);
        await stream.WriteAsync(header);

        // The agent closes the connection on the length alone (well before its handshake timeout).
        var buffer = new byte[4096];
        using var wait = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        int n;
        do
        {
            n = await stream.ReadAsync(buffer, wait.Token);
        }
        while (n > 0);
        Assert.Equal(0, n);
    }

    [Fact]
    public async Task FleetFileRunner_AnswersEveryTarget()
    {
        File.WriteAllText(Remote("f.txt"), "fan");
        var online = Target();
        var offline = new FleetTarget("11111111-0000-0000-0000-000000000000", "off", null);
        var denied = new FleetTarget("22222222-0000-0000-0000-000000000000", "den", null) { DeniedReason = "key revoked" };
        var missing = online with { Uuid = "33333333-0000-0000-0000-000000000000", DisplayName = "missing" };
        var ops = new RemoteFileOperations();
        var results = new List<FleetFileOutcome<ReadFileResult>>();
        await foreach (var r in FleetFileRunner.RunAsync([online, offline, denied, missing],
            (t, ct) => ops.ReadAsync(t, new ReadFileParams { Path = t.DisplayName == "missing" ? Remote("nope") : Remote("f.txt") }, ct)))
        {
            results.Add(r);
        }

        Assert.Equal(4, results.Count);
        Assert.Equal(CommandStatus.Succeeded, results.Single(r => r.Target.DisplayName == "files-1").Status);
        Assert.Equal(CommandStatus.Offline, results.Single(r => r.Target.DisplayName == "off").Status);
        Assert.Equal(CommandStatus.Denied, results.Single(r => r.Target.DisplayName == "den").Status);
        var failed = results.Single(r => r.Target.DisplayName == "missing");
        Assert.Equal(CommandStatus.Error, failed.Status);
        Assert.Contains("NOT_FOUND", failed.Error);
        // The kind comes from the agent's code, not from the text: what every surface chooses its error by.
        Assert.Equal(FailureKind.NotFound, failed.Failure);
        Assert.Equal(FailureKind.Offline, results.Single(r => r.Target.DisplayName == "off").Failure);
        Assert.Equal(FailureKind.Denied, results.Single(r => r.Target.DisplayName == "den").Failure);
        Assert.Equal(FailureKind.None, results.Single(r => r.Target.DisplayName == "files-1").Failure);
    }

    [Fact]
    public async Task FleetFileRunner_Cancelled_EndsInFlightAsCancelled_AndSkipsTheRest()
    {
        var first = Target();
        FleetTarget[] targets =
        [
            first,
            first with { Uuid = "44444444-0000-0000-0000-000000000000", DisplayName = "second" },
            first with { Uuid = "55555555-0000-0000-0000-000000000000", DisplayName = "third" },
        ];
        using var cts = new CancellationTokenSource();
        var started = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

        async Task<List<FleetFileOutcome<string>>> CollectAsync()
        {
            var results = new List<FleetFileOutcome<string>>();
            await foreach (var r in FleetFileRunner.RunAsync<string>(targets, async (_, ct) =>
            {
                started.TrySetResult();
                await Task.Delay(Timeout.Infinite, ct);
                return "never";
            }, throttleLimit: 1, cts.Token))
            {
                results.Add(r);
            }

            return results;
        }

        var collecting = CollectAsync();
        await started.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await cts.CancelAsync();
        var outcomes = await collecting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(3, outcomes.Count);
        var inFlight = outcomes.Single(o => o.Target.DisplayName == first.DisplayName);
        Assert.Equal(CommandStatus.Error, inFlight.Status);
        Assert.Equal("cancelled", inFlight.Error);
        Assert.All(outcomes.Where(o => o != inFlight), o => Assert.Equal(CommandStatus.Skipped, o.Status));
    }
}
