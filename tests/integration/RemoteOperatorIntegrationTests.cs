using System.Diagnostics;
using System.Security.Cryptography;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// The operator service end to end through the sandbox's real sshd, gate and hub, with the operator's real client
/// (system ssh, pinned host key): fan-out, files both ways, metrics, history, Ctrl+C, a dropped ssh connection and a
/// hub restart.
/// </summary>
public sealed class RemoteOperatorIntegrationTests : IClassFixture<RemoteOperatorIntegrationTests.Fleet>, IDisposable
{
    private readonly Fleet _fleet;
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-remote-op-").FullName;

    public RemoteOperatorIntegrationTests(Fleet fleet)
    {
        _fleet = fleet;
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A sandbox with three online agents and two operator keys (operator and reader).</summary>
    public sealed class Fleet : IAsyncLifetime
    {
        public SandboxFixture Sandbox { get; } = new();
        public string OperatorKey { get; private set; } = "";
        public string ReaderKey { get; private set; } = "";
        public HostKey HostKey { get; private set; } = null!;
        public IReadOnlyList<string> Names { get; } = ["rop-1", "rop-2", "rop-3"];

        public async Task InitializeAsync()
        {
            await Sandbox.InitializeAsync();
            foreach (var name in Names)
            {
                await Sandbox.AddOnlineAgentAsync(name, "remote");
            }

            OperatorKey = await NewKeyAsync("op");
            ReaderKey = await NewKeyAsync("reader");
            using var registry = Sandbox.Env.OpenRegistry();
            registry.AddOperator("it-operator", (await File.ReadAllTextAsync(OperatorKey + ".pub")).Trim(), OperatorRole.Operator, "test");
            registry.AddOperator("it-reader", (await File.ReadAllTextAsync(ReaderKey + ".pub")).Trim(), OperatorRole.Reader, "test");
            HostKey = HostKey.Parse(await File.ReadAllTextAsync(Sandbox.Env.Data.HostKeyFile + ".pub"));
        }

        private async Task<string> NewKeyAsync(string name)
        {
            var path = Path.Combine(Sandbox.Env.WorkDirectory, $"operator-{name}");
            await SandboxEnvironment.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path]);
            return path;
        }

        public Task DisposeAsync() => Sandbox.DisposeAsync();
    }

    private SandboxEnvironment Env => _fleet.Sandbox.Env;

    private RemoteServer Connect(string keyFile) =>
        new(new ServerAddress("127.0.0.1") { Port = Env.SshPort, User = Env.FleetUser, KeyFile = keyFile }, _fleet.HostKey, Surfaces.Cli,
            new SshLinkOptions { ConfigFile = "none", OpenTimeout = TimeSpan.FromSeconds(30) });

    private static RunCommandsArgs Everyone(string command, int timeout = 60) =>
        new() { Targets = new TargetSelection { Tags = ["remote"] }, Request = new CommandRequest { Command = command, TimeoutSeconds = timeout } };

    [Fact]
    public async Task AnOperator_SearchesFansOutReadsMetrics_AndTheHistoryNamesIt()
    {
        await using var server = Connect(_fleet.OperatorKey);
        var remote = await server.GetAsync(CancellationToken.None);
        Assert.Equal("it-operator", remote.Identity.Operator);
        Assert.Equal(OperatorRole.Operator, remote.Identity.Role);

        var found = await remote.SearchAsync(new ClientQuery { Tags = ["remote"], OnlineOnly = true }, CancellationToken.None);
        Assert.Equal(_fleet.Names.Order(), found.Clients.Select(c => c.DisplayName).Order());

        var results = new List<FleetCommandResult>();
        await foreach (var r in remote.RunCommandsAsync(Everyone("echo hello-$(hostname)"), null, CancellationToken.None))
        {
            results.Add(r);
        }

        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, r.Status));
        Assert.All(results, r => Assert.StartsWith("hello-", r.Stdout, StringComparison.Ordinal));

        var metrics = new List<EtPhoneHome.Core.Health.ClientMetricsResult>();
        await foreach (var m in remote.CollectMetricsAsync(new CollectMetricsArgs { Targets = new TargetSelection { Tags = ["remote"] }, Summary = true }, null, CancellationToken.None))
        {
            metrics.Add(m);
        }

        Assert.Equal(3, metrics.Count(m => m.Status == EtPhoneHome.Core.Health.MetricsStatus.Succeeded));

        var history = await remote.QueryHistoryAsync(new HistoryQuery { Take = 50 }, withTotal: false, CancellationToken.None);
        var mine = history.Entries.Where(e => e.Actor == "it-operator" && e.Operation == OperationNames.RunCommand).ToList();
        Assert.Equal(3, mine.Count);
        Assert.All(mine, e => Assert.Equal("cli+ssh", e.Surface));
    }

    [Fact]
    public async Task AReader_IsRefusedCommandsAndFiles_WithTheRoleNamed_AndNothingRuns()
    {
        var marker = Path.Combine(_dir, "should-not-exist");
        await using var server = Connect(_fleet.ReaderKey);
        var remote = await server.GetAsync(CancellationToken.None);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in remote.RunCommandsAsync(Everyone($"touch {marker}"), null, CancellationToken.None))
            {
            }
        });
        Assert.Equal("operator", refused.Error.Needs);
        Assert.False(File.Exists(marker));

        var source = Path.Combine(_dir, "up.txt");
        await File.WriteAllTextAsync(source, "x");
        var upload = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.UploadAsync("rop-1", source, marker, null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.Forbidden, upload.Code);
        Assert.False(File.Exists(marker));

        var approve = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.ApproveKeyAsync("SHA256:x", CancellationToken.None));
        Assert.Equal("admin", approve.Error.Needs);

        // What a reader may do still works on the same connection.
        Assert.Equal(3, (await remote.SearchAsync(new ClientQuery { Tags = ["remote"] }, CancellationToken.None)).Clients.Count);
    }

    [Fact]
    public async Task AFile_GoesUpAndComesBack_Sha256Checked_AndAnInterruptedDownloadResumes()
    {
        var source = Path.Combine(_dir, "payload.bin");
        var bytes = RandomNumberGenerator.GetBytes(12 * 1024 * 1024 + 17);
        await File.WriteAllBytesAsync(source, bytes);
        var onAgent = Path.Combine(_dir, "on-agent.bin");
        var back = Path.Combine(_dir, "back.bin");
        await using var server = Connect(_fleet.OperatorKey);
        var remote = await server.GetAsync(CancellationToken.None);

        var up = await remote.UploadAsync("rop-2", source, onAgent, null, CancellationToken.None);
        Assert.Equal(Convert.ToHexString(SHA256.HashData(bytes)).ToLowerInvariant(), up.Sha256);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(onAgent));

        // A partial file from an interrupted download: the next download resumes after it.
        var partial = Path.Combine(_dir, FileLimits.PartialName("back.bin"));
        await File.WriteAllBytesAsync(partial, bytes.AsSpan(0, 5 * 1024 * 1024).ToArray());
        var down = await remote.DownloadAsync("rop-2", onAgent, back, null, CancellationToken.None);
        Assert.Equal(5 * 1024 * 1024, down.ResumedFrom);
        Assert.Equal(up.Sha256, down.Sha256);
        Assert.Equal(bytes, await File.ReadAllBytesAsync(back));
        Assert.False(File.Exists(partial));
    }

    [Fact]
    public async Task FilesAreWrittenReadAndListed_OnEveryTarget_AndRateLimitsRead()
    {
        var folder = Path.Combine(_dir, "files-" + Guid.NewGuid().ToString("N")[..6]);
        var everyone = new TargetSelection { Tags = ["remote"] };
        await using var server = Connect(_fleet.OperatorKey);
        var remote = await server.GetAsync(CancellationToken.None);

        var written = new List<FleetFileOutcome<WriteFileResult>>();
        await foreach (var o in remote.WriteFilesAsync(everyone, new WriteFileParams { Path = Path.Combine(folder, "motd"), Content = "hello fleet", CreateParents = true }, 8, null, CancellationToken.None))
        {
            written.Add(o);
        }

        Assert.Equal(3, written.Count(o => o.Status == CommandStatus.Succeeded));
        var read = new List<FleetFileOutcome<ReadFileResult>>();
        await foreach (var o in remote.ReadFilesAsync(everyone, new ReadFileParams { Path = Path.Combine(folder, "motd") }, 8, null, CancellationToken.None))
        {
            read.Add(o);
        }

        Assert.Equal(_fleet.Names.Order(), read.Select(o => o.Target.DisplayName).Order());
        Assert.All(read, o => Assert.Equal("hello fleet", o.Value!.Content));
        Assert.All(read, o => Assert.Null(o.Target.Session));
        var listed = new List<FleetFileOutcome<ListFilesResult>>();
        await foreach (var o in remote.ListFilesAsync(new TargetSelection { Clients = ["rop-1"] }, new ListFilesParams { Path = folder }, 8, null, CancellationToken.None))
        {
            listed.Add(o);
        }

        Assert.Contains(Assert.Single(listed).Value!.Entries, e => e.Name == "motd");
        var stats = await remote.RateLimitStatsAsync(["rop-1"], CancellationToken.None);
        Assert.Equal(Assert.Single(stats).Uuid, read.Single(o => o.Target.DisplayName == "rop-1").Target.Uuid);

        await using var reader = Connect(_fleet.ReaderKey);
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in (await reader.GetAsync(CancellationToken.None)).ReadFilesAsync(everyone, new ReadFileParams { Path = "/etc/shadow" }, 8, null, CancellationToken.None))
            {
            }
        });
        Assert.Equal("operator", refused.Error.Needs);
    }

    [Fact]
    public async Task CtrlC_StopsTheRemoteCommands_OnTheAgents()
    {
        var tag = Random.Shared.Next(100_000, 999_999).ToString(System.Globalization.CultureInfo.InvariantCulture); // a sleep no one else runs
        await using var server = Connect(_fleet.OperatorKey);
        var remote = await server.GetAsync(CancellationToken.None);
        using var ctrlC = new CancellationTokenSource();
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in remote.RunCommandsAsync(Everyone($"sleep {tag}", timeout: 300), null, ctrlC.Token))
            {
                results.Add(r);
            }
        });
        await SandboxEnvironment.WaitUntilAsync(() => Processes(tag) >= 3 ? (object)true : null, TimeSpan.FromSeconds(20), "the three sleeps");
        var clock = Stopwatch.StartNew();
        await ctrlC.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.NotEqual(CommandStatus.Succeeded, r.Status));
        await SandboxEnvironment.WaitUntilAsync(() => Processes(tag) == 0 ? (object)true : null, TimeSpan.FromSeconds(20), "the sleeps to be killed");
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task ADroppedSshConnection_MidFanOut_GivesEveryTargetAResult_AndTheNextRequestReconnects()
    {
        await using var server = Connect(_fleet.OperatorKey);
        var remote = await server.GetAsync(CancellationToken.None);
        var ssh = SshPids();
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in remote.RunCommandsAsync(Everyone("sleep 30"), null, CancellationToken.None))
            {
                results.Add(r);
            }
        });
        await Task.Delay(TimeSpan.FromSeconds(2));
        foreach (var pid in ssh)
        {
            Process.GetProcessById(pid).Kill(); // the laptop's ssh dies (network gone, lid closed)
        }

        await run.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(3, results.Count);
        Assert.All(results, r => Assert.Equal(RemoteOperator.ConnectionLostMessage, r.Error));

        var again = await server.GetAsync(CancellationToken.None);
        Assert.Equal(2, server.Connects);
        Assert.Equal(3, (await again.SearchAsync(new ClientQuery { Tags = ["remote"] }, CancellationToken.None)).Clients.Count);
    }

    [Fact]
    public async Task AHubRestart_IsSurvived_TheNextRequestReconnects()
    {
        await using var server = Connect(_fleet.OperatorKey);
        Assert.Equal(3, (await (await server.GetAsync(CancellationToken.None)).SearchAsync(new ClientQuery { Tags = ["remote"] }, CancellationToken.None)).Clients.Count);
        await Env.StopHubAsync();
        await Env.StartHubAsync();
        await Env.WaitOnlineAsync(_fleet.Names, SandboxFixture.Patience);

        var results = new List<FleetCommandResult>();
        await foreach (var r in (await server.GetAsync(CancellationToken.None)).RunCommandsAsync(Everyone("true"), null, CancellationToken.None))
        {
            results.Add(r);
        }

        Assert.Equal(2, server.Connects);
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, r.Status));
    }

    /// <summary>The ssh processes this test process started (children of it).</summary>
    private static List<int> SshPids()
    {
        var me = Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Directory.EnumerateDirectories("/proc")
            .Select(Path.GetFileName)
            .Where(n => int.TryParse(n, out _))
            .Select(n => int.Parse(n!, System.Globalization.CultureInfo.InvariantCulture))
            .Where(pid =>
            {
                try
                {
                    var stat = File.ReadAllText($"/proc/{pid}/stat");
                    var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                    return fields[1] == me && File.ReadAllText($"/proc/{pid}/comm").Trim() == "ssh";
                }
                catch (IOException)
                {
                    return false;
                }
            })
            .ToList();
    }

    private static int Processes(string tag) => Directory.EnumerateDirectories("/proc")
        .Count(d =>
        {
            try
            {
                var cmd = File.ReadAllText(Path.Combine(d, "cmdline")).Replace('\0', ' ');
                return cmd == $"sleep {tag} ";
            }
            catch (IOException)
            {
                return false;
            }
            catch (UnauthorizedAccessException)
            {
                return false;
            }
        });
}
