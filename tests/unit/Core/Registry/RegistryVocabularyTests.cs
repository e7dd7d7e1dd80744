using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Microsoft.Data.Sqlite;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>The registry writes one vocabulary into the history, checks filters and tags, and counts matches.</summary>
public abstract class RegistryVocabularyTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private protected readonly TempData _temp = new();
    private protected readonly SqliteRegistry _r;

    protected RegistryVocabularyTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public void KeyDecisions_EditsAndRemovals_AreRecordedUnderTheirToolNames_WithSucceededOrUnchanged()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity("web-01"));
        _r.UpdateClient(client.Uuid, new ClientUpdate { Purpose = "front" }, "alice");
        _r.UpdateClient(client.Uuid, new ClientUpdate { Purpose = "front" }, "alice");
        _r.RevokeKey(Keys.A, "alice");
        _r.RemoveClient(client.Uuid, "alice", "cli");

        var history = _r.QueryHistory(new HistoryQuery()).Reverse().Select(e => (e.Operation, e.Status)).ToList();
        Assert.Equal(
            [("accept_key", "succeeded"), ("update_client", "succeeded"), ("update_client", "unchanged"), ("revoke_key", "succeeded"), ("remove_client", "succeeded")],
            history);
        Assert.All(history, h => Assert.Contains(h.Operation, OperationNames.Operations));
        Assert.All(history, h => Assert.Contains(h.Status, OperationNames.Statuses));
    }

    [Fact]
    public void HistoryFilters_TakeEitherSpelling_RefuseTypos_AndCountAllMatches()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity("web-01"));
        for (var i = 0; i < 3; i++)
        {
            _r.UpdateClient(client.Uuid, new ClientUpdate { Purpose = $"p{i}" }, "alice");
        }

        Assert.Equal(3, _r.QueryHistory(new HistoryQuery { Operations = ["UPDATE_CLIENT"], Statuses = ["Succeeded"] }).Count);
        Assert.Equal(3, _r.CountHistory(new HistoryQuery { Operations = ["update_client"], Take = 1, Skip = 2 }));
        Assert.Equal(0, _r.CountHistory(new HistoryQuery { Statuses = ["timed_out"] }));
        Assert.Throws<RegistryValidationException>(() => _r.QueryHistory(new HistoryQuery { Operations = ["update"] }));
        Assert.Throws<RegistryValidationException>(() => _r.CountHistory(new HistoryQuery { Statuses = ["ok"] }));
    }

    [Theory]
    [InlineData("eu west")]
    [InlineData("a;b")]
    [InlineData("a,b")]
    [InlineData("web*")]
    [InlineData("it's")]
    [InlineData("tab\there")]
    [InlineData("")]
    public void ATagWithCharactersNamesCannotHold_IsRefused(string tag)
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity("web-01", tags: ["prod"]));
        var ex = Assert.Throws<RegistryValidationException>(() => _r.UpdateClient(client.Uuid, new ClientUpdate { AddTags = [tag] }, "alice"));
        Assert.Equal("tags", ex.Field);
        Assert.Equal(["prod"], _r.GetClient(client.Uuid)!.Tags);
    }

    [Theory]
    [InlineData("eu-west")]
    [InlineData("python3.12")]
    [InlineData("team:web")]
    [InlineData("Ünïcode")]
    public void AWordTag_IsKept(string tag)
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity("web-01", tags: ["prod"]));
        Assert.Contains(tag, _r.UpdateClient(client.Uuid, new ClientUpdate { AddTags = [tag] }, "alice").Tags);
    }

    [Fact]
    public void AnAgentsBadTag_IsDropped_AndADisplayNameWithAControlCharacter_IsRefused()
    {
        var client = Keys.Admit(_r, Keys.A, Keys.Identity("web-01", tags: ["prod", "bad tag"]));
        Assert.Equal(["prod"], client.Tags);
        Assert.Throws<RegistryValidationException>(() => _r.UpdateClient(client.Uuid, new ClientUpdate { DisplayName = "web\u001b[31m" }, "alice"));
    }
}

public sealed class RegistryVocabularyTestsOnSqlite() : RegistryVocabularyTests(TestEngine.Sqlite)
{
    // What only the SQLite file has: its mode, the native library, its query plans, upgrades of older files.
    [Fact]
    public void AnOlderRegistrysHistory_IsRenamedToTheVocabulary_WhenTheRegistryIsUpgraded()
    {
        string[] old = ["command", "file.read", "file.upload", "exchange.delete", "metrics", "approve", "revoke", "remove", "webhook.resend", "update_client"];
        foreach (var operation in old)
        {
            _r.RecordAudit(new AuditEntry { Operation = operation, Actor = "alice", Surface = "cli", Status = "ok" });
        }

        // Back to the schema before the vocabulary step; opening the registry applies it again.
        using (var c = new SqliteConnection($"Data Source={_r.DatabaseFile};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DELETE FROM schema_version WHERE version >= 6";   // step 6 is the vocabulary step
            cmd.ExecuteNonQuery();
        }

        using var upgraded = TestRegistries.Open(Engine, _temp.Dir);
        var history = upgraded.ListAudit(limit: 100).Reverse().ToList();
        Assert.Equal(
            ["run_command", "read_file", "upload_file", "exchange_delete", "get_client_metrics", "accept_key", "revoke_key", "remove_client", "resend_webhook", "update_client"],
            history.Select(e => e.Operation));
        Assert.All(history, e => Assert.Equal("succeeded", e.Status));
        Assert.Equal(old.Length, upgraded.CountHistory(new HistoryQuery { Statuses = ["succeeded"] }));
    }
}

public sealed class RegistryVocabularyTestsOnPostgres() : RegistryVocabularyTests(TestEngine.Postgres);
