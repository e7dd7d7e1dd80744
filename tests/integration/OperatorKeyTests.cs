using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// An operator key through the real sshd and the system ssh client: it gets the forced eph-gate operator and nothing
/// else — no local forward to a tunnel port, no remote forward, no command of its own — and once the operator is
/// removed sshd refuses the key.
/// </summary>
public sealed class OperatorKeyTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>, IDisposable
{
    private readonly string _keys = Directory.CreateTempSubdirectory("eph-opkey-").FullName;

    private SandboxEnvironment Env => fixture.Env;

    public void Dispose()
    {
        try
        {
            Directory.Delete(_keys, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private async Task<string> NewKeyAsync(string name)
    {
        var path = Path.Combine(_keys, name);
        var result = await SandboxEnvironment.RunForResultAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name + "@laptop", "-f", path]);
        Assert.True(result.ExitCode == 0, result.Stderr);
        return path;
    }

    private async Task AddOperatorAsync(string name, string keyPath, string role)
    {
        var result = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
            ["operators", "add", "--data", Env.Data.Path, "--name", name, "--public-key-file", keyPath + ".pub", "--role", role]);
        Assert.True(result.ExitCode == 0, result.Stderr);
    }

    /// <summary>Starts the system ssh with the key (no agent, no known hosts, stdin closed).</summary>
    private Process StartSsh(string keyPath, params string[] args)
    {
        var psi = new ProcessStartInfo("ssh")
        {
            RedirectStandardError = true, RedirectStandardOutput = true, RedirectStandardInput = true, UseShellExecute = false,
        };
        foreach (var arg in new[]
        {
            "-i", keyPath,
            "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-p", Env.SshPort.ToString(CultureInfo.InvariantCulture),
        }.Concat(args))
        {
            psi.ArgumentList.Add(arg);
        }

        psi.Environment.Remove("SSH_AUTH_SOCK");
        var ssh = Process.Start(psi)!;
        ssh.StandardInput.Close();
        return ssh;
    }

    private string Target => Env.FleetUser + "@127.0.0.1";

    private async Task<(int ExitCode, string Stdout, string Stderr)> RunSshAsync(string keyPath, params string[] args)
    {
        using var ssh = StartSsh(keyPath, args);
        var stdout = ssh.StandardOutput.ReadToEndAsync();
        var stderr = ssh.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        try
        {
            await ssh.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            ssh.Kill(entireProcessTree: true);
            await ssh.WaitForExitAsync();
        }

        return (ssh.ExitCode, await stdout, await stderr);
    }

    [Fact]
    public async Task AnOperatorKey_RunsOnlyTheForcedGate_ForwardsNothing_AndIsRefusedOnceRemoved()
    {
        var key = await NewKeyAsync("op-int");
        await AddOperatorAsync("op-int", key, "admin");
        // A second admin, so that op-int (not the last admin) can be removed below.
        await AddOperatorAsync("op-int-2", await NewKeyAsync("op-int-2"), "admin");

        // A command of its own: sshd runs the forced eph-gate operator instead (the hub serves nothing here yet and closes).
        var command = await RunSshAsync(key, "-T", Target, "echo pwned; id");
        Assert.DoesNotContain("pwned", command.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("uid=", command.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("Permission denied", command.Stderr, StringComparison.Ordinal); // the key was accepted

        // A local forward to a port on the server (a tunnel port's place): the channel is refused, nothing connects.
        using var tunnel = new TcpListener(IPAddress.Loopback, 0);
        tunnel.Start();
        var tunnelPort = ((IPEndPoint)tunnel.LocalEndpoint).Port;
        var localPort = FreePort();
        using (var forward = StartSsh(key, "-N", "-L", $"127.0.0.1:{localPort}:127.0.0.1:{tunnelPort}", Target))
        {
            _ = forward.StandardError.ReadToEndAsync();
            try
            {
                Assert.True(await WaitUntilAsync(() => forward.HasExited || Listening(localPort)), "ssh never opened its local end");
                if (!forward.HasExited)
                {
                    using var client = new TcpClient();
                    await client.ConnectAsync(IPAddress.Loopback, localPort);
                    using var accept = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                    await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await tunnel.AcceptTcpClientAsync(accept.Token));
                    var read = await client.GetStream().ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
                    Assert.Equal(0, read); // ssh closes the local connection: the server refused the channel
                }
            }
            finally
            {
                if (!forward.HasExited)
                {
                    forward.Kill(entireProcessTree: true);
                }

                await forward.WaitForExitAsync();
            }
        }

        // A remote forward: sshd refuses to listen.
        var remotePort = FreePort();
        var remote = await RunSshAsync(key, "-N", "-o", "ExitOnForwardFailure=yes", "-R", $"127.0.0.1:{remotePort}:127.0.0.1:9", Target);
        Assert.Contains("remote port forwarding failed", remote.Stderr, StringComparison.Ordinal);
        Assert.False(Listening(remotePort));

        // Removed: the hub answers the key with nothing, so sshd refuses it.
        var removed = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["operators", "remove", "--data", Env.Data.Path, "op-int", "--yes"]);
        Assert.True(removed.ExitCode == 0, removed.Stderr);
        var refused = await RunSshAsync(key, "-T", Target, "true");
        Assert.Equal(255, refused.ExitCode);
        Assert.Contains("Permission denied", refused.Stderr, StringComparison.Ordinal);
        using var registry = Env.OpenRegistry();
        var tombstone = registry.ListOperators(includeRemoved: true).Single(o => o.Name == "op-int");
        Assert.True(tombstone.Removed);
        Assert.Null(registry.GetKey(tombstone.Fingerprint)); // never recorded as a client key along the way
    }

    private static int FreePort()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    private static bool Listening(int port) => !TunnelPortRange.IsFree("127.0.0.1", port);

    private static async Task<bool> WaitUntilAsync(Func<bool> condition)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromSeconds(20))
        {
            if (condition())
            {
                return true;
            }

            await Task.Delay(100);
        }

        return false;
    }
}
