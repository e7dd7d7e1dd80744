using EtPhoneHome.Core.Logging;
using System.CommandLine;
using EtPhoneHome.Hub;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using Microsoft.Data.Sqlite;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// Issue 12 item 11: a registry on a real, full file system (a 2 MiB tmpfs filled by a file). Writes fail whole with a
/// fault every surface names plainly, reads go on, and writes work again once space returns.
/// </summary>
public sealed class DiskFullRegistryTests(ITestOutputHelper output)
{
    [Fact]
    public void OnAFullDisk_WritesFailWhole_ReadsGoOn_AndSpaceReturningMakesItWritableAgain()
    {
        if (!SmallDisk.Available)
        {
            output.WriteLine("not run: mounting a tmpfs needs root");
            return;
        }

        using var disk = SmallDisk.Mount();
        using var r = SqliteRegistry.Open(disk.Data);
        r.RecordPendingKey(Keys.A, null, Keys.Identity(host: "web-01", name: "web-01"));
        r.ApproveKey(Keys.A, "test");
        var client = r.AdmitClient(Keys.A, Keys.Identity(host: "web-01", name: "web-01"));
        var session = r.OpenSession(client.Uuid, Keys.A, "localhost", 40000, new byte[32], null, null);
        r.MarkSessionOnline(session.Id);
        var events = r.ListEvents().Count;
        var keys = r.ListKeys().Count;

        disk.Fill();

        var touch = Assert.ThrowsAny<SqliteException>(() => r.TouchSession(session.Id));
        Assert.Equal("disk full", RegistryFaults.Unwritable(touch));
        var describe = RegistryFaults.Describe(touch, disk.Data.Path);
        Assert.StartsWith($"registry: disk full at {disk.Data.Path} (", describe, StringComparison.Ordinal);
        Assert.Matches(@"\(\d+ MiB free\)$", describe);
        output.WriteLine(describe);

        // Transactions that write several rows (a key and its audit and event; a health mark, its event and the session
        // close) fail whole: nothing of them is left.
        Assert.True(RegistryFaults.IsUnwritable(Record.Exception(() => r.RecordPendingKey(Keys.B, null, Keys.Identity(host: "new-01")))));
        Assert.True(RegistryFaults.IsUnwritable(Record.Exception(() => r.MarkUnhealthy(client.Uuid, session.Id, "no answer", 3))));
        Assert.True(RegistryFaults.IsUnwritable(Record.Exception(() => r.RevokeKey(Keys.A, "test"))));

        // Reads go on.
        Assert.Equal("web-01", r.GetClient(client.Uuid)!.DisplayName);
        Assert.Equal(events, r.ListEvents().Count);
        Assert.Equal(keys, r.ListKeys().Count);
        Assert.Null(r.GetKey(Keys.B));
        Assert.Null(r.GetSession(session.Id)!.ClosedAt);
        Assert.Equal(KeyStatus.Approved, r.GetKey(Keys.A)!.Status);
        Assert.Empty(r.ListHealth());

        disk.Free();
        r.TouchSession(session.Id);
        r.RecordPendingKey(Keys.B, null, Keys.Identity(host: "new-01"));
        Assert.Equal(KeyStatus.Pending, r.GetKey(Keys.B)!.Status);
        Assert.True(RegistryMaintenance.Check(r.DatabaseFile).Ok);
    }

    [Fact]
    public async Task AVerbThatMustWriteTheRegistry_OnAFullDisk_SaysSoInOneLine()
    {
        if (!SmallDisk.Available)
        {
            output.WriteLine("not run: mounting a tmpfs needs root");
            return;
        }

        using var disk = SmallDisk.Mount();
        using (var r = SqliteRegistry.Open(disk.Data))
        {
            r.RecordPendingKey(Keys.B, null, Keys.Identity(host: "new-01"));
        }

        disk.Fill();
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = await Program.RunAsync(["approve", "--data", disk.Data.Path, Keys.B], new InvocationConfiguration { Output = stdout, Error = stderr });

        output.WriteLine(stdout.ToString() + stderr);
        Assert.Equal(1, code);
        var line = Assert.Single(stderr.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"eph-server approve: registry: disk full at {disk.Data.Path} (", line, StringComparison.Ordinal);
        Assert.Contains("nothing was changed", line, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr.ToString(), StringComparison.Ordinal);

        disk.Free();
        using var again = SqliteRegistry.Open(disk.Data);
        Assert.Equal(KeyStatus.Pending, again.GetKey(Keys.B)!.Status);
    }
}

public sealed class RegistryWriteWatchTests
{
    private static SqliteException Full() => new("SQLite Error 13: 'database or disk is full'.", 13);

    [Fact]
    public void AFullDisk_IsSaidOnce_ThenAtMostEveryTenMinutes_AndWritableAgainOnce()
    {
        var lines = new List<string>();
        var time = new ManualTime(DateTimeOffset.UtcNow);
        var watch = new RegistryWriteWatch("/srv/eph", new DelegateLog(e => lines.Add(e.Message)), time);

        for (var i = 0; i < 1000; i++)
        {
            Assert.True(watch.Failed(Full()));
            time.Advance(TimeSpan.FromMilliseconds(500));
        }

        var first = Assert.Single(lines);
        Assert.StartsWith("registry: disk full at /srv/eph (", first, StringComparison.Ordinal);
        Assert.Contains("heartbeats and events are not being recorded; sessions are kept", first, StringComparison.Ordinal);
        Assert.True(watch.Unwritable);

        time.Advance(RegistryWriteWatch.RepeatEvery);
        watch.Failed(Full());
        Assert.Equal(2, lines.Count);
        Assert.Contains("1001 write(s) lost so far", lines[1], StringComparison.Ordinal);

        watch.Succeeded();
        watch.Succeeded();
        Assert.Equal(3, lines.Count);
        Assert.StartsWith("registry: writable again at /srv/eph", lines[2], StringComparison.Ordinal);
        Assert.False(watch.Unwritable);
    }

    [Fact]
    public void AFullDisk_IsAnErrorOfTheHub_AndWritableAgainIsInformation()
    {
        var entries = new List<EphLogEntry>();
        var watch = new RegistryWriteWatch("/srv/eph", new DelegateLog(entries.Add));

        watch.Failed(Full());
        watch.Succeeded();

        Assert.Equal([(EphLogLevel.Error, "eph-hub"), (EphLogLevel.Information, "eph-hub")], entries.Select(e => (e.Level, e.Source)));
    }

    [Fact]
    public void OtherFaults_AreNotTakenForAFullDisk()
    {
        var lines = new List<string>();
        var watch = new RegistryWriteWatch("/srv/eph", new DelegateLog(e => lines.Add(e.Message)));
        Assert.False(watch.Failed(new SqliteException("SQLite Error 5: 'database is locked'.", 5)));
        Assert.False(watch.Failed(new InvalidOperationException("x")));
        Assert.True(watch.Failed(new InvalidOperationException("wrapped", new SqliteException("disk I/O error", 10))));
        Assert.Contains("I/O error writing at /srv/eph", Assert.Single(lines), StringComparison.Ordinal);
    }
}
