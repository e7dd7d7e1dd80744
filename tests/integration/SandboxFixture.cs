using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;

[assembly: CollectionBehavior(DisableTestParallelization = true)]

namespace EtPhoneHome.Tests.Integration;

/// <summary>A running sandbox (sshd + hub on 127.0.0.1) shared by the tests of a class; each test adds its own agents.</summary>
public sealed class SandboxFixture : IAsyncLifetime
{
    private readonly SandboxOptions? _options;

    public SandboxFixture()
    {
    }

    /// <summary>A sandbox with other settings (xunit needs the one public constructor for class fixtures).</summary>
    internal SandboxFixture(SandboxOptions options)
    {
        _options = options;
    }

    public SandboxEnvironment Env { get; private set; } = null!;

    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(45);

    public async Task InitializeAsync()
    {
        Env = await SandboxEnvironment.CreateAsync(_options ?? new SandboxOptions { HeartbeatSeconds = 2, ReconnectInitialSeconds = 0.5, ReconnectMaxSeconds = 2 });
        await Env.StartSshdAsync();
        await Env.StartHubAsync();
    }

    public async Task DisposeAsync() => await Env.DisposeAsync();

    /// <summary>Adds an agent, approves its key once it is pending, and waits until it is online.</summary>
    public async Task<(SandboxAgent Agent, ClientRecord Client)> AddOnlineAgentAsync(string name, params string[] tags)
    {
        var agent = await Env.AddAgentAsync(name, tags);
        var key = await PendingKeyOfAsync(name);
        using (var registry = Env.OpenRegistry())
        {
            registry.ApproveKey(key.Fingerprint, "test");
        }

        var online = await Env.WaitOnlineAsync([name], Patience);
        return (agent, online[0]);
    }

    /// <summary>Waits until the agent named <paramref name="name"/> has a pending key.</summary>
    public async Task<KeyRecord> PendingKeyOfAsync(string name)
    {
        using var registry = Env.OpenRegistry();
        return await SandboxEnvironment.WaitUntilAsync(
            () => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedDisplayName == name),
            Patience, $"a pending key from {name}");
    }

    public ClientRecord Client(string name)
    {
        using var registry = Env.OpenRegistry();
        return registry.QueryClients(new ClientQuery { Names = [name] }).Single();
    }
}
