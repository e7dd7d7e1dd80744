using System.Diagnostics;
using System.Security.Cryptography;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>Files, transfers, path policy and fan-out through real agents, a real sshd and real reverse tunnels.</summary>
public sealed class FilesIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-files-it-").FullName;

    private SandboxEnvironment Env => fixture.Env;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string P(string name) => Path.Combine(_dir, name);

    /// <summary>An agent restricted to <paramref name="allowed"/> by its own config, approved and online.</summary>
    private async Task<(SandboxAgent Agent, FleetTarget Target)> OnlineAgentAsync(string name, string? allowed = null)
    {
        var agent = await Env.AddAgentAsync(name, start: false);
        if (allowed is not null)
        {
            agent.EditConfig(c => c["allowed_paths"] = new System.Text.Json.Nodes.JsonArray(allowed));
        }

        agent.Start();
        var key = await fixture.PendingKeyOfAsync(name);
        using var registry = Env.OpenRegistry();
        registry.ApproveKey(key.Fingerprint, "test");
        var client = (await Env.WaitOnlineAsync([name], SandboxFixture.Patience))[0];
        return (agent, FleetTargets.FromClients(registry, registry, [registry.GetClient(client.Uuid)!]).Single());
    }

    private static byte[] RandomBytes(int count)
    {
        var bytes = new byte[count];
        new Random(count).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task EveryFileOperation_ThroughARealTunnel_AndThePathPolicyHolds()
    {
        Directory.CreateDirectory(P("allowed"));
        Directory.CreateDirectory(P("outside"));
        File.WriteAllText(P("outside/secret.txt"), "secret");
        File.CreateSymbolicLink(P("allowed/escape"), P("outside"));
        var (agent, target) = await OnlineAgentAsync("files-ops", P("allowed"));
        using var registry = Env.OpenRegistry();
        var guard = new OperationGuard(registry, OperatorContext.ForSurface(Surfaces.Cli));
        var ops = new RemoteFileOperations { Guard = guard };
        var transfers = new FileTransferClient { Guard = guard };

        var written = await ops.WriteAsync(target, new WriteFileParams { Path = P("allowed/conf/app.conf"), Content = "mode=fast\n" }, CancellationToken.None);
        Assert.True(written.Created);
        var read = await ops.ReadAsync(target, new ReadFileParams { Path = P("allowed/conf/app.conf") }, CancellationToken.None);
        Assert.Equal("mode=fast\n", read.Content);
        File.WriteAllBytes(P("allowed/bin.dat"), [0, 1, 2, 255]);
        var binary = await ops.ReadAsync(target, new ReadFileParams { Path = P("allowed/bin.dat") }, CancellationToken.None);
        Assert.Equal(FileEncodings.Base64, binary.Encoding);
        Assert.Equal(new byte[] { 0, 1, 2, 255 }, Convert.FromBase64String(binary.Content));
        var listing = await ops.ListAsync(target, new ListFilesParams { Path = P("allowed"), Recursive = true }, CancellationToken.None);
        Assert.Equal(["bin.dat", "conf", "conf/app.conf", "escape"], listing.Entries.Select(e => e.Name));
        Assert.Equal(FileEntryTypes.Symlink, listing.Entries.Single(e => e.Name == "escape").Type);

        var bytes = RandomBytes(8 * 1024 * 1024);
        File.WriteAllBytes(P("upload.bin"), bytes);
        var up = await transfers.UploadAsync(target, P("upload.bin"), P("allowed/drop/"), null, CancellationToken.None);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant(), up.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(P("allowed/drop/upload.bin")));
        var down = await transfers.DownloadAsync(target, P("allowed/drop/upload.bin"), P("download.bin"), null, CancellationToken.None);
        Assert.Equal(up.Sha256, down.Sha256);
        Assert.Equal(bytes, File.ReadAllBytes(P("download.bin")));

        // Denied: outside, through a planted link, a write through the link, a command cwd through the link.
        foreach (var attempt in new Func<Task>[]
        {
            () => ops.ReadAsync(target, new ReadFileParams { Path = P("outside/secret.txt") }, CancellationToken.None),
            () => ops.ReadAsync(target, new ReadFileParams { Path = P("allowed/escape/secret.txt") }, CancellationToken.None),
            () => ops.WriteAsync(target, new WriteFileParams { Path = P("allowed/escape/new.txt"), Content = "x" }, CancellationToken.None),
            () => transfers.DownloadAsync(target, P("allowed/escape/secret.txt"), P("stolen.txt"), null, CancellationToken.None),
            () => new TunnelCommandTransport().RunAsync(target, new RunCommandParams { Cmd = "touch stolen", Cwd = P("allowed/escape") }, CancellationToken.None),
        })
        {
            Assert.Equal(RpcErrorCodes.PathDenied, (await Assert.ThrowsAsync<RpcException>(attempt)).Code);
        }

        Assert.False(File.Exists(P("outside/new.txt")));
        Assert.False(File.Exists(P("outside/stolen")));
        Assert.False(File.Exists(P("stolen.txt")));

        // The operations are in the history, and the verbs work through the same tunnel.
        var history = registry.ListAudit(target.Uuid, 100).Select(a => a.Operation).ToHashSet();
        Assert.Superset(new HashSet<string> { "read_file", "write_file", "list_files", "upload_file", "download_file" }, history);
        var json = await Env.RunServerVerbAsync(["ls", "--data", Env.Data.Path, "--client", "files-ops", P("allowed/conf"), "--json"]);
        Assert.Contains("\"name\":\"app.conf\"", json);
        await agent.StopAsync();
    }

    [Fact]
    public async Task AnAllowedPathsEdit_AppliesToTheNextRequest_OnALiveSession()
    {
        // `set --allowed-path` used to print the new list while reads outside it kept succeeding until a reconnect.
        Directory.CreateDirectory(P("open"));
        Directory.CreateDirectory(P("narrow"));
        File.WriteAllText(P("open/a.txt"), "open");
        File.WriteAllText(P("narrow/b.txt"), "narrow");
        var (agent, target) = await OnlineAgentAsync("files-policy");
        using var registry = Env.OpenRegistry();
        var sessionBefore = registry.GetOpenSession(target.Uuid)!.Id;
        async Task<(int Exit, string Out, string Err)> Read(string path) =>
            await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable, ["read", "--data", Env.Data.Path, "--client", target.Uuid, path]);

        Assert.Equal(0, (await Read(P("open/a.txt"))).Exit);

        var set = await SandboxEnvironment.RunForResultAsync(Env.ServerExecutable,
            ["set", "--data", Env.Data.Path, target.Uuid, "--allowed-path", P("narrow")]);
        Assert.Equal(0, set.ExitCode);

        var denied = await Read(P("open/a.txt"));
        Assert.NotEqual(0, denied.Exit);
        Assert.Contains("PATH_DENIED", denied.Out + denied.Err);
        var allowed = await Read(P("narrow/b.txt"));
        Assert.Equal(0, allowed.Exit);
        Assert.Contains("narrow", allowed.Out);
        // Same session: nothing reconnected.
        Assert.Equal(sessionBefore, registry.GetOpenSession(target.Uuid)!.Id);
        await agent.StopAsync();
    }

    [Fact]
    public async Task Upload_KilledMidStream_ResumesThroughTheTunnel()
    {
        Directory.CreateDirectory(P("in"));
        var (agent, target) = await OnlineAgentAsync("files-resume");
        var bytes = RandomBytes(64 * 1024 * 1024);
        File.WriteAllBytes(P("big.bin"), bytes);

        // Kill the operator's side of the connection once 16 MiB went through (as a killed operator process would).
        using (var cts = new CancellationTokenSource())
        {
            var progress = new Watch(16 * 1024 * 1024, cts);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                new FileTransferClient { MaxAttempts = 1 }.UploadAsync(target, P("big.bin"), P("in/big.bin"), progress, cts.Token));
        }

        Assert.False(File.Exists(P("in/big.bin")));
        var up = await new FileTransferClient().UploadAsync(target, P("big.bin"), P("in/big.bin"), null, CancellationToken.None);
        Assert.True(up.ResumedFrom >= 8 * 1024 * 1024, $"resumed from {up.ResumedFrom}");
        Assert.Equal(bytes, File.ReadAllBytes(P("in/big.bin")));
        Assert.False(File.Exists(P("in/" + FileLimits.PartialName("big.bin"))));

        // And a download resumes from its local partial the same way.
        using (var cts = new CancellationTokenSource())
        {
            var progress = new Watch(16 * 1024 * 1024, cts);
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
                new FileTransferClient { MaxAttempts = 1 }.DownloadAsync(target, P("in/big.bin"), P("back.bin"), progress, cts.Token));
        }

        var down = await new FileTransferClient().DownloadAsync(target, P("in/big.bin"), P("back.bin"), null, CancellationToken.None);
        Assert.True(down.ResumedFrom > 0);
        Assert.Equal(bytes, File.ReadAllBytes(P("back.bin")));
        await agent.StopAsync();
    }

    [Fact]
    public async Task FanOutOf100_OnlineOfflineSlowFailingAndUnreachable_AnswersEveryTarget()
    {
        var agents = new List<(SandboxAgent Agent, FleetTarget Target)>();
        foreach (var name in new[] { "fan-ok", "fan-slow", "fan-fail" })
        {
            agents.Add(await OnlineAgentAsync(name));
        }

        // The command learns its agent's role from a file named after its parent (the agent's) pid.
        File.WriteAllText(P($"role-{agents[1].Agent.Process!.Pid}"), "slow");
        File.WriteAllText(P($"role-{agents[2].Agent.Process!.Pid}"), "fail");
        var command = $"role=$(cat '{_dir}'/role-$PPID 2>/dev/null || echo ok); case $role in slow) sleep 3;; fail) echo broken >&2; exit 7;; esac; echo done";

        var targets = new List<FleetTarget>();
        void Add(int count, string prefix, Func<int, FleetTarget> make)
        {
            for (var i = 0; i < count; i++)
            {
                targets.Add(make(i) with { DisplayName = $"{prefix}-{i}" });
            }
        }

        Add(30, "ok", i => agents[0].Target with { Uuid = $"ok-{i}" });
        Add(30, "slow", i => agents[1].Target with { Uuid = $"slow-{i}" });
        Add(20, "fail", i => agents[2].Target with { Uuid = $"fail-{i}" });
        Add(10, "offline", i => new FleetTarget($"offline-{i}", "", null));
        Add(10, "gone", i => agents[0].Target with { Uuid = $"gone-{i}", Session = agents[0].Target.Session! with { TunnelPort = 1 } });

        var clock = Stopwatch.StartNew();
        var results = new List<FleetCommandResult>();
        await foreach (var r in new FleetExecutor(new TunnelCommandTransport()).RunAsync(targets, new RunCommandParams { Cmd = command, TimeoutS = 30 }, new FleetOptions { ThrottleLimit = 64 }))
        {
            results.Add(r);
        }

        Assert.Equal(100, results.Count);
        Assert.Equal(100, results.Select(r => r.Uuid).Distinct().Count());
        Assert.All(results.Where(r => r.DisplayName.StartsWith("ok-", StringComparison.Ordinal)), r => Assert.Equal((CommandStatus.Succeeded, "done\n"), (r.Status, r.Stdout)));
        Assert.All(results.Where(r => r.DisplayName.StartsWith("slow-", StringComparison.Ordinal)), r => Assert.True(r.Status == CommandStatus.Succeeded && r.DurationMs >= 3000));
        Assert.All(results.Where(r => r.DisplayName.StartsWith("fail-", StringComparison.Ordinal)), r => Assert.Equal((CommandStatus.Failed, 7, "broken\n"), (r.Status, r.ExitCode, r.Stderr)));
        Assert.All(results.Where(r => r.DisplayName.StartsWith("offline-", StringComparison.Ordinal)), r => Assert.Equal(CommandStatus.Offline, r.Status));
        Assert.All(results.Where(r => r.DisplayName.StartsWith("gone-", StringComparison.Ordinal)), r => Assert.Equal(CommandStatus.Error, r.Status));
        // Offline answers come first, before any command finished.
        Assert.All(results.Take(10), r => Assert.Equal(CommandStatus.Offline, r.Status));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"fan-out took {clock.Elapsed}");

        foreach (var (agent, _) in agents)
        {
            await agent.StopAsync();
        }
    }

    [Fact]
    public async Task CancellingAFanOutOfSleep300_KillsTheRemoteProcesses()
    {
        var (agent, target) = await OnlineAgentAsync("fan-cancel");
        var targets = Enumerable.Range(0, 4).Select(i => target with { Uuid = $"c-{i}", DisplayName = $"c-{i}" }).ToList();
        var command = $"echo $$ > '{_dir}'/$$.pid; exec sleep 300";
        using var cts = new CancellationTokenSource();
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in new FleetExecutor(new TunnelCommandTransport()).RunAsync(targets, new RunCommandParams { Cmd = command, TimeoutS = 3600 }, null, cts.Token))
            {
                results.Add(r);
            }
        });

        var pids = await SandboxEnvironment.WaitUntilAsync(() =>
        {
            var found = Directory.GetFiles(_dir, "*.pid").Select(f => File.ReadAllText(f).Trim()).Where(t => t.Length > 0).Select(int.Parse).ToList();
            return found.Count == 4 ? found : null;
        }, SandboxFixture.Patience, "4 remote sleeps");
        Assert.All(pids, pid => Assert.True(Directory.Exists($"/proc/{pid}")));

        var clock = Stopwatch.StartNew();
        await cts.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"cancel took {clock.Elapsed}");
        Assert.Equal(4, results.Count);
        Assert.All(results, r => Assert.Equal("cancelled", r.Error));
        await SandboxEnvironment.WaitUntilAsync(() => pids.All(pid => !Alive(pid)) ? (object)true : null, TimeSpan.FromSeconds(15), "the remote sleeps to be killed");
        await agent.StopAsync();
    }

    private static bool Alive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    /// <summary>Cancels once the transfer passes a byte count: the operator process "dies" mid-stream.</summary>
    private sealed class Watch(long limit, CancellationTokenSource cts) : IProgress<long>
    {
        public void Report(long value)
        {
            if (value >= limit)
            {
                cts.Cancel();
            }
        }
    }
}
