using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Module;

public sealed class CompletionAndConfigurationTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly SqliteRegistry _registry;
    private readonly ClientRecord _web;
    private readonly ClientRecord _db;

    private const string WebUuid = "db0a9c1e-8b4a-4c57-9e3d-2a7f5b9c1e40";
    private const string DbUuid = "3f5e0c7a-1d2b-4e3f-8a9b-0c1d2e3f4a5b";

    public CompletionAndConfigurationTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        // Fixed uuids (random ones made the id completion test flaky: "db" also matched a uuid beginning with db).
        // The web client's uuid begins with "db" on purpose, so that collision is tested every time.
        _registry.SeedClients([
            new ClientSeed { Uuid = WebUuid, DisplayName = "web 01", Hostname = "web-01", Tags = ["prod", "eu-west"], Capabilities = ["docker", "git"] },
            new ClientSeed { Uuid = DbUuid, DisplayName = "db-01", Hostname = "db-01", Tags = ["prod", "Eu-East"], Capabilities = ["git"] },
        ]);
        _web = _registry.GetClient(WebUuid)!;
        _db = _registry.GetClient(DbUuid)!;
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }

    [Fact]
    public void ClientNames_CompleteByPrefix_QuotingNamesWithSpaces()
    {
        var all = FleetCompletions.ClientNames(_registry, "");
        Assert.Equal(["db-01", "'web 01'"], all.Select(c => c.Text));
        var web = Assert.Single(FleetCompletions.ClientNames(_registry, "'WE"));
        Assert.Equal("web 01", web.ListItem);
        Assert.Contains(_web.Uuid, web.ToolTip, StringComparison.Ordinal);
        Assert.Empty(FleetCompletions.ClientNames(_registry, "x"));
    }

    [Fact]
    public void ClientIds_CompleteFromAUuidPrefixOrAName()
    {
        Assert.Equal(WebUuid, _web.Uuid);
        Assert.Equal(_db.Uuid, Assert.Single(FleetCompletions.ClientIds(_registry, "db-")).Text);
        // "db" is both the web client's uuid prefix and the db client's name prefix: both complete.
        Assert.Equal([_db.Uuid, _web.Uuid], FleetCompletions.ClientIds(_registry, "db").Select(c => c.Text).Order(StringComparer.Ordinal));
        var byUuid = Assert.Single(FleetCompletions.ClientIds(_registry, _web.Uuid[..8]));
        Assert.Equal(_web.Uuid, byUuid.Text);
        Assert.Contains("web 01", byUuid.ListItem, StringComparison.Ordinal);
        Assert.Equal(2, FleetCompletions.ClientIds(_registry, null).Count);
    }

    [Fact]
    public void Tags_AreDistinctCaseInsensitive_WithClientCounts()
    {
        var tags = FleetCompletions.Tags(_registry, "");
        Assert.Equal(["eu-east", "eu-west", "prod"], tags.Select(t => t.Text.ToLowerInvariant()));
        var prod = Assert.Single(FleetCompletions.Tags(_registry, "pr"));
        Assert.Equal("prod (2 client(s))", prod.ToolTip);
        Assert.Equal(["Eu-East", "eu-west"], FleetCompletions.Tags(_registry, "EU").Select(t => t.ListItem));
    }

    [Fact]
    public void Capabilities_ComeFromWhatTheAgentsReported()
    {
        Assert.Equal(["docker", "git"], FleetCompletions.Capabilities(_registry, "").Select(c => c.Text));
        Assert.Equal("git (2 client(s))", Assert.Single(FleetCompletions.Capabilities(_registry, "g")).ToolTip);
    }

    [Fact]
    public void TheCmdletCompleters_ReadTheConfiguredRegistry()
    {
        var saved = ModuleConfiguration.Current;
        try
        {
            ModuleConfiguration.Current = new ModuleSettings { DataDirectory = _data.Dir.Path };
            // (CompletionResult is a compile-time stub without pwsh, so its text is checked one layer down.)
            Assert.Equal("eu-west", Assert.Single(RegistryCompletion.Query(FleetCompletions.Tags, "eu-w")).Text);
            Assert.Single(new TagCompleter().CompleteArgument("Get-EphClient", "Tag", "eu-w", null!, null!));
            Assert.Equal(2, new ClientIdCompleter().CompleteArgument("Invoke-EphCommand", "ClientId", "", null!, null!).Count());
            Assert.Single(new CapabilityCompleter().CompleteArgument("Get-EphClient", "Capability", "d", null!, null!));
            Assert.Equal(2, new ClientNameCompleter().CompleteArgument("Get-EphClient", "Name", "", null!, null!).Count());

            ModuleConfiguration.Current = new ModuleSettings { DataDirectory = Path.Combine(_data.Root, "no-registry-here") };
            Assert.Empty(new ClientNameCompleter().CompleteArgument("Get-EphClient", "Name", "", null!, null!));
        }
        finally
        {
            ModuleConfiguration.Current = saved;
        }
    }

    [Fact]
    public void TheSessionDataDirectory_WinsOverTheEnvironment_AndResetFallsBack()
    {
        var saved = ModuleConfiguration.Current;
        var env = Environment.GetEnvironmentVariable(DataDirectory.EnvironmentVariable);
        try
        {
            Environment.SetEnvironmentVariable(DataDirectory.EnvironmentVariable, _data.Root);
            ModuleConfiguration.Current = new ModuleSettings();
            Assert.Equal((Path.GetFullPath(_data.Root), EphSettingSource.Environment), Resolve());

            ModuleConfiguration.Current = new ModuleSettings { DataDirectory = _data.Dir.Path };
            Assert.Equal((_data.Dir.Path, EphSettingSource.Session), Resolve());
            var info = GetEphConfigurationCommand.Describe();
            Assert.True(info.RegistryExists);
            Assert.Equal(_data.Dir.RegistryFile, info.RegistryFile);

            Environment.SetEnvironmentVariable(DataDirectory.EnvironmentVariable, null);
            ModuleConfiguration.Current = new ModuleSettings();
            Assert.Equal(EphSettingSource.Default, Resolve().Source);
            Assert.EndsWith(".etphonehome-server", Resolve().Path, StringComparison.Ordinal);
        }
        finally
        {
            ModuleConfiguration.Current = saved;
            Environment.SetEnvironmentVariable(DataDirectory.EnvironmentVariable, env);
        }

        static (string Path, EphSettingSource Source) Resolve()
        {
            var (directory, source) = ModuleConfiguration.ResolveDataDirectory();
            return (directory.Path, source);
        }
    }
}
