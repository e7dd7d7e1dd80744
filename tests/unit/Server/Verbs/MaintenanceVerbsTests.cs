using System.CommandLine;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

public sealed class MaintenanceVerbsTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public MaintenanceVerbsTests()
    {
        using var registry = SqliteRegistry.Open(_data.Dir);
        Keys.Admit(registry, Keys.A, Keys.Identity(name: "web-01"));
    }

    public void Dispose() => _data.Dispose();

    private string Root(string name) => Path.Combine(_data.Root, name);

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot().Parse([.. args, "--data", _data.Dir.Path]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    [Fact]
    public async Task BackupCheckRestore_FromTheCommandLine()
    {
        Assert.Equal(0, await RunAsync("backup", "--to", Root("b.db")));
        Assert.Contains("ok", _out.ToString());
        Assert.Equal(0, await RunAsync("check"));
        Assert.Equal(0, await RunAsync("check", "--file", Root("b.db"), "--json"));
        Assert.Contains("\"ok\":true", _out.ToString());

        // Without --yes: checked and described, nothing replaced.
        Assert.Equal(0, await RunAsync("restore", "--from", Root("b.db")));
        Assert.Contains("would replace", _out.ToString());
        Assert.Empty(Directory.GetFiles(_data.Dir.Path, "registry.db.replaced-*"));

        // A running hub (it holds hub.lock) refuses the restore.
        using (new FileStream(_data.Dir.HubLockFile, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            Assert.Equal(1, await RunAsync("restore", "--from", Root("b.db"), "--yes"));
            Assert.Contains("a hub is running", _err.ToString());
        }

        Assert.Equal(0, await RunAsync("restore", "--from", Root("b.db"), "--yes"));
        Assert.Single(Directory.GetFiles(_data.Dir.Path, "registry.db.replaced-*"));
    }

    [Fact]
    public async Task CheckOfAFileThatIsNoRegistry_ExitsOne_WithoutAStackTrace()
    {
        File.WriteAllText(Root("junk.db"), new string('j', 5000));

        Assert.Equal(1, await RunAsync("check", "--file", Root("junk.db")));
        Assert.Contains("DAMAGED", _out.ToString());
        Assert.DoesNotContain("   at ", _out.ToString() + _err.ToString());
    }

    [Fact]
    public async Task OnAPostgresRegistry_BackupAndRestoreRefuseNamingPgDump_AndCheckReadsTheDatabase()
    {
        // A data directory moved to PostgreSQL keeps its old registry.db: copying that file would look like a backup
        // and hold nothing current.
        var cluster = PostgresCluster.Shared;
        using (var registry = TestRegistries.Open(TestEngine.Postgres, _data.Dir))
        {
            Keys.Admit(registry, Keys.A, Keys.Identity(name: "pg-01"));
            Keys.Admit(registry, Keys.B, Keys.Identity(name: "pg-02"));
        }

        RegistryMaintenance.Backup(_data.Dir, RegistrySource.Sqlite, Root("sqlite.db"));
        RegistrySource.Record(_data.Dir, cluster.ConnectionString(TestRegistries.SchemaOf(_data.Dir)));
        var staleBefore = File.ReadAllBytes(_data.Dir.RegistryFile);

        Assert.Equal(1, await RunAsync("backup", "--to", Root("pg.db")));
        Assert.Contains("PostgreSQL", _err.ToString());
        Assert.Contains("pg_dump", _err.ToString());
        Assert.False(File.Exists(Root("pg.db")));

        foreach (var yes in new[] { false, true })
        {
            Assert.Equal(1, await RunAsync(yes ? ["restore", "--from", Root("sqlite.db"), "--yes"] : ["restore", "--from", Root("sqlite.db")]));
        }

        Assert.Contains("pg_restore", _err.ToString());
        Assert.Equal(staleBefore, File.ReadAllBytes(_data.Dir.RegistryFile));
        Assert.Empty(Directory.GetFiles(_data.Dir.Path, "registry.db.replaced-*"));

        Assert.Equal(0, await RunAsync("check", "--json"));
        var json = _out.ToString();
        Assert.Contains("\"ok\":true", json);
        Assert.Contains("\"clients\":2", json);
        Assert.Contains(TestRegistries.SchemaOf(_data.Dir), json);
        Assert.DoesNotContain(cluster.Password, json + _err);
    }

    [Fact]
    public async Task OnAPostgresRegistry_TheOperatorVerbsOpenIt_WithoutAnSqliteFileInTheDataDirectory()
    {
        // A hub host set up for PostgreSQL from the start (init --registry) has registry.conf and no registry.db: the
        // operator verbs (keys, clients, exec) must open the database it names, as the hub does.
        using var fresh = new TempData();
        Directory.CreateDirectory(fresh.Dir.Path);
        using (var registry = TestRegistries.Open(TestEngine.Postgres, fresh.Dir))
        {
            Keys.Admit(registry, Keys.A, Keys.Identity(name: "pg-only-01"));
        }

        RegistrySource.Record(fresh.Dir, PostgresCluster.Shared.ConnectionString(TestRegistries.SchemaOf(fresh.Dir)));
        Assert.False(File.Exists(fresh.Dir.RegistryFile));

        var code = await Program.BuildRoot().Parse(["clients", "--json", "--data", fresh.Dir.Path])
            .InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

        Assert.True(code == 0, _err.ToString());
        Assert.Contains("pg-only-01", _out.ToString());
        Assert.False(File.Exists(fresh.Dir.RegistryFile));

        // A data directory with neither is still refused, naming init.
        using var empty = new TempData();
        Directory.CreateDirectory(empty.Dir.Path);
        Assert.Equal(1, await Program.BuildRoot().Parse(["keys", "--data", empty.Dir.Path]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err }));
        Assert.Contains("no registry in", _err.ToString());
    }

    [Fact]
    public void CheckOfAPostgresRegistry_NotThere_OrUnreachable_SaysWhy_WithoutThePassword()
    {
        var cluster = PostgresCluster.Shared;
        var never = RegistryMaintenance.Check(RegistrySource.Postgres(cluster.ConnectionString("t_never_opened_" + Guid.NewGuid().ToString("N")[..8])));
        Assert.False(never.Ok);
        Assert.Contains(never.Problems, p => p.Contains("not a registry", StringComparison.Ordinal));

        const string password = "no-such-secret-7f3a";
        var unreachable = RegistryMaintenance.Check(RegistrySource.Postgres($"Host=127.0.0.1;Port=1;Database=x;Username=u;Password={password};Timeout=3"));
        Assert.False(unreachable.Ok);
        Assert.Contains(unreachable.Problems, p => p.StartsWith("unreadable: ", StringComparison.Ordinal));
        Assert.DoesNotContain(password, string.Join(" ", unreachable.Problems) + unreachable.File);
    }
}
