using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>Restarts of sshd and of the hub, and agents that stop; each test has its own sandbox.</summary>
public sealed class RestartTests
{
    [Fact]
    public async Task SshdRestart_AgentReconnects_AndStoppedAgentIsRecordedOffline()
    {
        var fixture = new SandboxFixture();
        await fixture.InitializeAsync();
        try
        {
            var (agent, client) = await fixture.AddOnlineAgentAsync("restart-1");
            var firstSession = client.SessionId;

            await fixture.Env.StopSshdAsync();
            await fixture.Env.WaitOfflineAsync("restart-1", SandboxFixture.Patience);
            await fixture.Env.StartSshdAsync();
            var back = await fixture.Env.WaitOnlineAsync(["restart-1"], SandboxFixture.Patience);
            Assert.Equal(client.Uuid, back[0].Uuid);
            Assert.NotEqual(firstSession, back[0].SessionId);
            Assert.False(agent.Process!.HasExited);

            await agent.StopAsync();
            await fixture.Env.WaitOfflineAsync("restart-1", TimeSpan.FromSeconds(15));
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }

    [Fact]
    public async Task HubRestart_AgentsComeBack()
    {
        var fixture = new SandboxFixture();
        await fixture.InitializeAsync();
        try
        {
            var (_, client) = await fixture.AddOnlineAgentAsync("hubrestart-1");
            await fixture.Env.StopHubAsync();
            await fixture.Env.StartHubAsync();
            var back = await fixture.Env.WaitOnlineAsync(["hubrestart-1"], SandboxFixture.Patience);
            Assert.Equal(client.Uuid, back[0].Uuid);
            Assert.NotEqual(client.SessionId, back[0].SessionId);
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }
}
