using System.Text;
using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

/// <summary>
/// Several servers: an unreachable one gives way to the next with a jittered, growing delay; a welcomed session keeps
/// the agent where it is and resets the delay; each server keeps its own pinned known_hosts in the ssh command.
/// </summary>
public sealed class ServerSelectorTests : IDisposable
{
    private static readonly AgentServer A = new() { Host = "hub-a.example", Port = 22, User = "eph", KnownHostsFile = "/cfg/known_hosts" };
    private static readonly AgentServer B = new() { Host = "hub-b.example", Port = 2222, User = "eph", KnownHostsFile = "/cfg/known_hosts.hub-b" };
    private static readonly AgentServer C = new() { Host = "10.0.0.3", Port = 22, User = "eph", KnownHostsFile = "/cfg/known_hosts.c" };
    private static readonly SessionOutcome Unreachable = new() { Error = "ssh: connect to host hub-a.example port 22: Connection refused" };
    private static readonly SessionOutcome WelcomedThenLost = new() { ReachedWelcome = true, Error = "control channel closed" };
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-agent-servers-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static ServerSelector Selector(Func<double> random, params AgentServer[] servers)
        => new(servers, new ReconnectBackoff(5, 300, jitter: 0.2, random: random));

    [Fact]
    public void AnUnreachableServer_GivesWayToTheNext_RoundRobin_WithTheDelayDoublingUpToTheMaximum()
    {
        var selector = Selector(() => 0.5, A, B, C); // 0.5: no jitter
        var visited = new List<string>();
        var delays = new List<double>();
        for (var i = 0; i < 8; i++)
        {
            visited.Add(selector.Current.Host);
            delays.Add(selector.After(Unreachable).TotalSeconds);
        }

        Assert.Equal(["hub-a.example", "hub-b.example", "10.0.0.3", "hub-a.example", "hub-b.example", "10.0.0.3", "hub-a.example", "hub-b.example"], visited);
        Assert.Equal([5, 10, 20, 40, 80, 160, 300, 300], delays);
    }

    [Fact]
    public void AWelcomedSession_KeepsItsServer_AndResetsTheDelay_ItsLossThenMovesOnIfTheServerStaysDown()
    {
        var selector = Selector(() => 0.5, A, B);
        selector.After(Unreachable);
        selector.After(Unreachable);
        Assert.Equal(A, selector.Current); // round trip: A, B, A

        Assert.Equal(5, selector.After(WelcomedThenLost).TotalSeconds);
        Assert.Equal(A, selector.Current);

        // The hub of A died: one retry of A fails, and the agent moves to B.
        Assert.Equal(10, selector.After(Unreachable).TotalSeconds);
        Assert.Equal(B, selector.Current);
    }

    [Fact]
    public void AReconnectTheHubAskedFor_StaysOnTheServer_WithoutWaiting()
    {
        var selector = Selector(() => 0.5, A, B);
        Assert.Equal(TimeSpan.Zero, selector.After(new SessionOutcome { ReconnectNow = true }));
        Assert.Equal(A, selector.Current);
    }

    [Fact]
    public void TheJitter_SpreadsAgentsLeavingADeadHub_WithinTwentyPercent()
    {
        // Three agents whose random sources differ leave the same dead hub at the same moment.
        var delays = new[] { 0.0, 0.5, 0.999 }.Select(r => Selector(() => r, A, B).After(Unreachable).TotalSeconds).ToArray();
        Assert.Equal(4.0, delays[0], 3);
        Assert.Equal(5.0, delays[1], 3);
        Assert.Equal(6.0, delays[2], 2);
    }

    [Fact]
    public void TheSshCommand_ForEachServer_UsesThatServersKnownHostsOnly_AndStrictChecking()
    {
        var config = Config(B);
        foreach (var server in config.AllServers())
        {
            var args = SshCommandBuilder.Build(config.For(server), 40_000);
            Assert.Contains("UserKnownHostsFile=" + server.KnownHostsFile, args);
            Assert.Single(args, a => a.StartsWith("UserKnownHostsFile=", StringComparison.Ordinal));
            Assert.Contains("StrictHostKeyChecking=yes", args);
            Assert.Equal(server.User + "@" + server.Host, args[^1]);
            Assert.Equal(server.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), args[args.ToList().IndexOf("-p") + 1]);
        }
    }

    [Fact]
    public void Servers_LoadFromAgentJson_RelativeKnownHostsUnderTheConfigDir_UserDefaultsToServerUser()
    {
        File.WriteAllText(Path.Combine(_dir, AgentConfig.FileName), """
            {
              "server_host": "hub-a.example", "server_user": "eph", "identity_file": "id_ed25519", "known_hosts_file": "known_hosts",
              "servers": [ { "host": "hub-b.example", "port": 2222, "known_hosts_file": "known_hosts.hub-b" } ]
            }
            """, new UTF8Encoding(false));

        var all = AgentConfig.Load(_dir).AllServers();

        Assert.Equal(["hub-a.example", "hub-b.example"], all.Select(s => s.Host));
        Assert.Equal("eph", all[1].User);
        Assert.Equal(2222, all[1].Port);
        Assert.Equal(Path.Combine(_dir, "known_hosts.hub-b"), all[1].KnownHostsFile);
    }

    [Theory]
    [InlineData("""{ "host": "-oProxyCommand=sh", "known_hosts_file": "k" }""", "servers[0].host")]
    [InlineData("""{ "host": "hub b", "known_hosts_file": "k" }""", "servers[0].host")]
    [InlineData("""{ "host": "hub-b", "user": "-lroot", "known_hosts_file": "k" }""", "servers[0].user")]
    [InlineData("""{ "host": "hub-b", "port": 70000, "known_hosts_file": "k" }""", "servers[0].port")]
    [InlineData("""{ "host": "hub-b", "known_hosts_file": "" }""", "servers[0].known_hosts_file")]
    public void ABadServerEntry_IsRefusedByName(string entry, string named)
    {
        File.WriteAllText(Path.Combine(_dir, AgentConfig.FileName),
            $$"""{ "server_host": "hub-a", "server_user": "eph", "identity_file": "id", "known_hosts_file": "kh", "servers": [ {{entry}} ] }""");
        var ex = Assert.Throws<AgentConfigException>(() => AgentConfig.Load(_dir));
        Assert.Contains(named, ex.Message);
    }

    [Fact]
    public void NoServers_IsTheSingleServerOfBefore()
    {
        var config = Config();
        Assert.Equal([A with { }], config.AllServers());
        Assert.Throws<ArgumentException>(() => new ServerSelector([], new ReconnectBackoff(1, 2)));
    }

    private static AgentConfig Config(params AgentServer[] more) => new()
    {
        ServerHost = A.Host,
        ServerPort = A.Port,
        ServerUser = "eph",
        IdentityFile = "/cfg/id_ed25519",
        KnownHostsFile = A.KnownHostsFile,
        Servers = more.Length == 0 ? null : more,
    };
}
