using System.CommandLine;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Operations;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>eph-server verbs over display names that are unique after normalisation.</summary>
public sealed class ClientNameVerbsTests : IDisposable
{
    // The parts this test gives the verbs, through their composition root (Program.BuildRoot), not process-wide statics.
    private Func<EtPhoneHome.Core.DataDirectory, RegistryStores> _openRegistry = null!;
    private Func<OperationGuard, ICommandTransport> _createTransport = null!;

    private EtPhoneHome.Core.Services.OperatorServices Services(EtPhoneHome.Core.DataDirectory dir) => new(_openRegistry(dir), OperatorContext.ForSurface(Surfaces.Cli)) { CommandTransport = g => _createTransport(g) };

    private readonly TempData _temp = new();
    private readonly SqliteRegistry _r;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private readonly ClientRecord _web;
    private readonly ClientRecord _web2;
    private readonly ClientRecord _db;

    public ClientNameVerbsTests()
    {
        _r = SqliteRegistry.Open(_temp.Dir);
        _openRegistry = _ => RegistryStores.Of(SqliteRegistry.Open(_temp.Dir));
        _createTransport = _ => new FakeTransport();
        _web = Keys.Admit(_r, Keys.A, Keys.Identity(name: "web-01"));
        _web2 = Keys.Admit(_r, Keys.B, Keys.Identity(name: "WEB-01", host: "other"));
        _db = Keys.Admit(_r, Keys.C, Keys.Identity(name: "db-01", host: "db"));
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private async Task<int> RunAsync(params string[] args) =>
        await NoPrompt(Program.BuildRoot(Services)).Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    // No person to answer a confirmation: remove needs --yes.
    private static System.CommandLine.RootCommand NoPrompt(System.CommandLine.RootCommand root)
    {
        ((EphRootCommand)root).Prompt = OperatorPrompt.None;
        return root;
    }

    [Fact]
    public async Task Exec_ByName_NeverFansOutToASecondClientClaimingTheSameName()
    {
        Assert.Equal("WEB-01 (2)", _web2.DisplayName);

        await RunAsync("exec", "--client", "web-01", "--json", "--", "id");

        var line = Assert.Single(_out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains(_web.Uuid, line);
    }

    [Fact]
    public async Task Set_ALookAlikeName_FindsTheOneClient()
    {
        Assert.Equal(0, await RunAsync("set", "\uff37\uff25\uff22-01", "--purpose", "front"));

        Assert.Equal("front", _r.GetClient(_web.Uuid)!.Purpose);
        Assert.NotEqual("front", _r.GetClient(_web2.Uuid)!.Purpose);
    }

    [Fact]
    public async Task Set_ANameTakenAfterNormalisation_IsRefused_NamingTheClientThatHasIt()
    {
        Assert.Equal(1, await RunAsync("set", "db-01", "--display-name", "\uff57\uff45\uff42-01"));

        Assert.Contains("taken", _err.ToString());
        Assert.Contains(_web.Uuid, _err.ToString());
        Assert.DoesNotContain("   at ", _err.ToString());
        Assert.Equal("db-01", _r.GetClient(_db.Uuid)!.DisplayName);
    }
}
