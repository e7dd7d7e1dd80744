using System.Net.Sockets;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Hub;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// A search answered by the running hub over its socket (what a local `eph-server clients` asks first): the same clients
/// and unmatched names as a search of the registry; only a process of the hub's own user is answered.
/// </summary>
public sealed class HubClientSearchTests : IAsyncLifetime
{
    private readonly TempData _temp = new();
    private SqliteRegistry _registry = null!;
    private HubServer _hub = null!;

    public async Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
        Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01"));
        Keys.Admit(_registry, Keys.B, Keys.Identity(name: "db-01", host: "db-host"));
        _hub = new HubServer(_registry, new HubOptions { DataDirectory = _temp.Dir, GatePath = "/opt/eph/eph-gate", Log = NullLog.Instance });
        await _hub.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _registry.Dispose();
        _temp.Dispose();
    }

    [Fact]
    public async Task TheRunningHub_AnswersASearch_AsTheRegistryWould()
    {
        var query = new ClientQuery { Names = ["web-*", "nothing-here"] };

        var answered = await HubClientSearch.TryAsync(_temp.Dir, query, TimeSpan.FromSeconds(10));

        Assert.NotNull(answered);
        var direct = ClientQueries.Search(_registry, query);
        Assert.Equal(direct.Clients.Select(c => (c.Uuid, c.DisplayName, c.Hostname)), answered.Clients.Select(c => (c.Uuid, c.DisplayName, c.Hostname)));
        Assert.Equal(["nothing-here"], answered.NotFound);
        Assert.Equal(["web-01"], answered.Clients.Select(c => c.DisplayName));
    }

    [Fact]
    public async Task EphServerClients_OnTheServerHost_AsksTheRunningHub()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();

        var exit = await EtPhoneHome.Server.Program.BuildRoot().Parse(["clients", "--data", _temp.Dir.Path, "--name", "db-*"])
            .InvokeAsync(new System.CommandLine.InvocationConfiguration { Output = output, Error = error });

        Assert.Equal(0, exit);
        Assert.Contains("db-01", output.ToString());
        Assert.DoesNotContain("web-01", output.ToString());
        Assert.Equal(1, _hub.ClientSearchesServed);
    }

    [Fact]
    public async Task EphServerClients_NamingARegistryOfItsOwn_DoesNotAskTheHub()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        try
        {
            var exit = await EtPhoneHome.Server.Program.RunAsync(["clients", "--data", _temp.Dir.Path, "--registry", "sqlite", "--name", "db-*"],
                new System.CommandLine.InvocationConfiguration { Output = output, Error = error });

            Assert.Equal(0, exit);
            Assert.Contains("db-01", output.ToString());
            Assert.Equal(0, _hub.ClientSearchesServed);
        }
        finally
        {
            EtPhoneHome.Core.Operations.EphConfiguration.Registry = null;
        }
    }

    [Fact]
    public async Task ALargeAnswer_ComesInPages_AndArrivesWhole()
    {
        for (var i = 0; i < HubClientSearch.PageSize + 20; i++)
        {
            Keys.Admit(_registry, $"SHA256:page{i:D39}", Keys.Identity(name: $"bulk-{i:D4}", host: $"bulk-{i:D4}"));
        }

        var answered = await HubClientSearch.TryAsync(_temp.Dir, new ClientQuery { Names = ["bulk-*"] }, TimeSpan.FromSeconds(30));

        Assert.NotNull(answered);
        Assert.Equal(HubClientSearch.PageSize + 20, answered.Clients.Count);
        Assert.Equal(answered.Clients.Count, answered.Clients.Select(c => c.Uuid).Distinct().Count());
    }

    [Fact]
    public async Task ACallerOfAnotherUser_IsClosedOnWithoutAnAnswer_AndNothingIsSearched()
    {
        var (client, server) = await UnixSocketPair.ConnectAsync(Path.Combine(_temp.Root, "pair"));
        using var clientStream = new NetworkStream(client, ownsSocket: true);
        using var serverStream = new NetworkStream(server, ownsSocket: true);
        var ownUid = HubClientSearch.PeerUid(server);
        Assert.NotNull(ownUid); // the test's own process on both ends
        var searched = false;

        var served = await HubClientSearch.ServeAsync(serverStream, ownUid + 1, _ => { searched = true; return new ClientLookup([], []); }, CancellationToken.None);

        Assert.False(served);
        Assert.False(searched);
        Assert.False(await HubClientSearch.ServeAsync(serverStream, null, _ => { searched = true; return new ClientLookup([], []); }, CancellationToken.None));
        Assert.False(searched);
    }

    [Fact]
    public async Task NoHubListening_IsNull_SoTheCallerSearchesItself()
    {
        await _hub.StopAsync();
        Assert.Null(await HubClientSearch.TryAsync(_temp.Dir, new ClientQuery(), TimeSpan.FromSeconds(5)));

        using var other = new TempData();
        Assert.Null(await HubClientSearch.TryAsync(other.Dir, new ClientQuery(), TimeSpan.FromSeconds(5)));
    }
}
