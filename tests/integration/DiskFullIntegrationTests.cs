using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// Issue 12 item 11 end to end: the hub's data directory on a small tmpfs (sshd, hub, gate and a real agent) that fills
/// up while a client is online, then gets its space back.
/// </summary>
public sealed class DiskFullIntegrationTests(ITestOutputHelper output)
{
    [Fact]
    public async Task AFullRegistryDisk_KeepsTheClientOnline_RefusesNewcomers_FailsVerbsPlainly_AndRecovers()
    {
        await using var env = await SandboxEnvironment.CreateAsync(new SandboxOptions { HeartbeatSeconds = 1, ReconnectInitialSeconds = 0.5, ReconnectMaxSeconds = 2 });
        var data = env.Data.Path;
        var saved = data + ".saved";
        await SandboxEnvironment.RunAsync("cp", ["-a", data, saved]);
        await SandboxEnvironment.RunAsync("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", data]);
        var filler = Path.Combine(data, "filler");
        try
        {
            await SandboxEnvironment.RunAsync("cp", ["-a", saved + "/.", data]);
            await env.StartSshdAsync();
            await env.StartHubAsync();

            var agent = await env.AddAgentAsync("disk-1");
            using (var registry = env.OpenRegistry())
            {
                var key = await SandboxEnvironment.WaitUntilAsync(() => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedDisplayName == "disk-1"),
                    SandboxFixture.Patience, "a pending key from disk-1");
                registry.ApproveKey(key.Fingerprint, "test");
            }

            var client = (await env.WaitOnlineAsync(["disk-1"], SandboxFixture.Patience))[0];
            long sessionId;
            using (var registry = env.OpenRegistry())
            {
                sessionId = registry.GetOpenSession(client.Uuid)!.Id;
            }

            // The disk fills up; more than three heartbeat intervals pass (what missed heartbeats would take).
            await FillAsync(filler);
            await Task.Delay(TimeSpan.FromSeconds(5));

            var hubLog = await File.ReadAllTextAsync(env.Hub!.LogFile);
            Assert.Single(Lines(hubLog), l => l.Contains($"registry: disk full at {data} (", StringComparison.Ordinal)
                                             && l.Contains("sessions are kept", StringComparison.Ordinal));
            Assert.DoesNotContain("offline", hubLog, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", hubLog, StringComparison.Ordinal);
            Assert.DoesNotContain("dispatch pass failed", hubLog, StringComparison.Ordinal);
            Assert.Single(Lines(hubLog), l => l.Contains("deliveries paused: registry: disk full", StringComparison.Ordinal));
            Assert.False(agent.Process!.HasExited);

            // An operator's verb must record its history first: it fails, naming the condition.
            var exec = await SandboxEnvironment.RunForResultAsync(env.ServerExecutable, ["exec", "--data", data, "--client", client.Uuid, "--", "echo", "ok"]);
            output.WriteLine($"exec on a full disk: exit {exec.ExitCode}: {exec.Stdout}{exec.Stderr}");
            Assert.NotEqual(0, exec.ExitCode);
            Assert.Contains($"eph-server: warning: registry: disk full at {data} (0 MiB free); heartbeats are not being recorded", exec.Stderr, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", exec.Stderr, StringComparison.Ordinal);

            // A new machine is told why it is refused.
            var newcomer = await env.AddAgentAsync("disk-2");
            await SandboxEnvironment.WaitUntilAsync(() => File.Exists(newcomer.LogFile) && File.ReadAllText(newcomer.LogFile).Contains("out of disk space", StringComparison.Ordinal) ? "refused" : null,
                SandboxFixture.Patience, "disk-2 to be refused for lack of disk space");

            // Space returns: the hub says so, the same session carries on, and verbs work again.
            File.Delete(filler);
            await SandboxEnvironment.WaitUntilAsync(() => File.ReadAllText(env.Hub!.LogFile).Contains("registry: writable again", StringComparison.Ordinal) ? "writable" : null,
                SandboxFixture.Patience, "the hub to notice the space");
            using (var registry = env.OpenRegistry())
            {
                Assert.Equal(sessionId, registry.GetOpenSession(client.Uuid)!.Id);
                // Online again once its next heartbeat is recorded: "writable again" may come from another writer first
                // (the refused newcomer retrying), while the last heartbeat recorded is still the stale one from before.
                await SandboxEnvironment.WaitUntilAsync(() => registry.GetClient(client.Uuid)!.Online ? "online" : null,
                    SandboxFixture.Patience, "the client to show online again on its next heartbeat");
                Assert.Equal(sessionId, registry.GetOpenSession(client.Uuid)!.Id);
            }

            var again = await SandboxEnvironment.RunForResultAsync(env.ServerExecutable, ["exec", "--data", data, "--client", client.Uuid, "--", "echo", "ok"]);
            Assert.Equal(0, again.ExitCode);
            Assert.Contains("ok", again.Stdout, StringComparison.Ordinal);
            output.WriteLine(File.ReadAllText(env.Hub!.LogFile));
        }
        finally
        {
            File.Delete(filler);
            await env.StopHubAsync();
            await SandboxEnvironment.RunForResultAsync("umount", ["-l", data]);
            await SandboxEnvironment.RunForResultAsync("rm", ["-rf", saved]);
        }
    }

    private static IEnumerable<string> Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    private static async Task FillAsync(string path)
    {
        foreach (var size in new[] { 64 * 1024, 4096, 512 })
        {
            await using var file = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite, 1);
            var chunk = new byte[size];
            try
            {
                while (true)
                {
                    await file.WriteAsync(chunk);
                }
            }
            catch (IOException)
            {
                // Full at this chunk size; the next, smaller one takes what is left.
            }
        }
    }
}
