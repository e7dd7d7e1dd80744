using EtPhoneHome.Agent;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>Ctrl+C end to end at the Core level: cancelling a fan-out closes its tunnel connections, and the agent kills the commands.</summary>
public sealed class FleetCancellationTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-cancel-").FullName;
    private readonly List<(RpcServer Server, byte[] Secret, string Uuid)> _agents = [];

    public Task InitializeAsync()
    {
        for (var i = 0; i < 3; i++)
        {
            var server = new RpcServer();
            server.Start();
            var secret = TunnelHandshake.NewSecret();
            var uuid = $"00000000-0000-0000-0000-00000000000{i}";
            server.SetSession(secret, uuid, null);
            _agents.Add((server, secret, uuid));
        }

        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        foreach (var agent in _agents)
        {
            await agent.Server.DisposeAsync();
        }

        Directory.Delete(_dir, recursive: true);
    }

    private IReadOnlyList<FleetTarget> Targets() => _agents.Select((a, i) => new FleetTarget(a.Uuid, $"agent-{i}", new SessionRecord
    {
        Id = i,
        Uuid = a.Uuid,
        Fingerprint = "SHA256:x",
        Host = "localhost",
        TunnelPort = a.Server.Port,
        Secret = a.Secret,
        ConnectedAt = DateTimeOffset.UtcNow,
        LastHeartbeat = DateTimeOffset.UtcNow,
    })).ToList();

    private static bool Alive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return false; // gone between the look and the read (ESRCH, or the directory went)
        }
    }

    [Fact]
    public async Task CancellingAFanOut_KillsEveryRemoteProcess_Promptly()
    {
        // Each command records its shell's pid and its sleep's pid, then sleeps far longer than the test.
        var command = $"echo $$ > '{_dir}'/$(date +%s%N).pid; sleep 300 & echo $! > '{_dir}'/$(date +%s%N).child.pid; wait";
        using var cts = new CancellationTokenSource();
        var executor = new FleetExecutor(new TunnelCommandTransport());
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in executor.RunAsync(Targets(), new RunCommandParams { Cmd = command, TimeoutS = 3600 }, null, cts.Token))
            {
                results.Add(r);
            }
        });

        var pids = await WaitForAsync(() =>
        {
            var files = Directory.GetFiles(_dir, "*.pid");
            var values = files.Select(f => File.ReadAllText(f).Trim()).Where(t => t.Length > 0).Select(int.Parse).ToList();
            return values.Count == 6 ? values : null;
        });
        Assert.All(pids, pid => Assert.True(Alive(pid)));

        var clock = System.Diagnostics.Stopwatch.StartNew();
        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"cancellation took {clock.Elapsed}");
        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.Equal("cancelled", r.Error));

        // The agents saw their connections close and killed the process groups, background sleep included.
        await WaitForAsync(() => pids.All(pid => !Alive(pid)) ? pids : null);
    }

    [Fact]
    public async Task ClosingTheConnection_KillsTheCommand_AndTheConnectionLeavesNoAnswer()
    {
        var (server, secret, _) = _agents[0];
        var pidFile = Path.Combine(_dir, "one.pid");
        var client = await TunnelClient.ConnectAsync("127.0.0.1", server.Port, secret, TimeSpan.FromSeconds(10), CancellationToken.None);
        var running = client.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = $"echo $$ > '{pidFile}'; exec sleep 300", TimeoutS = 3600 },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        var pid = await WaitForAsync(() => File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out var p) ? (int?)p : null);
        Assert.True(Alive(pid!.Value));

        client.Dispose();
        await WaitForAsync(() => Alive(pid.Value) ? null : (object)true);
        await Assert.ThrowsAnyAsync<Exception>(() => running);
    }

    private static async Task<T> WaitForAsync<T>(Func<T?> probe)
    {
        var deadline = DateTime.UtcNow.AddSeconds(15);
        while (true)
        {
            if (probe() is { } value)
            {
                return value;
            }

            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 15 s");
            await Task.Delay(20);
        }
    }
}
