using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>eph-server purge-keys: a dry run without --yes, a bulk purge of old pending keys with it.</summary>
public sealed class PurgeKeysVerbTests : IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli));

    private readonly TempData _temp = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly SqliteRegistry _r;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public PurgeKeysVerbTests()
    {
        _r = SqliteRegistry.Open(_temp.Dir, _time);
        _openRegistry = _ => RegistryStores.Of(SqliteRegistry.Open(_temp.Dir, _time));
        _r.RecordPendingKey(Keys.A, null, Keys.Identity("stale-box"));   // unseen 10 days
        Keys.Admit(_r, Keys.D, Keys.Identity("web-01"));                  // approved, as old
        _time.Advance(TimeSpan.FromDays(9));
        _r.RecordPendingKey(Keys.B, null, Keys.Identity("recent-box"));  // unseen 1 day
        _time.Advance(TimeSpan.FromDays(1));
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot(Services).Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    [Fact]
    public async Task WithoutYes_ListsWhatWouldGo_AndChangesNothing()
    {
        Assert.Equal(0, await RunAsync("purge-keys", "--data", _temp.Dir.Path));

        var text = _out.ToString();
        Assert.Contains(Keys.A, text);
        Assert.Contains("stale-box", text);
        Assert.DoesNotContain(Keys.B, text);
        Assert.DoesNotContain(Keys.D, text);
        Assert.Contains("1 pending key(s) unseen for more than 7d would be purged; add --yes", text);
        Assert.NotNull(_r.GetKey(Keys.A));
        Assert.Empty(_r.QueryHistory(new HistoryQuery { Operations = [OperationNames.PurgeKeys] }));
    }

    [Fact]
    public async Task WithYes_PurgesOnlyOldPendingKeys_AndTheHistorySaysWhoAndWhere()
    {
        Assert.Equal(0, await RunAsync("purge-keys", "--data", _temp.Dir.Path, "--yes"));

        Assert.Contains("Purged 1 pending key(s) unseen for more than 7d", _out.ToString());
        Assert.Null(_r.GetKey(Keys.A));
        Assert.NotNull(_r.GetKey(Keys.B));
        Assert.Equal(KeyStatus.Approved, _r.GetKey(Keys.D)!.Status);
        var entry = Assert.Single(_r.QueryHistory(new HistoryQuery { Operations = [OperationNames.PurgeKeys] }));
        Assert.Equal((Environment.UserName, Surfaces.Cli, "succeeded"), (entry.Actor, entry.Surface, entry.Status));
    }

    [Fact]
    public async Task OlderThan_TakesAnAge_AndJsonWritesOneLinePerKey()
    {
        Assert.Equal(0, await RunAsync("purge-keys", "--data", _temp.Dir.Path, "--older-than", "12h", "-y", "--json"));

        var lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal([Keys.A, Keys.B], lines.Select(l => l.GetProperty("fingerprint").GetString()));
        Assert.Contains("Purged 2 pending key(s) unseen for more than 12h", _err.ToString());
        Assert.Empty(_r.ListKeys(KeyStatus.Pending));
    }

    [Theory]
    [InlineData("7")]
    [InlineData("-1d")]
    [InlineData("1w")]
    [InlineData("99999999999d")]
    public async Task ABadAge_IsAUsageError_AndNothingIsPurged(string age)
    {
        Assert.NotEqual(0, await RunAsync("purge-keys", "--data", _temp.Dir.Path, "--older-than", age, "--yes"));

        Assert.Contains("--older-than", _err.ToString());
        Assert.Equal(2, _r.ListKeys(KeyStatus.Pending).Count);
    }

    [Fact]
    public async Task NothingOldEnough_SaysSo()
    {
        Assert.Equal(0, await RunAsync("purge-keys", "--data", _temp.Dir.Path, "--older-than", "30d", "--yes"));
        Assert.Contains("No pending key has gone unseen for more than 30d; nothing to purge.", _out.ToString());
    }
}
