using System.Globalization;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;
using Xunit.Abstractions;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// A real agent gives back the memory a burst of work grew once it is idle: commands, file reads and writes, a large
/// listing and a transfer fill the GC heap and the runtime's shared array pool; the agent's idle trim must return the
/// anonymous (heap) memory to near what it was fresh.
/// </summary>
public sealed class AgentMemoryIntegrationTests(SandboxFixture fixture, ITestOutputHelper output) : IClassFixture<SandboxFixture>, IDisposable
{
    /// <summary>Anonymous memory the idle agent may keep above its fresh level.</summary>
    private const long AllowedGrowthKiB = 6 * 1024;

    private readonly string _dir = Directory.CreateTempSubdirectory("eph-mem-it-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public async Task AfterABurstOfWork_TheIdleAgentReturnsToItsFreshMemory()
    {
        var (agent, client) = await fixture.AddOnlineAgentAsync("mem-burst");
        var pid = agent.Process!.Pid;
        using var registry = fixture.Env.OpenRegistry();
        var session = registry.GetOpenSession(client.Uuid)!;
        var target = FleetTargets.FromClients(registry, registry, [registry.GetClient(client.Uuid)!]).Single();
        var listed = Path.Combine(_dir, "many");
        Directory.CreateDirectory(listed);
        for (var i = 0; i < 3000; i++)
        {
            File.WriteAllText(Path.Combine(listed, $"file-with-a-longer-name-{i:D5}.txt"), "x");
        }

        var payload = new byte[4 * 1024 * 1024];
        new Random(4).NextBytes(payload);
        var source = Path.Combine(_dir, "source.bin");
        var big = new byte[32 * 1024 * 1024];
        new Random(32).NextBytes(big);
        await File.WriteAllBytesAsync(source, big);

        await Task.Delay(TimeSpan.FromSeconds(3));
        var fresh = AnonymousKiB(pid);

        // The burst.
        await using (var tunnel = await TunnelClient.ConnectAsync("127.0.0.1", session.TunnelPort, session.Secret, TimeSpan.FromSeconds(10), CancellationToken.None))
        {
            for (var i = 0; i < 100; i++)
            {
                await tunnel.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "true" }, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
            }

            for (var i = 0; i < 3; i++)
            {
                var path = Path.Combine(_dir, $"written-{i}.bin");
                await tunnel.InvokeAsync(FileMethods.WriteFile, new WriteFileParams { Path = path, Content = Convert.ToBase64String(payload), Encoding = FileEncodings.Base64 },
                    FileJson.Default.WriteFileParams, FileJson.Default.WriteFileResult, CancellationToken.None);
                var read = await tunnel.InvokeAsync(FileMethods.ReadFile, new ReadFileParams { Path = path }, FileJson.Default.ReadFileParams, FileJson.Default.ReadFileResult, CancellationToken.None);
                Assert.Equal(payload.Length, read.Size);
                var listing = await tunnel.InvokeAsync(FileMethods.ListFiles, new ListFilesParams { Path = listed }, FileJson.Default.ListFilesParams, FileJson.Default.ListFilesResult, CancellationToken.None);
                Assert.Equal(3000, listing.Entries.Count());
            }
        }

        var transfers = new FileTransferClient();
        await transfers.UploadAsync(target, source, Path.Combine(_dir, "up.bin"), null, CancellationToken.None);
        await transfers.DownloadAsync(target, Path.Combine(_dir, "up.bin"), Path.Combine(_dir, "down.bin"), null, CancellationToken.None);
        var busy = AnonymousKiB(pid);
        Assert.True(busy > fresh + AllowedGrowthKiB, $"the burst did not grow the agent's memory (fresh {fresh} KiB, after the burst {busy} KiB): this test would prove nothing");

        // Idle: the trim must bring the anonymous memory back near its fresh level (the series of collections spans
        // about two minutes; the shared array pool lets buffers go only after 30–60 s unused).
        var idleSince = DateTime.UtcNow;
        var deadline = idleSince.AddSeconds(170);
        var idle = busy;
        while (DateTime.UtcNow < deadline)
        {
            await Task.Delay(TimeSpan.FromSeconds(2));
            idle = AnonymousKiB(pid);
            if (idle <= fresh + AllowedGrowthKiB)
            {
                break;
            }
        }

        output.WriteLine($"anonymous KiB: fresh {fresh}, after the burst {busy}, idle {idle} after {(DateTime.UtcNow - idleSince).TotalSeconds:0} s");
        Assert.True(idle <= fresh + AllowedGrowthKiB,
            $"the idle agent kept its burst's memory: anonymous {fresh} KiB fresh, {busy} KiB after the burst, {idle} KiB after 170 s idle (allowed: fresh + {AllowedGrowthKiB} KiB)");
    }

    /// <summary>Anonymous memory of a process (heap, GC regions, stacks) from /proc/PID/smaps_rollup, in KiB.</summary>
    private static long AnonymousKiB(int pid)
    {
        var line = File.ReadLines($"/proc/{pid}/smaps_rollup").First(l => l.StartsWith("Anonymous:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
    }
}
