using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using Npgsql;
using System.CommandLine;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>Choosing the registry by configuration, and the connection string's password staying out of sight.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class RegistrySourceTests : IDisposable
{
    private const string Secret = "s3cr3t-Pa55word";
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("sqlite")]
    [InlineData(" SQLite ")]
    public void Sqlite_IsTheDefault(string? value)
    {
        Assert.False(RegistrySource.Parse(value).IsPostgres);
        Assert.Equal("sqlite", RegistrySource.Parse(value).ToString());
    }

    [Fact]
    public void AUri_BecomesAConnectionString_AndIsShownWithoutItsPassword()
    {
        var source = RegistrySource.Parse($"postgresql://eph:{Secret}@db.example:6543/fleet?schema=hub&sslmode=verify-full");
        Assert.True(source.IsPostgres);
        Assert.Equal("postgresql://eph@db.example:6543/fleet?schema=hub", source.ToString());
        var builder = new NpgsqlConnectionStringBuilder(source.ConnectionString);
        Assert.Equal(Secret, builder.Password);
        Assert.Equal("hub", builder.SearchPath);
        Assert.Equal(SslMode.VerifyFull, builder.SslMode);
        Assert.DoesNotContain(Secret, source.ToString());
    }

    [Fact]
    public void AKeyValueConnectionString_IsAccepted_AndShownWithoutItsPassword()
    {
        var source = RegistrySource.Parse($"Host=127.0.0.1;Port=5433;Database=fleet;Username=eph;Password={Secret}");
        Assert.Equal("postgresql://eph@127.0.0.1:5433/fleet", source.ToString());
    }

    [Theory]
    [InlineData("mysql://x")]
    [InlineData("/var/lib/registry.db")]
    public void AnythingElse_IsRefused(string value)
        => Assert.Throws<ArgumentException>(() => RegistrySource.Parse(value));

    [Fact]
    public void AnInvalidConnectionString_IsRefusedWithoutQuotingIt()
    {
        var ex = Assert.Throws<ArgumentException>(() => RegistrySource.Parse($"Host=x;Password={Secret};Bogus Key=1"));
        Assert.DoesNotContain(Secret, ex.Message);
    }

    [Fact]
    public void AnOptionOrModuleSetting_MustNotHoldThePassword_ButMayNameAFileThatDoes()
    {
        var ex = Assert.Throws<ArgumentException>(() => RegistrySource.Parse($"postgresql://eph:{Secret}@db/fleet", inlinePassword: false));
        Assert.DoesNotContain(Secret, ex.Message);
        Assert.Contains("file:FILE", ex.Message);
        Assert.True(RegistrySource.Parse("postgresql://eph@db/fleet", inlinePassword: false).IsPostgres);

        var file = PrivateFile($"postgresql://eph:{Secret}@db/fleet");
        Assert.True(RegistrySource.Parse("@" + file, inlinePassword: false).IsPostgres);
        Assert.True(RegistrySource.Parse("file:" + file, inlinePassword: false).IsPostgres);
    }

    [Fact]
    public void AFileOthersCanRead_IsRefused()
    {
        var file = PrivateFile($"postgresql://eph:{Secret}@db/fleet");
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead);
        var ex = Assert.Throws<ArgumentException>(() => RegistrySource.Parse("@" + file));
        Assert.Contains("chmod 600", ex.Message);
        Assert.DoesNotContain(Secret, ex.Message);
    }

    [Fact]
    public void Resolve_OptionThenEnvironmentThenTheDataDirectorysFileThenSqlite()
    {
        Directory.CreateDirectory(_temp.Dir.Path);
        Assert.False(RegistrySource.Resolve(_temp.Dir, null, null).IsPostgres);

        RegistrySource.Record(_temp.Dir, $"postgresql://file:{Secret}@from-file/fleet");
        var recorded = Path.Combine(_temp.Dir.Path, RegistrySource.FileName);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(recorded));
        Assert.StartsWith("postgresql://file@from-file", RegistrySource.Resolve(_temp.Dir, null, null).ToString());
        Assert.StartsWith("postgresql://env@from-env", RegistrySource.Resolve(_temp.Dir, null, "postgresql://env@from-env/fleet").ToString());
        Assert.StartsWith("postgresql://opt@from-option", RegistrySource.Resolve(_temp.Dir, "postgresql://opt@from-option/fleet", "postgresql://env@from-env/fleet").ToString());
        Assert.Equal("sqlite", RegistrySource.Resolve(_temp.Dir, "sqlite", "postgresql://env@from-env/fleet").ToString());
    }

    [Fact]
    public void AWrongPassword_FailsNamingTheDatabase_NotThePassword()
    {
        var cluster = PostgresCluster.Shared;
        var source = RegistrySource.Parse($"postgresql://postgres:{Secret}@127.0.0.1:{cluster.Port}/eph_tests");
        var ex = Assert.Throws<RegistryUnavailableException>(() => SqliteRegistry.Open(_temp.Dir, source));
        Assert.Contains($"postgresql://postgres@127.0.0.1:{cluster.Port}/eph_tests", ex.Message);
        Assert.Contains("28P01", ex.Message); // invalid_password
        Assert.DoesNotContain(Secret, ex.ToString());
    }

    [Fact]
    public async Task EphServer_Registry_RefusesAnInlinePassword_AndInitRecordsAFileReference_WithoutShowingIt()
    {
        var cluster = PostgresCluster.Shared;
        var output = new StringWriter();
        var error = new StringWriter();
        var config = new InvocationConfiguration { Output = output, Error = error };

        var inline = $"postgresql://postgres:{cluster.Password}@127.0.0.1:{cluster.Port}/eph_tests";
        Assert.Equal(2, await Program.RunAsync(["init", "--data", _temp.Dir.Path, "--registry", inline], config));
        Assert.Contains("must not hold its password", error.ToString());
        Assert.DoesNotContain(cluster.Password, error.ToString());

        var schema = TestRegistries.SchemaOf(_temp.Dir);
        var file = PrivateFile(cluster.ConnectionString(schema));
        var stdout = Console.Out;
        var captured = new StringWriter();
        Console.SetOut(captured);
        try
        {
            var code = await Program.RunAsync(["init", "--data", _temp.Dir.Path, "--registry", "file:" + file], config);
            Assert.True(code == 0, $"init --registry file:FILE: {code} {error} {captured}");
        }
        finally
        {
            Console.SetOut(stdout);
        }

        var shown = captured + output.ToString() + error;
        Assert.Contains("PostgreSQL, schema version", shown);
        Assert.DoesNotContain(cluster.Password, shown);
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_temp.Dir.Path, RegistrySource.FileName)));
        Assert.False(File.Exists(_temp.Dir.RegistryFile));

        // Every later open of that data directory, with no option, goes to the same PostgreSQL schema.
        using var registry = EphConfiguration.OpenRegistryOf(_temp.Dir);
        Assert.Equal("postgresql", registry.Engine);
        Assert.DoesNotContain(cluster.Password, registry.Location);
        Assert.Contains(schema, registry.Location);
    }

    private string PrivateFile(string content)
    {
        Directory.CreateDirectory(_temp.Root);
        var file = Path.Combine(_temp.Root, "registry-" + Guid.NewGuid().ToString("N")[..8]);
        File.WriteAllText(file, content);
        File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return file;
    }
}
