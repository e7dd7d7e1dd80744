using System.CommandLine;
using System.Text.Json;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>eph-server operators add|list|remove|set-role: output, exit codes, and bad input that changes nothing.</summary>
public sealed class OperatorsVerbsTests : IDisposable
{
    private readonly TempData _temp = new();
    private readonly SqliteRegistry _r;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private OperatorPrompt _prompt = OperatorPrompt.None;

    public OperatorsVerbsTests() => _r = SqliteRegistry.Open(_temp.Dir);

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) =>
        new(RegistryStores.Of(SqliteRegistry.Open(dir)), OperatorContext.ForSurface(Surfaces.Cli));

    private async Task<int> RunAsync(params string[] args)
    {
        var root = (EphRootCommand)Program.BuildRoot(Services);
        root.Prompt = _prompt;
        return await root.Parse([.. args, "--data", _temp.Dir.Path]).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });
    }

    private List<AuditEntry> OperatorHistory() => [.. _r.QueryHistory(new HistoryQuery
    {
        Operations = [OperationNames.AddOperator, OperationNames.RemoveOperator, OperationNames.SetOperatorRole],
    })];

    [Fact]
    public async Task Add_WithKey_AddsTheOperator_SaysSo_AndRecordsTheOsUserOnTheCli()
    {
        var key = TestSshKeys.Ed25519();

        Assert.Equal(0, await RunAsync("operators", "add", "--name", "alice", "--key", key.Line, "--role", "Admin"));

        Assert.Contains($"Added operator 'alice' (admin), key {key.Fingerprint}", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(OperatorRole.Admin, _r.GetOperator("alice")!.Role);
        var entry = Assert.Single(OperatorHistory());
        Assert.Equal((Environment.UserName, "cli"), (entry.Actor, entry.Surface));
    }

    [Fact]
    public async Task Add_WithKeyFile_ReadsTheKeyLine_AndJsonIsOneObject()
    {
        var key = TestSshKeys.Ed25519();
        var file = Path.Combine(_temp.Root, "id.pub");
        Directory.CreateDirectory(_temp.Root);
        File.WriteAllText(file, "# a comment\n" + key.Line + "\n");

        Assert.Equal(0, await RunAsync("operators", "add", "--name", "bob", "--public-key-file", file, "--role", "reader", "--json"));

        using var doc = JsonDocument.Parse(_out.ToString());
        Assert.Equal(("bob", "reader", key.Fingerprint, "ssh-ed25519", false), (
            doc.RootElement.GetProperty("name").GetString(), doc.RootElement.GetProperty("role").GetString(),
            doc.RootElement.GetProperty("fingerprint").GetString(), doc.RootElement.GetProperty("key_type").GetString(),
            doc.RootElement.GetProperty("removed").GetBoolean()));
    }

    [Theory]
    [InlineData("operators", "add", "--name", "alice", "--key", "KEY", "--role", "root")]
    [InlineData("operators", "set-role", "alice", "superuser")]
    public async Task AWrongRole_IsAUsageErrorBeforeTheRegistryIsTouched(params string[] args)
    {
        var key = TestSshKeys.Ed25519();
        Assert.Equal(1, await RunAsync(args.Select(a => a == "KEY" ? key.Line : a).ToArray()));
        Assert.Contains("is not an operator role; use one of: reader, operator, admin", _err.ToString(), StringComparison.Ordinal);
        Assert.DoesNotContain("Parameter 'role'", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
    }

    [Theory]
    [InlineData("--name", "alice", "--role", "admin")]                                        // no key
    [InlineData("--name", "alice", "--key", "KEY", "--public-key-file", "/nonexistent", "--role", "admin")] // both
    [InlineData("--name", "alice", "--key", "KEY")]                                           // no role
    [InlineData("--key", "KEY", "--role", "admin")]                                           // no name
    public async Task Add_WithMissingOrConflictingOptions_IsAUsageError_AndChangesNothing(params string[] options)
    {
        var key = TestSshKeys.Ed25519();
        var args = new[] { "operators", "add" }.Concat(options.Select(o => o == "KEY" ? key.Line : o)).ToArray();

        Assert.NotEqual(0, await RunAsync(args));

        Assert.Empty(_r.ListOperators(includeRemoved: true));
    }

    [Theory]
    [InlineData("alice", "ssh-ed25519 not-base64!", "admin", "not an OpenSSH public key line")]
    [InlineData("-alice", null, "admin", "is not valid")]
    public async Task Add_WithBadInput_Exits1_SaysWhy_AndChangesNothing(string name, string? keyLine, string role, string says)
    {
        Assert.Equal(1, await RunAsync("operators", "add", "--name", name, "--key", keyLine ?? TestSshKeys.Ed25519().Line, "--role", role));

        Assert.Contains(says, _err.ToString(), StringComparison.Ordinal);
        Assert.StartsWith("eph-server operators add: ", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
        Assert.Empty(OperatorHistory());
    }

    [Fact]
    public async Task Add_AnApprovedClientsKey_IsRefused()
    {
        var key = TestSshKeys.Ed25519();
        _r.RecordPendingKey(key.Fingerprint, key.Line, Keys.Identity());
        _r.ApproveKey(key.Fingerprint, "root");

        Assert.Equal(1, await RunAsync("operators", "add", "--name", "alice", "--key", key.Line, "--role", "admin"));

        Assert.Contains("is a client key", _err.ToString(), StringComparison.Ordinal);
        Assert.Empty(_r.ListOperators(includeRemoved: true));
    }

    [Fact]
    public async Task List_ShowsActiveOperators_AllShowsRemovedOnesToo_JsonOneLineEach()
    {
        Assert.Equal(0, await RunAsync("operators", "list"));
        Assert.Contains("No operators.", _out.ToString(), StringComparison.Ordinal);

        var alice = TestSshKeys.Ed25519();
        _r.AddOperator("alice", alice.Line, OperatorRole.Admin, "root");
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");
        _r.RemoveOperator("bob", "root");
        _out.GetStringBuilder().Clear();

        Assert.Equal(0, await RunAsync("operators", "list"));
        var table = _out.ToString();
        Assert.Contains("NAME", table, StringComparison.Ordinal);
        Assert.Contains(alice.Fingerprint, table, StringComparison.Ordinal);
        Assert.DoesNotContain("bob", table, StringComparison.Ordinal);

        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await RunAsync("operators", "list", "--all", "--json"));
        var lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        var bob = JsonDocument.Parse(lines[1]).RootElement;
        Assert.Equal(("bob", true), (bob.GetProperty("name").GetString(), bob.GetProperty("removed").GetBoolean()));
        Assert.NotEqual(JsonValueKind.Null, bob.GetProperty("removed_at").ValueKind);
    }

    [Fact]
    public async Task Remove_WithoutYesAndNoOneToAsk_IsRefused_AndChangesNothing()
    {
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");

        Assert.Equal(2, await RunAsync("operators", "remove", "bob"));

        Assert.Contains("without confirmation", _err.ToString(), StringComparison.Ordinal);
        Assert.NotNull(_r.GetOperator("bob"));
    }

    [Fact]
    public async Task Remove_AnsweredNo_ChangesNothing_AnsweredYes_Removes()
    {
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");
        _prompt = new OperatorPrompt(() => true, () => "n");

        Assert.Equal(1, await RunAsync("operators", "remove", "bob"));
        Assert.NotNull(_r.GetOperator("bob"));

        _prompt = new OperatorPrompt(() => true, () => "y");
        Assert.Equal(0, await RunAsync("operators", "remove", "bob"));
        Assert.Null(_r.GetOperator("bob"));
        Assert.Contains("Removed operator 'bob'", _out.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Remove_OfTheLastAdmin_OrOfNobody_Exits1_AndChangesNothing()
    {
        _r.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");

        Assert.Equal(1, await RunAsync("operators", "remove", "alice", "--yes"));
        Assert.Contains("last active admin", _err.ToString(), StringComparison.Ordinal);
        Assert.Equal(1, await RunAsync("operators", "remove", "nobody", "--yes"));
        Assert.Contains("no active operator named 'nobody'", _err.ToString(), StringComparison.Ordinal);
        Assert.NotNull(_r.GetOperator("alice"));
    }

    [Fact]
    public async Task SetRole_ChangesTheRole_RefusesABadRole_AndTheLastAdminsDemotion()
    {
        _r.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");
        _r.AddOperator("bob", TestSshKeys.Ed25519().Line, OperatorRole.Reader, "root");

        Assert.Equal(0, await RunAsync("operators", "set-role", "bob", "operator"));
        Assert.Contains("Operator 'bob' is now operator.", _out.ToString(), StringComparison.Ordinal);
        Assert.Equal(0, await RunAsync("operators", "set-role", "bob", "operator"));
        Assert.Contains("already operator; nothing changed", _out.ToString(), StringComparison.Ordinal);

        Assert.Equal(1, await RunAsync("operators", "set-role", "bob", "superuser"));
        Assert.Equal(1, await RunAsync("operators", "set-role", "alice", "reader"));
        Assert.Equal(OperatorRole.Operator, _r.GetOperator("bob")!.Role);
        Assert.Equal(OperatorRole.Admin, _r.GetOperator("alice")!.Role);
    }

    [Fact]
    public async Task History_ShowsTheRoleAndSourceOfAnOperatorsEntries()
    {
        _r.RecordAudit(new AuditEntry { Operation = OperationNames.RunCommand, Actor = "alice", Surface = "remote", Role = "operator", Source = "192.0.2.7", Status = "succeeded" });

        Assert.Equal(0, await RunAsync("history", "--json"));

        var row = JsonDocument.Parse(_out.ToString()).RootElement;
        Assert.Equal(("operator", "192.0.2.7"), (row.GetProperty("role").GetString(), row.GetProperty("source").GetString()));
    }
}
