using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>Operator edits and decommissioning through eph-server, against real agents behind a real sshd.</summary>
public sealed class RegistryIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private SandboxEnvironment Env => fixture.Env;

    private Task<string> VerbAsync(params string[] args) => Env.RunServerVerbAsync([.. args, "--data", Env.Data.Path]);

    [Fact]
    public async Task Set_ThenReconnect_KeepsOperatorEdits()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("reg-edit-1", "agent-default");

        await VerbAsync("set", client.Uuid, "--display-name", "reg-edit-renamed", "--tag", "edited", "--add-tag", "eu-west",
            "--purpose", "operator purpose", "--rate-limit-rpm", "120", "--allowed-path", "/srv");
        await agent.StopAsync();
        await Env.WaitOfflineAsync("reg-edit-renamed", SandboxFixture.Patience);
        agent.Start();

        var online = (await Env.WaitOnlineAsync(["reg-edit-renamed"], SandboxFixture.Patience))[0];
        Assert.Equal(client.Uuid, online.Uuid);
        Assert.Equal(["edited", "eu-west"], online.Tags);
        Assert.Equal("operator purpose", online.Purpose);
        Assert.Equal(120, online.RateLimitRpm);
        Assert.Equal(["/srv"], online.AllowedPaths);
        Assert.True(online.ConnectionCount >= 2);
        var json = await VerbAsync("clients", "--tag", "edited", "--json");
        Assert.Contains("\"display_name\":\"reg-edit-renamed\"", json);
        await agent.StopAsync();
    }

    [Fact]
    public async Task RateLimit_IsOneCountAcrossOsProcesses_AndEnforced()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("reg-limit-1");
        using (var registry = Env.OpenRegistry())
        {
            registry.UpdateClient(client.Uuid, new ClientUpdate { RateLimitRpm = 4 }, "test");
            registry.SetSetting(RateLimitPolicy.ModeSetting, "enforce");
        }

        try
        {
            // Six eph-server processes, two at a time, one request each to the same client: only the registry can
            // hold the count they share, so exactly 4 run and 2 are refused.
            var statuses = new List<string>();
            for (var wave = 0; wave < 3; wave++)
            {
                var runs = await Task.WhenAll(Enumerable.Range(0, 2).Select(_ => SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
                    ["exec", "--data", Env.Data.Path, "--client", client.Uuid, "--json", "--", "true"])));
                foreach (var run in runs)
                {
                    var row = JsonDocument.Parse(run.Stdout.Trim()).RootElement;
                    statuses.Add(row.GetProperty("status").GetString()!);
                    Assert.Equal(row.GetProperty("status").GetString() == "succeeded" ? 0 : 1, run.ExitCode == 0 ? 0 : 1);
                }
            }

            Assert.Equal(4, statuses.Count(s => s == "succeeded"));
            Assert.Equal(2, statuses.Count(s => s == "rate_limited"));
            var limits = JsonDocument.Parse((await VerbAsync("limits", client.Uuid, "--json")).Trim()).RootElement;
            Assert.Equal(4, limits.GetProperty("requests_per_minute").GetInt32());
            Assert.Equal(4, limits.GetProperty("rpm_limit").GetInt32());
            Assert.Equal("enforce", limits.GetProperty("mode").GetString());
            using var check = Env.OpenRegistry();
            Assert.Equal(2, check.QueryHistory(new HistoryQuery { Uuids = [client.Uuid], Statuses = ["rate_limited"] }).Count);
        }
        finally
        {
            using (var registry = Env.OpenRegistry())
            {
                registry.SetSetting(RateLimitPolicy.ModeSetting, null);
            }

            await agent.StopAsync();
        }
    }

    [Fact]
    public async Task RemoveYes_DisconnectsAnOnlineClientNow_AndItStaysOut()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("reg-remove-1");
        int? gatePid;
        using (var registry = Env.OpenRegistry())
        {
            gatePid = registry.GetOpenSession(client.Uuid)!.GatePid;
        }

        Assert.NotNull(gatePid);
        int Reconnects() => File.ReadAllText(agent.LogFile).Split('\n').Count(l => l.Contains("reconnecting in", StringComparison.Ordinal));
        var reconnectsBefore = Reconnects();

        var output = await VerbAsync("remove", client.Uuid, "--yes");

        Assert.Contains("Removed client 'reg-remove-1'", output);
        Assert.Contains("disconnected 1 session(s)", output);
        // The gate relay got its signal: the SSH connection is gone, not just the registry row.
        await SandboxEnvironment.WaitUntilAsync(() => Directory.Exists($"/proc/{gatePid}") ? null : (object)true, SandboxFixture.Patience, "the gate relay to exit");
        using (var registry = Env.OpenRegistry())
        {
            Assert.Null(registry.GetOpenSession(client.Uuid));
            Assert.Equal(KeyStatus.Revoked, registry.GetKey(client.KeyFingerprint!)!.Status);
            Assert.Empty(registry.QueryClients(new ClientQuery { Names = ["reg-remove-1"] }));
            Assert.Contains(registry.QueryHistory(new HistoryQuery { Uuids = [client.Uuid] }), h => h.Operation == "remove_client" && h.Surface == "cli");
        }

        // The agent keeps trying, but sshd now refuses its key: it never gets a session again.
        await SandboxEnvironment.WaitUntilAsync(
            () => Reconnects() >= reconnectsBefore + 2 ? (object)true : null,
            SandboxFixture.Patience, "the cut session and a refused retry in the agent log");
        using (var registry = Env.OpenRegistry())
        {
            Assert.Null(registry.GetOpenSession(client.Uuid));
        }

        var history = await VerbAsync("history", "--client", client.Uuid, "--operation", "remove_client", "--json");
        Assert.Contains("\"operation\":\"remove_client\"", history);
        await agent.StopAsync();
    }
}
