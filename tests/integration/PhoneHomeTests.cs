using System.Net.Sockets;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>The connection lifecycle through a real OpenSSH sshd on 127.0.0.1.</summary>
public sealed class PhoneHomeTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private SandboxEnvironment Env => fixture.Env;

    [Fact]
    public async Task UnknownKey_IsPendingWithClaimedHostname_NoTunnelUntilApproved_ThenOnlineWithoutRestart()
    {
        var agent = await Env.AddAgentAsync("pending-1");
        var key = await fixture.PendingKeyOfAsync("pending-1");

        Assert.Equal(Environment.MachineName, key.ClaimedHostname);
        Assert.Equal(KeyStatus.Pending, key.Status);
        Assert.Null(key.Uuid);
        using (var registry = Env.OpenRegistry())
        {
            // No client, no session, no tunnel while the key is pending.
            Assert.Empty(registry.QueryClients(new ClientQuery { Names = ["pending-1"] }));
            Assert.DoesNotContain(registry.ListOpenSessions(), s => s.Fingerprint == key.Fingerprint);
        }

        // sshd refused the forward for the unapproved key: the agent saw ssh's refusal and reports no tunnel port.
        await SandboxEnvironment.WaitUntilAsync(
            () => File.Exists(agent.LogFile) && File.ReadAllText(agent.LogFile).Contains("reverse forward refused", StringComparison.Ordinal),
            SandboxFixture.Patience, "the refused forward in the agent log");
        // The agent writes "pending" once the hub's answer arrives, which may follow the refusal in its log.
        var status = await SandboxEnvironment.WaitUntilAsync(() =>
        {
            var path = Path.Combine(agent.ConfigDirectory, "status.json");
            System.Text.Json.JsonElement element;
            try
            {
                element = File.Exists(path) ? System.Text.Json.JsonDocument.Parse(File.ReadAllText(path)).RootElement : default;
            }
            catch (System.Text.Json.JsonException)
            {
                return null;   // caught mid-write
            }

            return element.ValueKind == System.Text.Json.JsonValueKind.Object && element.GetProperty("state").GetString() == "pending" ? (object)element : null;
        }, SandboxFixture.Patience, "the agent's pending state");
        var statusElement = (System.Text.Json.JsonElement)status;
        Assert.Equal("pending", statusElement.GetProperty("state").GetString());
        Assert.True(!statusElement.TryGetProperty("tunnel_port", out var port) || port.ValueKind == System.Text.Json.JsonValueKind.Null);

        var pid = agent.Process!.Pid;
        using (var registry = Env.OpenRegistry())
        {
            registry.ApproveKey(key.Fingerprint, "test");
        }

        var online = await Env.WaitOnlineAsync(["pending-1"], SandboxFixture.Patience);
        Assert.Equal(pid, agent.Process!.Pid);
        Assert.False(agent.Process.HasExited);
        Assert.Equal(key.Fingerprint, online[0].KeyFingerprint);
        Assert.NotNull(online[0].TunnelPort);
        Assert.Equal(online[0].Uuid, agent.Uuid);
        await agent.StopAsync();
    }

    [Fact]
    public async Task KeyMismatch_KnownUuidWithNewKey_IsRefusedAndRecorded_UntilItsFingerprintIsApproved()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("mismatch-1");
        await agent.StopAsync();
        await Env.WaitOfflineAsync("mismatch-1", SandboxFixture.Patience);

        // The machine gets a new key but keeps its uuid: the registry must not trust it.
        var keyFile = Path.Combine(agent.ConfigDirectory, "id_ed25519");
        File.Delete(keyFile);
        File.Delete(keyFile + ".pub");
        await SandboxEnvironment.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", keyFile]);
        agent.Start();

        using var registry = Env.OpenRegistry();
        var mismatch = await SandboxEnvironment.WaitUntilAsync(
            () => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedUuid == client.Uuid),
            SandboxFixture.Patience, "the mismatching key");
        Assert.True(mismatch.IsMismatch);
        Assert.NotEqual(client.KeyFingerprint, mismatch.Fingerprint);
        // The claim alone changes nothing: the client keeps its key, and nothing online came from the new one.
        var unchanged = registry.GetClient(client.Uuid)!;
        Assert.False(unchanged.KeyMismatch);
        Assert.False(unchanged.Online);
        Assert.Equal(client.KeyFingerprint, unchanged.KeyFingerprint);

        // By uuid the decision is ambiguous; the exact fingerprint decides.
        Assert.Throws<KeyDecisionException>(() => registry.ApproveKey(client.Uuid, "test"));
        var outcome = registry.ApproveKey(mismatch.Fingerprint, "test");
        Assert.True(outcome.ResolvedMismatch);
        Assert.Equal(client.KeyFingerprint, outcome.ReplacedFingerprint);

        var online = await Env.WaitOnlineAsync(["mismatch-1"], SandboxFixture.Patience);
        Assert.Equal(client.Uuid, online[0].Uuid);
        Assert.Equal(mismatch.Fingerprint, online[0].KeyFingerprint);
        Assert.Equal(KeyStatus.Revoked, registry.GetKey(client.KeyFingerprint!)!.Status);
        await agent.StopAsync();
    }

    [Fact]
    public async Task AThrowAwayKeyClaimingAnOnlineClient_LeavesItOnlineAndUsable()
    {
        // The attack: a fresh key whose hello claims a healthy client's uuid. The client must stay online and answer.
        var (victim, client) = await fixture.AddOnlineAgentAsync("claimed-1");
        var attacker = await Env.AddAgentAsync("claimed-1-attacker", ["attack"], start: false);
        // The agent keeps its uuid in state.json (snake_case JSON): claim the victim's.
        File.WriteAllText(Path.Combine(attacker.ConfigDirectory, "state.json"), $"{{\"uuid\":\"{client.Uuid}\"}}");
        attacker.Start();

        using var registry = Env.OpenRegistry();
        var claim = await SandboxEnvironment.WaitUntilAsync(
            () => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedUuid == client.Uuid),
            SandboxFixture.Patience, "the attacker's pending key");
        Assert.True(claim.IsMismatch);

        var after = registry.GetClient(client.Uuid)!;
        Assert.True(after.Online);
        Assert.False(after.KeyMismatch);
        Assert.Equal(client.KeyFingerprint, after.KeyFingerprint);
        var exec = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
            ["exec", "--data", Env.Data.Path, "--client", client.Uuid, "--", "echo", "still-mine"]);
        Assert.Equal(0, exec.ExitCode);
        Assert.Contains("still-mine", exec.Stdout);

        // Revoking the attacker by fingerprint leaves the client as it was; approve by uuid never picks the attacker.
        registry.RevokeKey(claim.Fingerprint, "test", "cli");
        Assert.True(registry.ApproveKey(client.Uuid, "test").AlreadyApproved);
        Assert.Equal(client.KeyFingerprint, registry.GetClient(client.Uuid)!.KeyFingerprint);
        await attacker.StopAsync();
        await victim.StopAsync();
    }

    [Fact]
    public async Task TunnelPort_WithoutSessionSecret_ExecutesNothing()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("secret-1");
        var marker = Path.Combine(Env.WorkDirectory, $"marker-{Guid.NewGuid():N}");
        var request = new RpcRequest
        {
            Id = 1,
            Method = RpcMethods.RunCommand,
            Params = Wire.ToElement(new RunCommandParams { Cmd = $"touch {marker}" }, ProtocolJson.Default.RunCommandParams),
        };

        // 1. A request sent straight away, without the handshake.
        using (var tcp = new TcpClient())
        {
            await tcp.ConnectAsync("127.0.0.1", client.TunnelPort!.Value);
            var stream = tcp.GetStream();
            await Wire.WriteAsync(stream, request, ProtocolJson.Default.RpcRequest);
            await DrainUntilClosedAsync(stream);
        }

        // 2. The handshake with a wrong secret, then the request.
        var wrong = await Assert.ThrowsAsync<ProtocolException>(() =>
            TunnelClient.ConnectAsync("127.0.0.1", client.TunnelPort!.Value, TunnelHandshake.NewSecret(), TimeSpan.FromSeconds(10), CancellationToken.None));
        Assert.Equal(ProtocolError.AuthenticationFailed, wrong.Error);

        // 3. With the real secret the same request runs, which shows the marker check can fail.
        using var registry = Env.OpenRegistry();
        var session = registry.GetOpenSession(client.Uuid)!;
        Assert.False(File.Exists(marker));
        await using (var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None))
        {
            var result = await tunnel.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = $"touch {marker}" }, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
            Assert.Equal(0, result.ExitCode);
        }

        Assert.True(File.Exists(marker));
        await agent.StopAsync();
    }

    [Fact]
    public async Task RunCommand_Timeout_KillsProcessTree_AndOutputOverCapIsFlagged()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("limits-1");
        using var registry = Env.OpenRegistry();
        var session = registry.GetOpenSession(client.Uuid)!;
        await using var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None);

        var pidFile = Path.Combine(Env.WorkDirectory, $"bg-{Guid.NewGuid():N}");
        var timedOut = await tunnel.InvokeAsync(RpcMethods.RunCommand,
            new RunCommandParams { Cmd = $"sleep 300 & echo $! > {pidFile}; sleep 300", TimeoutS = 2 },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.True(timedOut.TimedOut);
        Assert.InRange(timedOut.DurationMs, 1500, 30_000);
        var background = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await SandboxEnvironment.WaitUntilAsync(() => !Directory.Exists($"/proc/{background}") || File.ReadAllText($"/proc/{background}/stat").Contains(") Z ", StringComparison.Ordinal),
            TimeSpan.FromSeconds(10), "the background child to be killed");

        var big = await tunnel.InvokeAsync(RpcMethods.RunCommand,
            new RunCommandParams { Cmd = "head -c 3000000 /dev/zero | tr '\\0' x; echo done >&2" },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.True(big.Truncated);
        Assert.Equal(0, big.ExitCode);
        Assert.Equal(1024 * 1024, big.Stdout.Length);
        Assert.Equal(3_000_000, big.StdoutBytes);
        Assert.Contains("done", big.Stderr, StringComparison.Ordinal);

        var failing = await tunnel.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "echo nope >&2; exit 3" },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.Equal(3, failing.ExitCode);
        Assert.False(failing.Truncated);
        await agent.StopAsync();
    }

    [Fact]
    public async Task Reconnect_KeepsOperatorEditedFields()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("edits-1", "from-agent");
        using var registry = Env.OpenRegistry();
        registry.UpdateClient(client.Uuid, new ClientUpdate { DisplayName = "edited-1", Purpose = "edited purpose", Tags = ["ops-tag"] }, "test");

        await agent.StopAsync();
        await Env.WaitOfflineAsync("edited-1", SandboxFixture.Patience);
        agent.Start();
        var back = await Env.WaitOnlineAsync(["edited-1"], SandboxFixture.Patience);

        Assert.Equal(client.Uuid, back[0].Uuid);
        Assert.Equal("edited purpose", back[0].Purpose);
        Assert.Equal(["ops-tag"], back[0].Tags);
        Assert.True(back[0].ConnectionCount >= 2);
        Assert.Equal(Environment.MachineName, back[0].Hostname);
        await agent.StopAsync();
    }

    [Fact]
    public async Task Exec_AcrossClients_ReturnsOneResultPerTarget_IncludingOffline()
    {
        var (a, _) = await fixture.AddOnlineAgentAsync("exec-1", "exec-test");
        var (b, _) = await fixture.AddOnlineAgentAsync("exec-2", "exec-test");
        var (c, _) = await fixture.AddOnlineAgentAsync("exec-3", "exec-test");
        await c.StopAsync();
        await Env.WaitOfflineAsync("exec-3", SandboxFixture.Patience);

        var (exit, stdout, stderr) = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
            ["exec", "--data", Env.Data.Path, "--tag", "exec-test", "--json", "--", "echo", "hello from", "$(hostname)"]);
        var rows = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToList();

        Assert.True(rows.Count == 3, $"expected 3 rows, got {rows.Count}: {stdout} {stderr}");
        Assert.NotEqual(0, exit);
        var byName = rows.ToDictionary(r => r.GetProperty("display_name").GetString()!);
        // --json speaks the one wire vocabulary (snake_case), as MCP and the history do.
        Assert.Equal("succeeded", byName["exec-1"].GetProperty("status").GetString());
        Assert.Equal("succeeded", byName["exec-2"].GetProperty("status").GetString());
        Assert.Equal("offline", byName["exec-3"].GetProperty("status").GetString());
        Assert.Contains("hello from", byName["exec-1"].GetProperty("stdout").GetString(), StringComparison.Ordinal);
        Assert.Equal(0, byName["exec-2"].GetProperty("exit_code").GetInt32());
        await a.StopAsync();
        await b.StopAsync();
    }

    [Fact]
    public async Task Revoke_DisconnectsNow_AndTheKeyIsRefusedAfterwards()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("revoke-1");
        var output = await Env.RunServerVerbAsync(["revoke", "--data", Env.Data.Path, client.Uuid]);
        Assert.Contains(client.KeyFingerprint!, output, StringComparison.Ordinal);

        await Env.WaitOfflineAsync("revoke-1", TimeSpan.FromSeconds(10));
        using var registry = Env.OpenRegistry();
        Assert.Equal(KeyStatus.Revoked, registry.GetKey(client.KeyFingerprint!)!.Status);
        Assert.Null(registry.GetOpenSession(client.Uuid));

        // The agent keeps trying; sshd refuses the key, so no new session ever opens.
        var since = new FileInfo(agent.LogFile).Length;
        await SandboxEnvironment.WaitUntilAsync(() => new FileInfo(agent.LogFile).Length > since, SandboxFixture.Patience, "another connection attempt");
        Assert.Null(registry.GetOpenSession(client.Uuid));
        Assert.False(registry.GetClient(client.Uuid)!.Online);
        await agent.StopAsync();
    }

    private static async Task DrainUntilClosedAsync(NetworkStream stream)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            while (await stream.ReadAsync(buffer, timeout.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
            // Reset by the agent: closed, as expected.
        }
    }
}
