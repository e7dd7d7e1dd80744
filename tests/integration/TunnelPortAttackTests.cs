using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// A compromised client holds an approved key. Through the real sshd it tries to listen on a server port that is not its
/// own — where the MCP endpoint or another client would be — so that operators' connections, and the bearer key they
/// send, reach it. sshd must refuse every port but the key's own.
/// </summary>
public sealed class TunnelPortAttackTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private SandboxEnvironment Env => fixture.Env;

    [Fact]
    public async Task AClientsSession_RunsAsTheUnprivilegedFleetAccount_ThroughAShellWithoutRcFiles()
    {
        // What an approved client's session can do on the server is what its account can: the gate that relays it (and
        // the reverse forward sshd binds for it) must not run as root, and no rc file may run before it.
        var (_, client) = await fixture.AddOnlineAgentAsync("account-1");
        var gates = Directory.EnumerateDirectories("/proc")
            .Select(d => int.TryParse(Path.GetFileName(d), out var pid) ? pid : 0)
            .Where(pid => pid > 0)
            .Select(pid => (Pid: pid, Args: ReadArgs(pid)))
            .Where(p => p.Args.Length > 2 && p.Args[0] == Env.GatePath && p.Args[1] == "session" && p.Args.Contains(client.KeyFingerprint))
            .ToList();
        var gate = Assert.Single(gates);
        var status = File.ReadAllLines($"/proc/{gate.Pid}/status");
        var uid = status.Single(l => l.StartsWith("Uid:", StringComparison.Ordinal)).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1];
        var passwd = File.ReadLines("/etc/passwd").Select(l => l.Split(':')).Single(f => f[0] == Env.FleetUser);
        Assert.Equal(passwd[2], uid);
        Assert.NotEqual("0", uid);
        Assert.Equal("/bin/sh", passwd[6]);
        Assert.Contains("PermitUserRC no", File.ReadAllText(Env.SshdConfigFile), StringComparison.Ordinal);
    }

    private static string[] ReadArgs(int pid)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    [Fact]
    public async Task AnApprovedKey_CanListenOnItsOwnServerPort_AndNoOther()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("ports-1");
        using var registry = Env.OpenRegistry();
        var own = registry.GetKey(client.KeyFingerprint!)!.TunnelPort!.Value;
        Assert.Equal(own, client.TunnelPort); // the session runs on the key's port
        Assert.True(TunnelPortRange.Default.Contains(own));

        // The attacker takes the agent's key and asks sshd for a port an operator's service would use.
        await agent.StopAsync();
        await Env.WaitOfflineAsync("ports-1", SandboxFixture.Patience);
        var service = FreePortOutside(TunnelPortRange.Default);
        var stolen = await ForwardAsync(agent, service);
        Assert.False(stolen.Held, $"sshd let a client listen on server port {service}: {stolen.Stderr}");
        Assert.Contains("remote port forwarding failed", stolen.Stderr, StringComparison.Ordinal);
        Assert.True(TunnelPortRange.IsFree("127.0.0.1", service), "the refused port must stay free");

        // Another client's port (another key's) is refused the same way; the key's own port is granted.
        var other = own == TunnelPortRange.Default.Last ? own - 1 : own + 1;
        Assert.False((await ForwardAsync(agent, other)).Held);
        var mine = await ForwardAsync(agent, own);
        Assert.True(mine.Held, $"sshd refused the key's own port {own}: {mine.Stderr}");

        // A unix-socket forward is not bounded by permitlisten at all: it would let the client listen at any path the
        // server account can write (the hub's socket while the hub restarts, a socket another program trusts).
        var socket = Path.Combine(Env.WorkDirectory, $"attack-{Guid.NewGuid():N}.sock");
        var unix = await ForwardAsync(agent, socket, () => File.Exists(socket));
        Assert.False(unix.Held, $"sshd let a client listen on the unix socket {socket}: {unix.Stderr}");
        Assert.False(File.Exists(socket));
    }

    [Theory]
    [InlineData("mcp")]
    [InlineData("run")]
    public async Task McpHttp_OnAPortClientsCanBeHanded_IsRefused_BeforeItListens(string verb)
    {
        var port = TunnelPortRange.Default.First + 17;
        var result = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
            [verb, "--data", Env.Data.Path, "--http", $"127.0.0.1:{port}"]);
        Assert.Equal(2, result.ExitCode);
        Assert.Contains($"port {port} lies in the tunnel port range {TunnelPortRange.Default}", result.Stderr, StringComparison.Ordinal);
        Assert.True(TunnelPortRange.IsFree("127.0.0.1", port));
    }

    private static int FreePortOutside(TunnelPortRange range)
    {
        for (var i = 0; i < 50; i++)
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            var port = ((IPEndPoint)probe.LocalEndpoint).Port;
            if (!range.Contains(port))
            {
                return port;
            }
        }

        throw new InvalidOperationException("no free port outside the tunnel range");
    }

    /// <summary>
    /// Runs <c>ssh -N -R 127.0.0.1:PORT:…</c> with the agent's own key and pinned host key, and tells whether sshd opened
    /// the port (ssh still running and the port taken after a moment) — ExitOnForwardFailure makes a refusal end ssh.
    /// </summary>
    private Task<(bool Held, string Stderr)> ForwardAsync(SandboxAgent agent, int port) =>
        ForwardAsync(agent, $"127.0.0.1:{port}", () => !TunnelPortRange.IsFree("127.0.0.1", port));

    private async Task<(bool Held, string Stderr)> ForwardAsync(SandboxAgent agent, string listen, Func<bool> held)
    {
        var config = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(agent.ConfigDirectory, "agent.json")))!;
        var psi = new ProcessStartInfo("ssh") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[]
        {
            "-N", "-T",
            "-i", (string)config["identity_file"]!,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "UserKnownHostsFile=" + (string)config["known_hosts_file"]!, "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "StrictHostKeyChecking=yes", "-o", "ExitOnForwardFailure=yes",
            "-p", Env.SshPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-R", $"{listen}:127.0.0.1:9",
            (string)config["server_user"]! + "@" + (string)config["server_host"]!,
        })
        {
            psi.ArgumentList.Add(arg);
        }

        using var ssh = Process.Start(psi)!;
        var stderr = ssh.StandardError.ReadToEndAsync();
        var isHeld = false;
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromSeconds(15) && !ssh.HasExited)
        {
            if (held())
            {
                isHeld = true;
                break;
            }

            await Task.Delay(100);
        }

        if (!ssh.HasExited)
        {
            ssh.Kill(entireProcessTree: true);
        }

        await ssh.WaitForExitAsync();
        return (isHeld, await stderr);
    }
}
