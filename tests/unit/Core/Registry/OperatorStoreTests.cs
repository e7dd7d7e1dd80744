using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>Test SSH public keys: real OpenSSH wire blobs (random ed25519 points are as good as real ones to the registry).</summary>
internal static class TestSshKeys
{
    /// <summary>A fresh "ssh-ed25519 BASE64 comment" line and its fingerprint.</summary>
    public static (string Line, string Blob, string Fingerprint) Ed25519(string comment = "someone@laptop")
    {
        var type = Encoding.ASCII.GetBytes("ssh-ed25519");
        var blob = new byte[4 + type.Length + 4 + 32];
        BinaryPrimitives.WriteUInt32BigEndian(blob, (uint)type.Length);
        type.CopyTo(blob, 4);
        BinaryPrimitives.WriteUInt32BigEndian(blob.AsSpan(4 + type.Length), 32);
        RandomNumberGenerator.Fill(blob.AsSpan(8 + type.Length));
        var base64 = Convert.ToBase64String(blob);
        return ($"ssh-ed25519 {base64} {comment}", base64, SshKeyFingerprint.FromBase64Blob(base64)!);
    }
}

/// <summary>
/// Operators: SSH keys with a name and a role. Added, listed, removed (a tombstone the hub must still find), re-added,
/// promoted and demoted, never leaving the fleet without an admin once it has one; an operator key is never a client key.
/// </summary>
public abstract class OperatorStoreTests : IDisposable
{
    /// <summary>The engine this run of the tests uses.</summary>
    protected TestEngine Engine { get; }

    private readonly TempData _temp = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 3, 1, 9, 0, 0, TimeSpan.Zero));
    private readonly SqliteRegistry _r;

    protected OperatorStoreTests(TestEngine engine)
    {
        Engine = engine;
        _r = TestRegistries.Open(Engine, _temp.Dir, _time);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private List<AuditEntry> OperatorHistory() => [.. _r.QueryHistory(new HistoryQuery
    {
        Operations = [OperationNames.AddOperator, OperationNames.RemoveOperator, OperationNames.SetOperatorRole],
    })];

    [Fact]
    public void AnEmptyRegistry_HasNoOperators()
    {
        Assert.Empty(_r.ListOperators(includeRemoved: true));
        Assert.Null(_r.GetOperator("alice"));
    }

    [Fact]
    public void Add_StoresTheKeyFingerprintedAsSshdDoes_AndRecordsWhoAddedIt()
    {
        var key = TestSshKeys.Ed25519();

        var added = _r.AddOperator("alice", key.Line, OperatorRole.Admin, "root", Surfaces.Cli);

        Assert.Equal(("alice", key.Fingerprint, "ssh-ed25519", key.Blob, OperatorRole.Admin, "root", false),
            (added.Name, added.Fingerprint, added.KeyType, added.PublicKey, added.Role, added.AddedBy, added.Removed));
        Assert.Equal(_time.GetUtcNow(), added.AddedAt);
        Assert.Equal(added, _r.GetOperator("ALICE"));
        Assert.Equal(added, _r.GetOperator(key.Fingerprint));
        Assert.Equal(added, _r.FindOperatorKey(key.Fingerprint));
        Assert.Equal([added], _r.ListOperators());
        var entry = Assert.Single(OperatorHistory());
        Assert.Equal((OperationNames.AddOperator, "root", "cli", "succeeded"), (entry.Operation, entry.Actor, entry.Surface, entry.Status));
        Assert.Contains("alice", entry.Detail, StringComparison.Ordinal);
        Assert.Contains(key.Fingerprint, entry.Detail, StringComparison.Ordinal);
        Assert.Contains("admin", entry.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("-alice")]
    [InlineData(".alice")]
    [InlineData("al ice")]
    [InlineData("al\u001b[2Jice")]
    [InlineData("ålice")]
    [InlineData("a/b")]
    [InlineData("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")] // 65
    public void Add_WithABadName_IsRefused_AndChangesNothing(string name)
    {
        var ex = Assert.Throws<RegistryValidationException>(() => _r.AddOperator(name, TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root"));

        Assert.Equal("name", ex.Field);
        Assert.DoesNotContain('\u001b', ex.Message);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
        Assert.Empty(OperatorHistory());
    }

    [Fact]
    public void Add_AcceptsTheLongestAndOddestValidName()
    {
        var name = "a" + new string('.', 20) + new string('_', 20) + new string('-', 22); // 64
        Assert.Equal(name, _r.AddOperator(name, TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root").Name);
    }

    [Theory]
    [InlineData("")]
    [InlineData("ssh-ed25519")]
    [InlineData("ssh-ed25519 not*base64")]
    [InlineData("AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")]
    [InlineData("command=\"x\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")]
    [InlineData("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl")] // the blob says ed25519
    [InlineData("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl x\nssh-ed25519 AAAA")]
    public void Add_WithABadKeyLine_IsRefused_AndChangesNothing(string line)
    {
        var ex = Assert.Throws<RegistryValidationException>(() => _r.AddOperator("alice", line, OperatorRole.Reader, "root"));

        Assert.Equal("key", ex.Field);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
        Assert.Empty(OperatorHistory());
    }

    [Fact]
    public void Add_AKeyLineWithoutComment_OrWithSpaces_IsAccepted()
    {
        var key = TestSshKeys.Ed25519();
        Assert.Equal(key.Fingerprint, _r.AddOperator("a", $"  ssh-ed25519   {key.Blob}  ", OperatorRole.Reader, "root").Fingerprint);
    }

    [Fact]
    public void Add_ATakenName_AnyCase_IsRefused()
    {
        _r.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");

        var ex = Assert.Throws<RegistryValidationException>(() => _r.AddOperator("Alice", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root"));

        Assert.Contains("taken", ex.Message, StringComparison.Ordinal);
        Assert.Single(_r.ListOperators(includeRemoved: true));
    }

    [Fact]
    public void Add_AnActiveOperatorsKey_UnderAnotherName_IsRefused()
    {
        var key = TestSshKeys.Ed25519();
        _r.AddOperator("alice", key.Line, OperatorRole.Admin, "root");

        var ex = Assert.Throws<RegistryValidationException>(() => _r.AddOperator("bob", key.Line, OperatorRole.Reader, "root"));

        Assert.Contains("already the key of operator 'alice'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(["alice"], _r.ListOperators(includeRemoved: true).Select(o => o.Name));
    }

    [Fact]
    public void Add_AKeyThatWaitsAsPending_TakesItOutOfThePendingList()
    {
        // An operator who tried to connect before being added: the key was recorded as any unknown key is.
        var key = TestSshKeys.Ed25519();
        _r.RecordPendingKey(key.Fingerprint, key.Line, Keys.Identity());

        var added = _r.AddOperator("alice", key.Line, OperatorRole.Operator, "root");

        Assert.Equal(key.Fingerprint, added.Fingerprint);
        Assert.Null(_r.GetKey(key.Fingerprint));
        Assert.Empty(_r.ListKeys(KeyStatus.Pending));
    }

    [Theory]
    [InlineData(KeyStatus.Approved)]
    [InlineData(KeyStatus.Revoked)]
    public void Add_AClientsKey_ApprovedOrRevoked_IsRefused(KeyStatus status)
    {
        var key = TestSshKeys.Ed25519();
        _r.RecordPendingKey(key.Fingerprint, key.Line, Keys.Identity());
        if (status == KeyStatus.Approved)
        {
            _r.ApproveKey(key.Fingerprint, "root");
        }
        else if (status == KeyStatus.Revoked)
        {
            _r.RevokeKey(key.Fingerprint, "root");
        }

        var ex = Assert.Throws<RegistryValidationException>(() => _r.AddOperator("alice", key.Line, OperatorRole.Admin, "root"));

        Assert.Contains("is a client key", ex.Message, StringComparison.Ordinal);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
        Assert.Equal(status, _r.GetKey(key.Fingerprint)!.Status);
    }

    [Fact]
    public void ApprovingAnOperatorsKey_IsRefused_EvenWhenTheKeysTableHoldsIt()
    {
        var key = TestSshKeys.Ed25519();
        _r.AddOperator("alice", key.Line, OperatorRole.Admin, "root");
        // Not reachable through the hub (it answers an operator key as an operator); recorded directly here.
        _r.RecordPendingKey(key.Fingerprint, key.Line, Keys.Identity());

        var ex = Assert.Throws<KeyDecisionException>(() => KeyAdministration.Approve(_r, key.Fingerprint, new OperatorContext("root", Surfaces.Cli)));

        Assert.Contains("operator 'alice'", ex.Message, StringComparison.Ordinal);
        Assert.Equal(KeyStatus.Pending, _r.GetKey(key.Fingerprint)!.Status);
        Assert.Empty(_r.QueryHistory(new HistoryQuery { Operations = [OperationNames.AcceptKey] }));
    }

    [Fact]
    public void ApprovingARemovedOperatorsKey_IsRefused_Too()
    {
        var key = TestSshKeys.Ed25519();
        _r.AddOperator("alice", key.Line, OperatorRole.Reader, "root");
        _r.RemoveOperator("alice", "root");

        Assert.Throws<KeyDecisionException>(() => _r.ApproveKey(key.Fingerprint, "root"));
    }

    [Fact]
    public void Remove_LeavesATombstone_TheHubStillFinds_AndRecordsWhoRemovedIt()
    {
        var key = TestSshKeys.Ed25519();
        _r.AddOperator("admin", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");
        _r.AddOperator("bob", key.Line, OperatorRole.Operator, "root");
        _time.Advance(TimeSpan.FromMinutes(5));

        var removed = _r.RemoveOperator("BOB", "admin", Surfaces.PowerShell);

        Assert.True(removed.Removed);
        Assert.Equal(_time.GetUtcNow(), removed.RemovedAt);
        Assert.Null(_r.GetOperator("bob"));
        Assert.Null(_r.GetOperator(key.Fingerprint));
        Assert.Equal(["admin"], _r.ListOperators().Select(o => o.Name));
        Assert.Equal(["admin", "bob"], _r.ListOperators(includeRemoved: true).Select(o => o.Name));
        Assert.True(_r.FindOperatorKey(key.Fingerprint)!.Removed);
        var entry = OperatorHistory().First();
        Assert.Equal((OperationNames.RemoveOperator, "admin", "pwsh", "succeeded"), (entry.Operation, entry.Actor, entry.Surface, entry.Status));
        Assert.Contains(key.Fingerprint, entry.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Remove_OfNoActiveOperator_IsNotFound_AndRecordsNothing()
    {
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");
        _r.RemoveOperator("bob", "root");
        var before = OperatorHistory().Count;

        Assert.Throws<RegistryNotFoundException>(() => _r.RemoveOperator("bob", "root"));
        Assert.Throws<RegistryNotFoundException>(() => _r.RemoveOperator("carol", "root"));
        Assert.Equal(before, OperatorHistory().Count);
    }

    [Fact]
    public void ARemovedOperatorsName_IsFreeAgain_AndItsKeyAddedAgain_ReactivatesTheSameRow()
    {
        var key = TestSshKeys.Ed25519();
        _r.AddOperator("bob", key.Line, OperatorRole.Reader, "root");
        _r.RemoveOperator("bob", "root");
        _time.Advance(TimeSpan.FromHours(1));

        var back = _r.AddOperator("robert", key.Line, OperatorRole.Operator, "alice");

        Assert.Equal(("robert", OperatorRole.Operator, "alice", false, (DateTimeOffset?)null), (back.Name, back.Role, back.AddedBy, back.Removed, back.RemovedAt));
        Assert.Equal(_time.GetUtcNow(), back.AddedAt);
        Assert.Single(_r.ListOperators(includeRemoved: true));
        Assert.Contains("reactivated", OperatorHistory().First().Detail, StringComparison.Ordinal);

        // and the old name is free for someone else
        _r.RemoveOperator("robert", "root");
        Assert.Equal("bob", _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root").Name);
    }

    [Fact]
    public void SetRole_ChangesTheRole_AndRecordsTheChange_SameRoleIsUnchanged()
    {
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");

        Assert.Equal(OperatorRole.Operator, _r.SetOperatorRole("bob", OperatorRole.Operator, "alice").Role);
        Assert.Equal(OperatorRole.Operator, _r.GetOperator("bob")!.Role);
        Assert.Equal(OperatorRole.Operator, _r.SetOperatorRole("bob", OperatorRole.Operator, "alice").Role);

        var entries = OperatorHistory();
        Assert.Equal(["unchanged", "succeeded"], entries.Take(2).Select(e => e.Status));
        Assert.Contains("reader → operator", entries[1].Detail, StringComparison.Ordinal);
        Assert.Throws<RegistryNotFoundException>(() => _r.SetOperatorRole("nobody", OperatorRole.Admin, "alice"));
    }

    [Fact]
    public void TheLastActiveAdmin_CanBeNeitherRemovedNorDemoted_UntilThereIsAnother()
    {
        _r.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Operator, "root");

        var remove = Assert.Throws<RegistryValidationException>(() => _r.RemoveOperator("alice", "root"));
        var demote = Assert.Throws<RegistryValidationException>(() => _r.SetOperatorRole("alice", OperatorRole.Reader, "root"));

        Assert.Contains("last active admin", remove.Message, StringComparison.Ordinal);
        Assert.Contains("last active admin", demote.Message, StringComparison.Ordinal);
        Assert.Equal(OperatorRole.Admin, _r.GetOperator("alice")!.Role);
        Assert.Equal(2, OperatorHistory().Count);

        _r.SetOperatorRole("bob", OperatorRole.Admin, "alice");
        _r.SetOperatorRole("alice", OperatorRole.Reader, "bob");
        Assert.Throws<RegistryValidationException>(() => _r.RemoveOperator("bob", "root"));
        _r.RemoveOperator("alice", "bob");
        Assert.Equal(["bob"], _r.ListOperators().Select(o => o.Name));
    }

    [Theory]
    [InlineData("reader", OperatorRole.Reader)]
    [InlineData("Operator", OperatorRole.Operator)]
    [InlineData(" ADMIN ", OperatorRole.Admin)]
    public void Roles_ParseInAnyCase(string text, OperatorRole role)
    {
        Assert.Equal(role, OperatorRoles.Parse(text));
        Assert.Equal(text.Trim().ToLowerInvariant(), OperatorRoles.Wire(role));
    }

    [Theory]
    [InlineData("root")]
    [InlineData("")]
    [InlineData(null)]
    [InlineData("2")]
    public void Roles_OtherWords_AreRefused_NamingTheRoles(string? text)
    {
        var ex = Assert.Throws<RegistryValidationException>(() => OperatorRoles.Parse(text));
        Assert.Contains("reader, operator, admin", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void History_RecordsTheActingOperatorsRoleAndSource_FromTheOperatorContext()
    {
        var key = Keys.Admit(_r, Keys.A, Keys.Identity());
        var guard = new OperationGuard(_r, new OperatorContext("alice", "remote") { Role = "operator", Source = "192.0.2.7" });

        using (var lease = guard.Begin(key.Uuid, OperationNames.RunCommand, "uptime"))
        {
            lease.Complete(OperationStatus.Succeeded);
        }

        using (var local = new OperationGuard(_r, new OperatorContext("root", Surfaces.Cli)).Begin(key.Uuid, OperationNames.RunCommand, "id"))
        {
            local.Complete(OperationStatus.Succeeded);
        }

        var entries = _r.QueryHistory(new HistoryQuery { Operations = [OperationNames.RunCommand] });
        Assert.Equal(("root", null, null), (entries[0].Actor, entries[0].Role, entries[0].Source));
        Assert.Equal(("alice", "operator", "192.0.2.7"), (entries[1].Actor, entries[1].Role, entries[1].Source));
    }
}

public sealed class OperatorStoreTestsOnSqlite() : OperatorStoreTests(TestEngine.Sqlite);

public sealed class OperatorStoreTestsOnPostgres() : OperatorStoreTests(TestEngine.Postgres);
