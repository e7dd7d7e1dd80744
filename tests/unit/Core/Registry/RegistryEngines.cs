using System.Security.Cryptography;
using System.Text;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>The engines every registry test runs on.</summary>
public enum TestEngine
{
    Sqlite,
    Postgres,
}

/// <summary>Opens the registry of a test's data directory on either engine.</summary>
internal static class TestRegistries
{
    /// <summary>
    /// SQLite: the file in <paramref name="dir"/>. PostgreSQL: a schema of the shared test cluster named after the
    /// directory, so that opening the same directory twice opens the same registry (as two processes on one file).
    /// </summary>
    public static SqliteRegistry Open(TestEngine engine, DataDirectory dir, TimeProvider? time = null)
        => engine == TestEngine.Sqlite ? SqliteRegistry.Open(dir, time) : SqliteRegistry.Open(dir, Source(engine, dir), time);

    /// <summary>The registry source of a data directory on <paramref name="engine"/>.</summary>
    public static RegistrySource Source(TestEngine engine, DataDirectory dir)
        => engine == TestEngine.Sqlite ? RegistrySource.Sqlite : RegistrySource.Postgres(PostgresCluster.Shared.ConnectionString(SchemaOf(dir)));

    /// <summary>A schema name derived from the directory path (lower-case hex, never raw input).</summary>
    public static string SchemaOf(DataDirectory dir)
        => "t_" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Path.GetFullPath(dir.Path))))[..20].ToLowerInvariant();
}
