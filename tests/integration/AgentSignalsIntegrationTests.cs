using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// What the agent inherits from whatever started it must not change how its commands end. A parent that ignores
/// SIGCHLD passes that on across exec; the runtime then takes it upon itself to reap every child of the process, and a
/// command's exit status could be taken from under the thread waiting for it.
/// </summary>
public sealed class AgentSignalsIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    [Fact]
    public async Task AnAgentStartedWithSigchldIgnored_StillGivesEveryCommandItsExitCode()
    {
        // The set-up does what it says: env passes an ignored SIGCHLD (bit 17 of SigIgn) on to the program it runs.
        var probe = await SandboxEnvironment.RunForResultAsync("/usr/bin/env", ["--ignore-signal=CHLD", "grep", "-E", "^SigIgn", "/proc/self/status"]);
        Assert.Equal(0, probe.ExitCode);
        Assert.NotEqual(0UL, Convert.ToUInt64(probe.Stdout.Trim().Split('\t')[1], 16) & (1UL << 16));

        var (agent, client) = await fixture.AddOnlineAgentAsync("sigchld-ignored");
        using var registry = fixture.Env.OpenRegistry();
        var first = registry.GetOpenSession(client.Uuid)!;
        await agent.StopAsync();
        agent.IgnoredSignals = ["CHLD"];
        agent.Start();
        var session = await SandboxEnvironment.WaitUntilAsync(
            () => registry.GetOpenSession(client.Uuid) is { } s && s.Id != first.Id ? s : null, SandboxFixture.Patience, "a new session of the restarted agent");

        // Many short commands, several at a time: each must come back with its own exit code and output.
        // Before the fix the commands never came back (the runtime reaped them; the agent's wait for each never ended).
        var failures = new List<string>();
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await Parallel.ForEachAsync(Enumerable.Range(0, 8), limit.Token, async (lane, ct) =>
        {
            await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), ct);
            for (var i = 0; i < 40; i++)
            {
                var code = (lane * 40 + i) % 7;
                var result = await tunnel.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = $"echo {lane}-{i}; exit {code}" },
                    ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, ct);
                if (result.ExitCode != code || result.Stdout != $"{lane}-{i}\n")
                {
                    lock (failures)
                    {
                        failures.Add($"{lane}-{i}: exit {result.ExitCode} (expected {code}), stdout '{result.Stdout}', stderr '{result.Stderr}'");
                    }
                }
            }
        });

        Assert.True(failures.Count == 0, $"{failures.Count} of 320 commands came back wrong, e.g. {string.Join("; ", failures.Take(3))}");
        await agent.StopAsync();
    }
}
