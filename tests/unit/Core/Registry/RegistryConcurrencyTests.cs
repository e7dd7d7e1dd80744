using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// Several registry instances on one database (as several hubs on one PostgreSQL, or processes on one SQLite file)
/// admitting and assigning at once: names, tunnel ports and keys stay unique, decided by the database.
/// </summary>
public abstract class RegistryConcurrencyTests(TestEngine engine) : IDisposable
{
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task ClientsClaimingOneName_ThroughTwoInstancesAtOnce_GetDistinctNames()
    {
        using var first = TestRegistries.Open(engine, _temp.Dir);
        using var second = TestRegistries.Open(engine, _temp.Dir);
        const int Count = 12;
        var keys = Enumerable.Range(0, Count).Select(i => $"SHA256:concurrent{i:D36}").ToArray();
        foreach (var key in keys)
        {
            first.RecordPendingKey(key, "ssh-ed25519 AAAAtest", Keys.Identity(name: "web"));
            first.ApproveKey(key, "tester");
        }

        var admitted = await Task.WhenAll(keys.Select((key, i) => Task.Run(() =>
            (i % 2 == 0 ? first : second).AdmitClient(key, Keys.Identity(host: "h" + i, name: "web")))));

        var names = admitted.Select(c => c.DisplayName).ToList();
        Assert.Equal(Count, names.Distinct(StringComparer.OrdinalIgnoreCase).Count());
        Assert.Contains("web", names);
    }

    [Fact]
    public async Task TunnelPorts_AssignedThroughTwoInstancesAtOnce_AreDistinct()
    {
        using var first = TestRegistries.Open(engine, _temp.Dir);
        using var second = TestRegistries.Open(engine, _temp.Dir);
        const int Count = 16;
        var keys = Enumerable.Range(0, Count).Select(i => $"SHA256:port{i:D39}").ToArray();
        foreach (var key in keys)
        {
            first.RecordPendingKey(key, "ssh-ed25519 AAAAtest", Keys.Identity());
            first.ApproveKey(key, "tester");
        }

        var range = new TunnelPortRange(41000, 41000 + Count - 1);
        var ports = await Task.WhenAll(keys.Select((key, i) => Task.Run(() =>
            (i % 2 == 0 ? first : second).AssignTunnelPort(key, range, _ => true))));

        Assert.Equal(Count, ports.Distinct().Count());
    }

    [Fact]
    public void TheDatabaseItself_RefusesASecondLiveClientOfTheSameName()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        var a = Keys.Admit(registry, Keys.A, Keys.Identity(host: "a", name: "db"));
        Keys.Admit(registry, Keys.B, Keys.Identity(host: "b", name: "other"));
        using var c = registry.OpenConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE clients SET name_key = @k WHERE display_name = 'other'";
        cmd.Parameters.AddWithValue("@k", ClientNameKey.Of(a.DisplayName));
        Assert.ThrowsAny<System.Data.Common.DbException>(() => cmd.ExecuteNonQuery());
    }

    [Fact]
    public void TheDatabaseItself_RefusesOneTunnelPortForTwoKeys()
    {
        using var registry = TestRegistries.Open(engine, _temp.Dir);
        foreach (var key in new[] { Keys.A, Keys.B })
        {
            registry.RecordPendingKey(key, "ssh-ed25519 AAAAtest", Keys.Identity());
            registry.ApproveKey(key, "tester");
        }

        using var c = registry.OpenConnection();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE keys SET tunnel_port = 42000";
        Assert.ThrowsAny<System.Data.Common.DbException>(() => cmd.ExecuteNonQuery());
    }
}

public sealed class RegistryConcurrencyTestsOnSqlite() : RegistryConcurrencyTests(TestEngine.Sqlite);

public sealed class RegistryConcurrencyTestsOnPostgres() : RegistryConcurrencyTests(TestEngine.Postgres);
