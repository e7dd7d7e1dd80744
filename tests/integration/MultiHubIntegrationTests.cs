using System.Diagnostics;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// Two sshd + hub pairs on one private PostgreSQL registry (<see cref="MultiHubSandbox"/>), agents listing both servers
/// with the production reconnect backoff (5 s doubling to 300 s, ±20 %). One hub host going down (hub and sshd killed by
/// PID with SIGKILL): its agents come back on the other hub, nothing of theirs is lost, and its sessions are closed once.
/// </summary>
public sealed class MultiHubIntegrationTests(ITestOutputHelper output)
{
    /// <summary>
    /// An agent whose session ended after the welcome first retries its own server (5 s ±20 %), then moves on to the next
    /// one (10 s ±20 %): 18 s at most, plus ssh's connect and the admission on a loaded machine.
    /// </summary>
    private static readonly TimeSpan BackWithin = TimeSpan.FromSeconds(18 + 27);

    /// <summary>The hubs' dead-hub timeout (HubOptions.DeadHubTimeout, eph-server run --dead-hub-timeout; these hubs keep the default): 60 s.</summary>
    private static readonly TimeSpan DeadHubTimeout = TimeSpan.FromSeconds(60);

    private static SandboxOptions ProductionBackoff => new() { HeartbeatSeconds = 5, ReconnectInitialSeconds = 5, ReconnectMaxSeconds = 300 };

    [Fact]
    public async Task AHubHostKilled_ItsAgentsComeBackOnTheOtherHub_NothingIsLost_AndItsSessionsAreClosedOnce()
    {
        await using var sandbox = await MultiHubSandbox.CreateAsync(2, ProductionBackoff);
        await sandbox.StartAsync();
        string[] movers = ["mh-a1", "mh-a2"];
        const string Abandoned = "mh-a3";
        string[] stayers = ["mh-b1", "mh-b2"];
        var agents = new Dictionary<string, SandboxAgent>();
        foreach (var name in movers.Append(Abandoned))
        {
            agents[name] = await sandbox.AddAgentAsync(name, home: 0, ["multi", "home-1"]);
        }

        foreach (var name in stayers)
        {
            agents[name] = await sandbox.AddAgentAsync(name, home: 1, ["multi", "home-2"]);
        }

        var hub1 = sandbox.Hubs[0];
        var hub2 = sandbox.Hubs[1];
        string[] all = [.. movers, Abandoned, .. stayers];
        await ApproveAllAsync(hub1, all);
        var online = await hub1.WaitOnlineAsync(all, SandboxFixture.Patience);

        // What must survive: keys, tags (one set by an operator), the history of commands and updates.
        var ofHub1 = new Dictionary<string, SessionRecord>();
        using (var registry = hub1.OpenRegistry())
        {
            foreach (var client in online)
            {
                var session = registry.GetOpenSession(client.Uuid)!;
                Assert.Equal(client.DisplayName.StartsWith("mh-a", StringComparison.Ordinal) ? "hub-1" : "hub-2", session.HubId);
                if (session.HubId == "hub-1")
                {
                    ofHub1[client.DisplayName] = session;
                }

                registry.UpdateClient(client.Uuid, new ClientUpdate { AddTags = ["kept-" + client.DisplayName] }, "test");
            }
        }

        var (exit, stdout, stderr) = await SandboxEnvironment.RunForResultAsync(hub1.ServerExecutable,
            ["exec", "--data", hub1.Data.Path, "--tag", "multi", "--", "echo", "before"]);
        Assert.True(exit == 0, stdout + stderr);
        var before = Snapshot(hub1, online);
        Assert.All(before.Values, s => Assert.Contains(s.History, h => h.StartsWith("run_command", StringComparison.Ordinal)));

        var clock = Stopwatch.StartNew();
        await sandbox.KillHubAsync(0);
        // The abandoned client's agent stops before its first retry (5 s): only the dead hub's timeout can close its session.
        await agents[Abandoned].StopAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(4), $"the agent was stopped only {clock.Elapsed.TotalSeconds:0.0} s after the kill");

        // Every mover comes back, on hub-2, within the production backoff.
        var back = new Dictionary<string, TimeSpan>();
        using (var registry = hub2.OpenRegistry())
        {
            await SandboxEnvironment.WaitUntilAsync(() =>
            {
                foreach (var name in movers.Where(m => !back.ContainsKey(m)))
                {
                    var uuid = online.Single(c => c.DisplayName == name).Uuid;
                    if (registry.GetOpenSession(uuid) is { HubId: "hub-2", OnlineAt: not null })
                    {
                        back[name] = clock.Elapsed;
                    }
                }

                return back.Count == movers.Length;
            }, BackWithin, $"{string.Join(", ", movers)} online on hub-2");
        }

        foreach (var (name, after) in back.OrderBy(b => b.Value))
        {
            output.WriteLine($"{name} back on hub-2 {after.TotalSeconds:0.0} s after hub-1 and its sshd were killed (load {Load()})");
        }

        foreach (var name in movers)
        {
            Assert.Contains("reconnecting to eph-fleet@127.0.0.1:" + hub2.SshPort, File.ReadAllText(agents[name].LogFile), StringComparison.Ordinal);
        }

        // The operator path from the surviving hub's side reaches them again.
        (exit, stdout, stderr) = await SandboxEnvironment.RunForResultAsync(hub2.ServerExecutable,
            ["exec", "--data", hub2.Data.Path, "--tag", "home-1", "--", "echo", "after"]);
        Assert.Equal(1, exit); // the abandoned client is offline only once the dead hub's timeout has passed, or is reported offline
        Assert.Equal(movers.Length, stdout.Split('\n').Count(l => l == "after"));

        // The movers' hub-1 sessions were closed when their new ones opened (replaced); the abandoned one is left to the
        // survivors' dead-hub rule: closed after the timeout, by exactly one of them, once.
        SessionRecord abandonedSession;
        using (var registry = hub2.OpenRegistry())
        {
            foreach (var name in movers)
            {
                Assert.Equal("replaced", registry.GetSession(ofHub1[name].Id)!.CloseReason);
            }

            Assert.Null(registry.GetSession(ofHub1[Abandoned].Id)!.ClosedAt);
            abandonedSession = await SandboxEnvironment.WaitUntilAsync(
                () => registry.GetSession(ofHub1[Abandoned].Id) is { ClosedAt: not null } s ? s : null,
                DeadHubTimeout + TimeSpan.FromSeconds(40), "the dead hub's last session closed by hub-2");
        }

        output.WriteLine($"{Abandoned}'s session closed {clock.Elapsed.TotalSeconds:0.0} s after the kill: {abandonedSession.CloseReason}");
        Assert.Contains("hub hub-1 stopped", abandonedSession.CloseReason);
        // hub-1's last heartbeat row came up to one interval (5 s) before the kill, later on a loaded machine: not much
        // earlier than the timeout, and not at once.
        Assert.True(clock.Elapsed >= DeadHubTimeout - TimeSpan.FromSeconds(15), $"closed after {clock.Elapsed.TotalSeconds:0.0} s, before the dead-hub timeout");
        await Task.Delay(TimeSpan.FromSeconds(12)); // more rounds of the survivor's dead-hub check (every 5 s)

        using (var registry = hub2.OpenRegistry())
        {
            var disconnected = registry.ListEvents(0, 100_000).Where(e => e.Type == "client.disconnected")
                .Select(e => JsonDocument.Parse(e.Payload).RootElement.GetProperty("data").GetProperty("session_id").GetInt64()).ToList();
            foreach (var (name, session) in ofHub1)
            {
                Assert.True(disconnected.Count(id => id == session.Id) == 1, $"{name}'s hub-1 session {session.Id}: {disconnected.Count(id => id == session.Id)} disconnect events");
            }

            Assert.Equal("replaced", registry.GetSession(ofHub1[movers[0]].Id)!.CloseReason);
            Assert.Equal(abandonedSession.ClosedAt, registry.GetSession(abandonedSession.Id)!.ClosedAt);
            Assert.Empty(registry.ListOpenSessionsOf("hub-1"));
            // The movers' new sessions and the stayers' are untouched by the sweep.
            foreach (var name in movers.Concat(stayers))
            {
                Assert.Equal("hub-2", registry.GetOpenSession(online.Single(c => c.DisplayName == name).Uuid)?.HubId);
            }

            Assert.False(registry.GetClient(online.Single(c => c.DisplayName == Abandoned).Uuid)!.Online);
        }

        var after2 = Snapshot(hub2, online);
        foreach (var (name, was) in before)
        {
            var now = after2[name];
            Assert.Equal(was.Key, now.Key);
            Assert.Equal(was.Tags, now.Tags);
            Assert.Empty(was.History.Except(now.History));
        }
    }

    [Fact]
    public async Task AHubHostKilledMidFanOut_EveryTargetGetsAResult_FromTheSurvivingHubsSide()
    {
        await using var sandbox = await MultiHubSandbox.CreateAsync(2, ProductionBackoff);
        await sandbox.StartAsync();
        string[] names = ["fo-1", "fo-2", "fo-3", "fo-4"];
        for (var i = 0; i < names.Length; i++)
        {
            await sandbox.AddAgentAsync(names[i], home: i % 2, ["fanout"]);
        }

        var hub2 = sandbox.Hubs[1];
        await ApproveAllAsync(hub2, names);
        await hub2.WaitOnlineAsync(names, SandboxFixture.Patience);

        // From hub-2's side, a command on all four that is still running when hub-1's host goes down.
        var psi = new ProcessStartInfo(hub2.ServerExecutable) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in new[] { "exec", "--data", hub2.Data.Path, "--tag", "fanout", "--json", "--", "echo started; sleep 12; echo finished" })
        {
            psi.ArgumentList.Add(a);
        }

        var clock = Stopwatch.StartNew();
        using var fanOut = Process.Start(psi)!;
        var stdout = fanOut.StandardOutput.ReadToEndAsync();
        var stderr = fanOut.StandardError.ReadToEndAsync();
        await Task.Delay(TimeSpan.FromSeconds(5));
        Assert.False(fanOut.HasExited, "the fan-out ended before the kill");
        await sandbox.KillHubAsync(0);
        var killedAt = clock.Elapsed;

        using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(12 + 60));
        try
        {
            await fanOut.WaitForExitAsync(patience.Token);
        }
        catch (OperationCanceledException)
        {
            fanOut.Kill();
            Assert.Fail($"the fan-out hangs {clock.Elapsed.TotalSeconds:0} s after it started; stderr: {await stderr}");
        }

        output.WriteLine($"fan-out ended {clock.Elapsed.TotalSeconds:0.0} s after it started, hub-1 killed at {killedAt.TotalSeconds:0.0} s (load {Load()})");
        var rows = (await stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(names.Order(), rows.Select(r => r.GetProperty("display_name").GetString()).Order());
        Assert.Equal(1, fanOut.ExitCode);
        foreach (var row in rows)
        {
            var name = row.GetProperty("display_name").GetString()!;
            var status = row.GetProperty("status").GetString();
            output.WriteLine($"{name}: {status} {row.GetProperty("failure")} {row.GetProperty("error")}");
            if (Array.IndexOf(names, name) % 2 == 1)
            {
                Assert.Equal("succeeded", status);
                Assert.Equal("started\nfinished\n", row.GetProperty("stdout").GetString());
            }
            else
            {
                // hub-1's clients: a failure result naming what happened, not a success and not a missing row.
                Assert.NotEqual("succeeded", status);
                Assert.NotEqual(JsonValueKind.Null, row.GetProperty("failure").ValueKind);
            }
        }
    }

    private sealed record ClientSnapshot(string? Key, string Tags, IReadOnlyList<string> History);

    private static Dictionary<string, ClientSnapshot> Snapshot(SandboxEnvironment hub, IEnumerable<ClientRecord> clients)
    {
        using var registry = hub.OpenRegistry();
        var keys = registry.ListKeys().ToDictionary(k => k.Fingerprint, k => k.Status);
        return clients.ToDictionary(c => c.DisplayName, c =>
        {
            var now = registry.GetClient(c.Uuid)!;
            var history = registry.QueryHistory(new HistoryQuery { Uuids = [c.Uuid], Take = HistoryQuery.MaxTake })
                .Select(h => $"{h.Operation} {h.Status} {h.At?.ToUnixTimeMilliseconds()} {h.Detail}").ToList();
            return new ClientSnapshot($"{now.KeyFingerprint} {keys[now.KeyFingerprint!]}", string.Join(',', now.Tags.Order()), history);
        });
    }

    private static async Task ApproveAllAsync(SandboxEnvironment hub, string[] names)
    {
        var pending = await hub.WaitForPendingKeysAsync(names.Length, SandboxFixture.Patience);
        using var registry = hub.OpenRegistry();
        foreach (var key in pending.Where(k => names.Contains(k.ClaimedDisplayName)))
        {
            registry.ApproveKey(key.Fingerprint, "test");
        }
    }

    private static string Load() => File.ReadAllText("/proc/loadavg").Split(' ')[0];
}
