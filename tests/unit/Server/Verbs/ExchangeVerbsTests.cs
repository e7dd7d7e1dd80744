using EtPhoneHome.Core.Operations;
using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Exchange;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class ExchangeVerbsTests : IClassFixture<S3ServersFixture>, IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;
    private Func<OperationGuard, ExchangeClient> _createClient = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli)) { ExchangeConnector = g => _createClient(g) };

    private readonly FakeFleet _registry = new();
    private readonly DirectoryInfo _work = Directory.CreateTempSubdirectory("eph-exchange-verbs-");
    private StringWriter _out = new();
    private StringWriter _err = new();

    public ExchangeVerbsTests(S3ServersFixture s3)
    {
        _openRegistry = _ => _registry.Stores();
        _createClient = _ => new ExchangeClient(s3.Lenient.Settings);
        _registry.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
    }

    public void Dispose()
    {
        _work.Delete(recursive: true);
    }

    private async Task<int> Run(params string[] args)
    {
        _out = new StringWriter();
        _err = new StringWriter();
        return await Program.BuildRoot(Services).Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });
    }

    private List<JsonElement> Lines() => _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public async Task Download_IntoAMissingDirectory_IsALocalError_NamingThePath_NotAConnectionError()
    {
        var file = Path.Combine(_work.FullName, "local.txt");
        File.WriteAllText(file, "local error");
        Assert.Equal(0, await Run("exchange", "upload", file, "--json"));
        var transferId = Assert.Single(Lines()).GetProperty("transfer_id").GetString()!;
        var missing = Path.Combine(_work.FullName, "no-such-dir");

        Assert.Equal(1, await Run("exchange", "download", "--transfer-id", transferId, Path.Combine(missing, "out.txt")));

        Assert.Contains(missing, _err.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("broke", _err.ToString(), StringComparison.Ordinal);
        Assert.False(Directory.Exists(missing));
    }

    [Fact]
    public async Task UploadListDownloadDelete_WriteSnakeCaseJsonLines_AndDeleteTellsWhetherAnythingWasDeleted()
    {
        var file = Path.Combine(_work.FullName, "notes.txt");
        File.WriteAllText(file, "hello exchange");

        Assert.Equal(0, await Run("exchange", "upload", file, "--dest-client", "web-01", "--expires-hours", "2", "--json"));
        var upload = Assert.Single(Lines());
        var transferId = upload.GetProperty("transfer_id").GetString()!;
        Assert.Equal("notes.txt", upload.GetProperty("filename").GetString());
        Assert.Equal(14, upload.GetProperty("size").GetInt64());
        Assert.Equal("3f2a9c1e-0001", upload.GetProperty("dest_client").GetString());
        Assert.EndsWith("Z", upload.GetProperty("expires_at").GetString(), StringComparison.Ordinal);
        Assert.Contains("X-Amz-Signature=", upload.GetProperty("download_url").GetString(), StringComparison.Ordinal);

        Assert.Equal(0, await Run("exchange", "list", "--source-client", "server", "--dest-client", "web-01", "--json"));
        var listed = Assert.Single(Lines(), l => l.GetProperty("transfer_id").GetString() == transferId);
        Assert.Equal($"transfers/server/{transferId}", listed.GetProperty("key").GetString());
        Assert.Equal(upload.GetProperty("sha256").GetString(), listed.GetProperty("metadata").GetProperty("sha256").GetString());

        var target = Path.Combine(_work.FullName, "back.txt");
        Assert.Equal(0, await Run("exchange", "download", "--transfer-id", transferId, target, "--json"));
        var download = Assert.Single(Lines());
        Assert.True(download.GetProperty("verified").GetBoolean());
        Assert.Equal(target, download.GetProperty("local_path").GetString());
        Assert.Equal("hello exchange", File.ReadAllText(target));

        Assert.Equal(0, await Run("exchange", "delete", transferId, "--source-client", "server", "--json"));
        Assert.True(Assert.Single(Lines()).GetProperty("deleted").GetBoolean());
        Assert.Equal(3, await Run("exchange", "delete", transferId, "--source-client", "server", "--json"));
        Assert.False(Assert.Single(Lines()).GetProperty("deleted").GetBoolean());
    }

    [Fact]
    public async Task ExpiresOverTwelveHours_IsAUsageErrorNamingTheLimit()
    {
        var file = Path.Combine(_work.FullName, "x.bin");
        File.WriteAllBytes(file, [1, 2, 3]);

        Assert.Equal(OperatorVerbs.UsageError, await Run("exchange", "upload", file, "--expires-hours", "13"));
        Assert.Contains("between 1 and 12", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(OperatorVerbs.UsageError, await Run("exchange", "upload-url", "--source-client", "web-01", "--filename", "x", "--expires-hours", "24"));
    }

    [Fact]
    public async Task NotConfigured_SaysWhichVariablesAreMissing()
    {
        _createClient = _ => new ExchangeClient(ExchangeSettings.FromEnvironment(_ => null));

        Assert.Equal(OperatorVerbs.UsageError, await Run("exchange", "list"));

        Assert.Contains("R2 not configured (missing environment variables: ETPHONEHOME_R2_ACCOUNT_ID, ETPHONEHOME_R2_ACCESS_KEY, ETPHONEHOME_R2_SECRET_KEY, ETPHONEHOME_R2_BUCKET)", _err.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task AFileNameWithSpacesQuotesAndPercent_GivesEscapedUrls_ThatCurlCanUse()
    {
        const string name = "it's a b?c#d%e é.txt";
        var file = Path.Combine(_work.FullName, name);
        File.WriteAllText(file, "odd name");

        Assert.Equal(0, await Run("exchange", "upload", file, "--json"));
        var url = Assert.Single(Lines()).GetProperty("download_url").GetString()!;
        Assert.DoesNotContain(' ', url);
        Assert.True(url.All(char.IsAscii), url);
        Assert.Contains("it%27s%20a%20b%3Fc%23d%25e%20%C3%A9.txt?X-Amz-", url, StringComparison.Ordinal);
        using (var http = new HttpClient())
        {
            Assert.Equal("odd name", await http.GetStringAsync(url)); // the printed string, as curl would send it
        }

        Assert.Equal(0, await Run("exchange", "upload-url", "--source-client", "web-01", "--filename", name));
        var curl = _out.ToString().Split('\n').Single(l => l.StartsWith("curl -T ", StringComparison.Ordinal));
        Assert.StartsWith("curl -T 'it'\\''s a b?c#d%e é.txt' 'http://127.0.0.1:", curl, StringComparison.Ordinal);
        Assert.DoesNotContain(" é", curl[curl.IndexOf("'http", StringComparison.Ordinal)..], StringComparison.Ordinal);
    }

    [Fact]
    public async Task UploadUrl_PrintsACurlCommandForTheResolvedClient()
    {
        Assert.Equal(0, await Run("exchange", "upload-url", "--source-client", "web-01", "--filename", "logs.tgz"));

        Assert.Contains("curl -T 'logs.tgz' 'http://127.0.0.1:", _out.ToString(), StringComparison.Ordinal);
        Assert.Contains("transfers/3f2a9c1e-0001/3f2a9c1e-0001_", _out.ToString(), StringComparison.Ordinal);
    }
}
