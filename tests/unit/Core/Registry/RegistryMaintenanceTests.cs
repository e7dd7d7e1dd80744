using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

public sealed class RegistryMaintenanceTests : IDisposable
{
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    private string File(string name)
    {
        Directory.CreateDirectory(_temp.Root);
        return Path.Combine(_temp.Root, name);
    }

    [Fact]
    public async Task Backup_WhileAnotherWriterKeepsWriting_IsConsistentOwnerOnlyAndChecked()
    {
        using var registry = SqliteRegistry.Open(_temp.Dir);
        Keys.Admit(registry, Keys.A, Keys.Identity(name: "web-01"));
        using var stop = new CancellationTokenSource();
        var writer = Task.Run(() =>
        {
            var n = 0;
            while (!stop.IsCancellationRequested && n < 2000)
            {
                registry.RecordAudit(new AuditEntry { Operation = "update_client", Actor = "w", Surface = "cli", Status = "succeeded", Detail = $"edit {n++}" });
            }
        });

        var report = RegistryMaintenance.Backup(_temp.Dir, RegistrySource.Sqlite, File("backup.db"));
        await stop.CancelAsync();
        await writer;

        Assert.True(report.Ok, string.Join("; ", report.Problems));
        Assert.Equal(1, report.Clients);
        Assert.Equal(RegistryMigrations.LatestVersion, report.SchemaVersion);
        Assert.False(System.IO.File.Exists(File("backup.db") + ".partial"));
        Assert.False(System.IO.File.Exists(File("backup.db") + "-wal"));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, System.IO.File.GetUnixFileMode(File("backup.db")));
        }

        Assert.Throws<IOException>(() => RegistryMaintenance.Backup(_temp.Dir, RegistrySource.Sqlite, File("backup.db")));
        Assert.True(RegistryMaintenance.Backup(_temp.Dir, RegistrySource.Sqlite, File("backup.db"), overwrite: true).Ok);
    }

    [Fact]
    public void Check_FindsADamagedFile_AndAFileThatIsNoRegistry()
    {
        using (var registry = SqliteRegistry.Open(_temp.Dir))
        {
            for (var i = 0; i < 50; i++)
            {
                Keys.Admit(registry, $"SHA256:{i:D43}", Keys.Identity(name: $"web-{i:D2}"));
            }
        }

        RegistryMaintenance.Backup(_temp.Dir, RegistrySource.Sqlite, File("good.db"));
        var bytes = System.IO.File.ReadAllBytes(File("good.db"));
        // Scribble over the middle pages (not the header): SQLite opens it, the check reads every page and objects.
        new Random(7).NextBytes(bytes.AsSpan(bytes.Length / 2, Math.Min(8192, bytes.Length / 4)));
        System.IO.File.WriteAllBytes(File("damaged.db"), bytes);
        System.IO.File.WriteAllText(File("text.db"), "not a database at all, just text that is long enough to have a header");

        var damaged = RegistryMaintenance.Check(File("damaged.db"));
        var text = RegistryMaintenance.Check(File("text.db"));

        Assert.True(RegistryMaintenance.Check(File("good.db")).Ok);
        Assert.False(damaged.Ok);
        Assert.NotEmpty(damaged.Problems);
        Assert.False(text.Ok);
        Assert.Contains(text.Problems, p => p.StartsWith("unreadable", StringComparison.Ordinal));
    }

    [Fact]
    public void Restore_IsRefusedWhileAHubRuns_AndForAnUnsoundFile_AndKeepsTheFileItReplaces()
    {
        using (var registry = SqliteRegistry.Open(_temp.Dir))
        {
            Keys.Admit(registry, Keys.A, Keys.Identity(name: "before-backup"));
        }

        RegistryMaintenance.Backup(_temp.Dir, RegistrySource.Sqlite, File("backup.db"));
        using (var registry = SqliteRegistry.Open(_temp.Dir))
        {
            Keys.Admit(registry, Keys.B, Keys.Identity(name: "after-backup"));
        }

        System.IO.File.WriteAllText(File("junk.db"), "junk junk junk junk junk junk junk junk junk junk junk junk junk junk");
        Assert.Throws<InvalidOperationException>(() => RegistryMaintenance.Restore(_temp.Dir, RegistrySource.Sqlite, File("junk.db"), _ => false));
        Assert.Throws<InvalidOperationException>(() => RegistryMaintenance.Restore(_temp.Dir, RegistrySource.Sqlite, File("backup.db"), _ => true));
        Assert.Empty(Directory.GetFiles(_temp.Dir.Path, "registry.db.replaced-*"));

        var report = RegistryMaintenance.Restore(_temp.Dir, RegistrySource.Sqlite, File("backup.db"), _ => false);

        Assert.True(report.Ok);
        using var restored = SqliteRegistry.Open(_temp.Dir);
        Assert.Equal(["before-backup"], restored.QueryClients(new ClientQuery()).Select(c => c.DisplayName));
        var kept = Assert.Single(Directory.GetFiles(_temp.Dir.Path, "registry.db.replaced-*"));
        Assert.Equal(2, RegistryMaintenance.Check(kept).Clients);
    }

    [Fact]
    public void OpeningADamagedRegistry_SaysWhatToDo_InsteadOfAStackTrace()
    {
        Directory.CreateDirectory(_temp.Dir.Path);
        System.IO.File.WriteAllText(_temp.Dir.RegistryFile, new string('x', 4096));

        var ex = Assert.Throws<InvalidOperationException>(() => SqliteRegistry.Open(_temp.Dir));

        Assert.Contains("damaged", ex.Message);
        Assert.Contains("eph-server check", ex.Message);
        Assert.Contains("eph-server restore", ex.Message);
    }
}
