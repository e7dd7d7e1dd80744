using System.Net.Sockets;
using System.Security.Cryptography;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Exchange;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// The exchange through the operator service: the server holds the bucket's credentials and signs, the operator's side
/// (<see cref="RemoteExchange"/>) gets presigned URLs and moves the bytes to and from a signature-checking S3 endpoint.
/// </summary>
public sealed class OperatorExchangeTests(S3ServersFixture s3) : IClassFixture<S3ServersFixture>, IAsyncLifetime
{
    private static readonly ExchangeOptions Small = new() { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024, Parallelism = 2 };

    private readonly FakeFleet _fleet = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-opx-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<(Socket Client, Task Serving)> _connections = [];
    private OperatorRole _role = OperatorRole.Operator;
    private Func<ExchangeSettings>? _settings;

    public Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        _fleet.AddClient("3f2a9c1e-0001", "web-01", false, 0, "web");
        _settings = () => s3.Strict.Settings;
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var (client, serving) in _connections)
        {
            client.Dispose();
            await serving.WaitAsync(TimeSpan.FromSeconds(20));
        }

        Directory.Delete(_dir, recursive: true);
    }

    private async Task<RemoteOperator> ConnectAsync()
    {
        var (client, server) = await UnixSocketPair.ConnectAsync(Path.Combine(_dir, "sock-" + _connections.Count));
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, _role, "10.0.0.5"))
        {
            HostName = "hub-test",
            ExchangeConnector = guard => new ExchangeClient(_settings!(), guard, Small),
        };
        var serving = service.ServeAsync(new NetworkStream(server, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", _role, "10.0.0.5"), _stop.Token);
        _connections.Add((client, serving));
        var stream = new NetworkStream(client, ownsSocket: false);
        return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.PowerShell, CancellationToken.None);
    }

    private string NewFile(string name, int size)
    {
        var path = Path.Combine(_dir, name);
        var bytes = new byte[size];
        new Random(size).NextBytes(bytes);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant();

    private List<AuditEntry> History(string operation) => _fleet.Audit.Where(a => a.Operation == operation).ToList();

    [Theory]
    [InlineData(0)]
    [InlineData(200_000)]
    [InlineData(11 * 1024 * 1024)]
    public async Task AnOperatorElsewhere_UploadsAndDownloads_StraightToTheBucket_Verified_AndRecordedAsThem(int size)
    {
        await using var remote = await ConnectAsync();
        var exchange = new RemoteExchange(remote) { Parallelism = 2 };
        var source = NewFile($"report {size}.bin", size);

        var up = await exchange.UploadAsync(source, null, 2, null, CancellationToken.None);

        Assert.Equal(size, up.Size);
        Assert.Equal(Sha(source), up.Sha256);
        Assert.Equal(size > Small.MultipartThreshold, up.Multipart);
        Assert.StartsWith("server/", up.Key.Replace(ExchangeLimits.Prefix, ""), StringComparison.Ordinal);
        var back = Path.Combine(_dir, "back.bin");
        var down = await exchange.DownloadAsync(up.TransferId, null, back, false, null, null, CancellationToken.None);
        Assert.True(down.Verified);
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(back));

        var recorded = Assert.Single(History(OperationNames.ExchangeUpload));
        Assert.Equal("succeeded", recorded.Status);
        Assert.Equal("alice", recorded.Actor);
        Assert.Equal("pwsh+ssh", recorded.Surface);
        Assert.Equal("succeeded", Assert.Single(History(OperationNames.ExchangeDownload)).Status);
    }

    [Fact]
    public async Task AReader_MayList_ButNotUploadOrDownload_AndNothingIsStarted()
    {
        _role = OperatorRole.Reader;
        _settings = () => s3.Lenient.Settings; // listing goes through the SDK, which the strict test server refuses
        await using var remote = await ConnectAsync();
        var exchange = new RemoteExchange(remote);

        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => exchange.UploadAsync(NewFile("x.bin", 10), null, 1, null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal("operator", refused.Error.Needs);
        var noDownload = await Assert.ThrowsAsync<OperatorRemoteException>(() => exchange.DownloadAsync("server_20260101_000000_x.bin", null, Path.Combine(_dir, "y"), false, null, null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.Forbidden, noDownload.Code);
        Assert.Empty(History(OperationNames.ExchangeUpload));
        Assert.NotNull(await exchange.ListAsync(null, null, CancellationToken.None));

        // Reading the lifecycle rules is a reader's (Initialize-EphExchange -WhatIf); installing them an admin's.
        var install = await Assert.ThrowsAsync<OperatorRemoteException>(() => exchange.LifecycleAsync(apply: true, CancellationToken.None));
        Assert.Equal("admin", install.Error.Needs);
        try
        {
            await exchange.LifecycleAsync(apply: false, CancellationToken.None);
        }
        catch (OperatorRemoteException read)
        {
            Assert.NotEqual(OperatorErrorCodes.Forbidden, read.Code); // the test endpoint may not implement lifecycle rules
        }
    }

    [Fact]
    public async Task ACompletionWithoutTheBytes_FailsAndIsRecorded_AndAnotherConnectionsUploadIsNotReachable()
    {
        await using var remote = await ConnectAsync();
        var sha = new string('a', 64);
        var plan = OperatorOperations.FromElement<ExchangeUploadPlan>(await remote.InvokeAsync(OperatorOperations.ExchangeUploadStart,
            new ExchangeUploadStartArgs { FileName = "never-sent.txt", Size = 12, Sha256 = sha }, CancellationToken.None));
        Assert.False(plan.Multipart);

        // A second operator connection cannot get URLs for, complete or abort the first one's upload.
        await using (var other = await ConnectAsync())
        {
            var foreign = await Assert.ThrowsAsync<OperatorRemoteException>(() => other.InvokeAsync(OperatorOperations.ExchangeUploadParts,
                new ExchangeUploadPartsArgs { TransferId = plan.TransferId, First = 1, Count = 1 }, CancellationToken.None));
            Assert.Equal(OperatorErrorCodes.NotFound, foreign.Code);
        }

        // A malformed completion changes nothing (the upload stays open)…
        var malformed = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.InvokeAsync(OperatorOperations.ExchangeUploadComplete,
            new ExchangeUploadCompleteArgs { TransferId = plan.TransferId, Sha256 = "not-a-hash" }, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.InvalidArgument, malformed.Code);
        Assert.Empty(History(OperationNames.ExchangeUpload));

        // …a completion of bytes that never arrived fails, is recorded, and ends the upload.
        var missing = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.InvokeAsync(OperatorOperations.ExchangeUploadComplete,
            new ExchangeUploadCompleteArgs { TransferId = plan.TransferId, Sha256 = sha }, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.Failed, missing.Code);
        Assert.Contains("did not arrive", missing.Message, StringComparison.Ordinal);
        Assert.Equal("failed", Assert.Single(History(OperationNames.ExchangeUpload)).Status);
        var ended = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.InvokeAsync(OperatorOperations.ExchangeUploadParts,
            new ExchangeUploadPartsArgs { TransferId = plan.TransferId, First = 1, Count = 1 }, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.NotFound, ended.Code);
    }

    [Fact]
    public async Task AnUploadLeftOpen_IsAbortedWhenTheConnectionCloses()
    {
        var remote = await ConnectAsync();
        await remote.InvokeAsync(OperatorOperations.ExchangeUploadStart,
            new ExchangeUploadStartArgs { FileName = "big.iso", Size = 11 * 1024 * 1024 }, CancellationToken.None);

        await remote.DisposeAsync();
        _connections[0].Client.Dispose();
        await _connections[0].Serving.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Equal("cancelled", Assert.Single(History(OperationNames.ExchangeUpload)).Status);
    }

    [Fact]
    public async Task PartsOutsideTheUpload_AndTooManyAtOnce_AreRefused()
    {
        await using var remote = await ConnectAsync();
        var plan = OperatorOperations.FromElement<ExchangeUploadPlan>(await remote.InvokeAsync(OperatorOperations.ExchangeUploadStart,
            new ExchangeUploadStartArgs { FileName = "big.iso", Size = 11 * 1024 * 1024 }, CancellationToken.None));
        Assert.Equal(3, plan.PartCount);

        foreach (var (first, count) in new[] { (0, 1), (3, 2), (1, ExchangeOperationLimits.MaxPartUrls + 1), (4, 1) })
        {
            var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.InvokeAsync(OperatorOperations.ExchangeUploadParts,
                new ExchangeUploadPartsArgs { TransferId = plan.TransferId, First = first, Count = count }, CancellationToken.None));
            Assert.Equal(OperatorErrorCodes.InvalidArgument, refused.Code);
        }

        await remote.InvokeAsync(OperatorOperations.ExchangeUploadAbort, new ExchangeUploadAbortArgs { TransferId = plan.TransferId }, CancellationToken.None);
        Assert.Equal("cancelled", Assert.Single(History(OperationNames.ExchangeUpload)).Status);
    }

    [Fact]
    public async Task ADownloadUrl_OffTheServersEndpoint_IsRefused_AndATransferComesWithItsHash()
    {
        await using var remote = await ConnectAsync();
        var exchange = new RemoteExchange(remote);

        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => exchange.DownloadAsync(null, new Uri("http://127.0.0.1:1/elsewhere/file"),
            Path.Combine(_dir, "z"), false, null, null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.InvalidArgument, refused.Code);
        Assert.Equal("url", refused.Error.Field);
        Assert.False(File.Exists(Path.Combine(_dir, "z")));

        var up = await exchange.UploadAsync(NewFile("small.txt", 100), null, 1, null, CancellationToken.None);
        var ticket = await remote.InvokeAsync(OperatorOperations.ExchangeDownload, new ExchangeDownloadArgs { TransferId = up.TransferId }, CancellationToken.None);
        Assert.Equal(up.Sha256, OperatorOperations.FromElement<ExchangeDownloadTicket>(ticket).Sha256);

        var gone = await Assert.ThrowsAsync<OperatorRemoteException>(() => exchange.DownloadAsync("server_20260101_000000_nothing.txt", null, Path.Combine(_dir, "n"), false, null, null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.NotFound, gone.Code);
    }

    [Fact]
    public async Task AServerWithoutAnExchange_SaysSo()
    {
        _settings = () => throw new ExchangeNotConfiguredException([ExchangeSettings.BucketVariable]);
        await using var remote = await ConnectAsync();

        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => new RemoteExchange(remote).UploadAsync(NewFile("a.txt", 5), null, 1, null, CancellationToken.None));

        Assert.Equal(OperatorErrorCodes.NotConfigured, refused.Code);
        Assert.Contains("ETPHONEHOME_R2_", refused.Message, StringComparison.Ordinal);
    }
}
