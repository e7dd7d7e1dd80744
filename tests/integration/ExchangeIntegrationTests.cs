using System.Security.Cryptography;
using System.Text.Json.Nodes;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>A strict s3rver on 127.0.0.1 next to the sandbox, for the flows that involve agents.</summary>
public sealed class ExchangeSandboxFixture : IAsyncLifetime
{
    public SandboxFixture Sandbox { get; } = new();
    public S3TestServer S3 { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        S3 = await S3TestServer.StartAsync(strict: true);
        await Sandbox.InitializeAsync();
    }

    public async Task DisposeAsync()
    {
        await Sandbox.DisposeAsync();
        await S3.DisposeAsync();
    }
}

/// <summary>Server → agent and agent → server transfers through real tunnels and a real S3-compatible server.</summary>
public sealed class ExchangeIntegrationTests(ExchangeSandboxFixture fixture) : IClassFixture<ExchangeSandboxFixture>, IDisposable
{
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-it-");

    public void Dispose() => _work.Delete(recursive: true);

    private SandboxEnvironment Env => fixture.Sandbox.Env;

    /// <summary>An online agent whose own allowed paths are only <paramref name="allowed"/>.</summary>
    private async Task<FleetTarget> OnlineAgentAsync(string name, string allowed)
    {
        var agent = await Env.AddAgentAsync(name, start: false);
        agent.EditConfig(config => config["allowed_paths"] = new JsonArray(allowed));
        agent.Start();
        var key = await fixture.Sandbox.PendingKeyOfAsync(name);
        using var registry = Env.OpenRegistry();
        registry.ApproveKey(key.Fingerprint, "test");
        var client = (await Env.WaitOnlineAsync([name], SandboxFixture.Patience))[0];
        return FleetTargets.FromClients(registry, registry, [registry.GetClient(client.Uuid)!]).Single();
    }

    private static string Sha(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path))).ToLowerInvariant();

    [Fact]
    public async Task ServerToAgent_FetchesIntoAllowedPathVerified_AndADeniedPathIsRefused()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_work.FullName, "allowed")).FullName;
        var target = await OnlineAgentAsync("exchange-fetch", allowed);
        var source = Path.Combine(_work.FullName, "app.tgz");
        var bytes = new byte[2 * 1024 * 1024 + 17];
        new Random(11).NextBytes(bytes);
        File.WriteAllBytes(source, bytes);
        using var registry = Env.OpenRegistry();
        var guard = new OperationGuard(registry, new OperatorContext("test", Surfaces.Cli));
        using var exchange = new ExchangeClient(fixture.S3.Settings, guard);
        var upload = await exchange.UploadAsync(source, destClient: target.Uuid);
        var delivery = new ExchangeDelivery(exchange);

        var good = await Single(delivery.DeliverAsync([target], upload.TransferId, Path.Combine(allowed, "app.tgz")));
        var denied = await Single(delivery.DeliverAsync([target], upload.TransferId, Path.Combine(_work.FullName, "outside.tgz")));

        Assert.Equal(CommandStatus.Succeeded, good.Status);
        Assert.True(good.Verified);
        Assert.Equal(upload.Sha256, good.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(Path.Combine(allowed, "app.tgz")));
        Assert.Equal(CommandStatus.Denied, denied.Status);
        Assert.Contains("outside the allowed paths", denied.Error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_work.FullName, "outside.tgz")));
        Assert.Contains(registry.ListAudit(target.Uuid, 10), a => a.Operation == "exchange_download" && a.Status == "succeeded");
        Assert.Contains(registry.ListAudit(target.Uuid, 10), a => a.Operation == "exchange_download" && a.Status == "denied");
    }

    [Fact]
    public async Task AgentToServer_PutsToPresignedUrl_ThenServerDownloadsAndVerifies()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_work.FullName, "logs")).FullName;
        var target = await OnlineAgentAsync("exchange-put", allowed);
        var remote = Path.Combine(allowed, "app.log");
        var bytes = new byte[700_000];
        new Random(12).NextBytes(bytes);
        File.WriteAllBytes(remote, bytes);
        using var exchange = new ExchangeClient(fixture.S3.Settings);
        var delivery = new ExchangeDelivery(exchange);
        var destination = Path.Combine(_work.FullName, "collected.log");

        var result = await delivery.CollectAsync(target, remote, destination);

        Assert.Equal(CommandStatus.Succeeded, result.Status);
        Assert.True(result.Verified);
        Assert.Equal(Sha(remote), result.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(destination));
        Assert.StartsWith(target.Uuid + "_", result.TransferId, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ServerToAgent_AMultipartUpload_IsVerifiedByTheAgentAgainstItsManifest_AndWithoutItNobodyIsTold()
    {
        var allowed = Directory.CreateDirectory(Path.Combine(_work.FullName, "parts")).FullName;
        var target = await OnlineAgentAsync("exchange-parts", allowed);
        var source = Path.Combine(_work.FullName, "big.bin");
        var bytes = new byte[11 * 1024 * 1024 + 5];
        new Random(12).NextBytes(bytes);
        File.WriteAllBytes(source, bytes);
        using var exchange = new ExchangeClient(fixture.S3.Settings, options: new ExchangeOptions { PartSize = 5 * 1024 * 1024, MultipartThreshold = 5 * 1024 * 1024 });
        var upload = await exchange.UploadAsync(source, destClient: target.Uuid);
        var delivery = new ExchangeDelivery(exchange);

        var good = await Single(delivery.DeliverAsync([target], upload.TransferId, Path.Combine(allowed, "big.bin")));

        Assert.True(upload.Multipart);
        Assert.Equal(CommandStatus.Succeeded, good.Status);
        Assert.True(good.Verified);
        Assert.Equal(upload.Sha256, good.Sha256);
        Assert.Equal(Sha(source), good.Sha256);

        using var raw = new Amazon.S3.AmazonS3Client(new Amazon.Runtime.BasicAWSCredentials(S3TestServer.AccessKey, S3TestServer.SecretKey), new Amazon.S3.AmazonS3Config
        {
            ServiceURL = fixture.S3.Endpoint.ToString(),
            ForcePathStyle = true,
            AuthenticationRegion = "auto",
            UseHttp = true,
        });
        await raw.DeleteObjectAsync(S3TestServer.Bucket, "transfers/.manifest/server/" + upload.TransferId);

        var ex = await Assert.ThrowsAsync<ExchangeException>(() => Single(delivery.DeliverAsync([target], upload.TransferId, Path.Combine(allowed, "again.bin"))));

        Assert.Equal("ManifestMissing", ex.ErrorCode);
        Assert.False(File.Exists(Path.Combine(allowed, "again.bin")));
    }

    private static async Task<ExchangeDeliveryResult> Single(IAsyncEnumerable<ExchangeDeliveryResult> results)
    {
        var list = new List<ExchangeDeliveryResult>();
        await foreach (var r in results)
        {
            list.Add(r);
        }

        return Assert.Single(list);
    }
}
