using EtPhoneHome.Core.Registry;
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

    /// <summary>A sandbox whose agents allow 15 s without an answer (5 s heartbeats): a hub restart takes a few seconds.</summary>
    private static async Task<SandboxFixture> StartAsync()
    {
        var fixture = new SandboxFixture(new SandboxOptions { HeartbeatSeconds = 5, ReconnectInitialSeconds = 0.5, ReconnectMaxSeconds = 2 });
        await fixture.InitializeAsync();
        return fixture;
    }

    private static SessionRecord OpenSession(SandboxFixture fixture, string uuid)
    {
        using var registry = fixture.Env.OpenRegistry();
        return registry.GetOpenSession(uuid) ?? throw new InvalidOperationException($"no open session for {uuid}");
    }

    private static bool Runs(int pid)
    {
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static int Count(string file, string text)
        => File.ReadAllLines(file).Count(l => l.Contains(text, StringComparison.Ordinal));

    [Fact]
    public async Task HubStoppedAndStarted_TheSessionContinues_AndTheAgentNeverReconnects()
    {
        var fixture = await StartAsync();
        try
        {
            var (agent, client) = await fixture.AddOnlineAgentAsync("hubrestart-1");
            var before = OpenSession(fixture, client.Uuid);

            await fixture.Env.StopHubAsync();
            await fixture.Env.StartHubAsync();
            await SandboxEnvironment.WaitUntilAsync(() => File.ReadAllText(Path.Combine(fixture.Env.WorkDirectory, "hub.log")).Contains("re-attached", StringComparison.Ordinal),
                SandboxFixture.Patience, "the gate to re-attach its session");
            var back = await fixture.Env.WaitOnlineAsync(["hubrestart-1"], SandboxFixture.Patience);
            Assert.Equal(client.Uuid, back[0].Uuid);
            Assert.Equal(client.SessionId, back[0].SessionId);
            var after = OpenSession(fixture, client.Uuid);
            Assert.Equal(before.Secret, after.Secret);
            Assert.Equal(1, Count(agent.LogFile, "welcome: online"));
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }

    [Fact]
    public async Task HubKilled_AnInFlightCommandFinishes_TheSessionIsTheSame_AndRevocationStillEndsTheGate()
    {
        var fixture = await StartAsync();
        try
        {
            var env = fixture.Env;
            var (agent, client) = await fixture.AddOnlineAgentAsync("hubkill-1");
            var before = OpenSession(fixture, client.Uuid);
            var gatePid = before.GatePid!.Value;
            var sshStarts = Count(agent.LogFile, "ssh started");

            // An operator's command is running when the hub crashes.
            var clock = System.Diagnostics.Stopwatch.StartNew();
            var exec = SandboxEnvironment.RunForResultAsync(env.ServerExecutable,
                ["exec", "--data", env.Data.Path, "--client", client.Uuid, "--timeout", "60", "--", "sleep 8; echo done"]);
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.False(exec.IsCompleted);

            await env.KillHubAsync();
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.True(Runs(gatePid), "the gate exited with the hub");
            Assert.False(exec.IsCompleted);
            await env.StartHubAsync();

            var result = await exec.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.True(result.ExitCode == 0, $"exec failed ({result.ExitCode}): {result.Stdout} {result.Stderr}");
            Assert.Contains("done", result.Stdout, StringComparison.Ordinal);
            Assert.InRange(clock.Elapsed.TotalSeconds, 7.5, 60);

            // The same session: same id, secret and gate; the agent got one welcome and never reconnected.
            await SandboxEnvironment.WaitUntilAsync(() => File.ReadAllText(Path.Combine(env.WorkDirectory, "hub.log")).Contains("re-attached", StringComparison.Ordinal),
                SandboxFixture.Patience, "the gate to re-attach its session");
            var back = await env.WaitOnlineAsync(["hubkill-1"], SandboxFixture.Patience);
            Assert.Equal(client.SessionId, back[0].SessionId);
            var after = OpenSession(fixture, client.Uuid);
            Assert.Equal(before.Secret, after.Secret);
            Assert.Equal(gatePid, after.GatePid);
            Assert.Equal(1, Count(agent.LogFile, "welcome: online"));
            Assert.Equal(sshStarts, Count(agent.LogFile, "ssh started"));

            // A command after the restart goes through the same tunnel.
            var again = await SandboxEnvironment.RunForResultAsync(env.ServerExecutable,
                ["exec", "--data", env.Data.Path, "--client", client.Uuid, "--", "echo still-here"]);
            Assert.Contains("still-here", again.Stdout, StringComparison.Ordinal);

            // Revocation after the restart still ends the gate at once.
            await env.RunServerVerbAsync(["revoke", "--data", env.Data.Path, client.Uuid]);
            await SandboxEnvironment.WaitUntilAsync(() => !Runs(gatePid), TimeSpan.FromSeconds(10), "the gate to exit on revocation");
            await env.WaitOfflineAsync("hubkill-1", TimeSpan.FromSeconds(10));
        }
        finally
        {
            await fixture.DisposeAsync();
        }
    }
}
