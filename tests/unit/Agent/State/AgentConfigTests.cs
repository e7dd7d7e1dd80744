using System.Text;
using EtPhoneHome.Agent;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class AgentConfigTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-agent-cfg-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Config_SaveThenLoad_RoundTrips()
    {
        var config = new AgentConfig
        {
            ServerHost = "gw.example.net",
            ServerPort = 2222,
            ServerUser = "eph",
            IdentityFile = Path.Combine(_dir, "id_ed25519"),
            KnownHostsFile = Path.Combine(_dir, "known_hosts"),
            DisplayName = "build box",
            Purpose = "ci",
            Tags = ["linux", "gpu"],
            AllowedPaths = ["/srv"],
            HeartbeatS = 0.5,
            ReconnectInitialS = 0.25,
            ReconnectMaxS = 2,
            MaxOutputBytes = 4096,
            RpcPort = 0,
        };
        config.Save(_dir);

        var loaded = AgentConfig.Load(_dir);
        Assert.Equal(config with { Tags = null, AllowedPaths = null }, loaded with { Tags = null, AllowedPaths = null });
        Assert.Equal(config.Tags, loaded.Tags);
        Assert.Equal(config.AllowedPaths, loaded.AllowedPaths);
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(Path.Combine(_dir, AgentConfig.FileName)));
        }
    }

    [Fact]
    public void Config_FileUsesSnakeCaseNames()
    {
        new AgentConfig { ServerHost = "h", ServerUser = "u", IdentityFile = "k", KnownHostsFile = "kh", ReconnectInitialS = 1.5 }.Save(_dir);
        var text = File.ReadAllText(Path.Combine(_dir, AgentConfig.FileName));
        Assert.Contains("\"server_host\"", text);
        Assert.Contains("\"reconnect_initial_s\": 1.5", text);
        Assert.Contains("\"known_hosts_file\"", text);
        Assert.DoesNotContain("\"uuid\"", text);
    }

    [Fact]
    public void Config_MinimalOperatorFile_GetsDefaultsAndRelativePathsResolve()
    {
        File.WriteAllText(Path.Combine(_dir, AgentConfig.FileName),
            "{\"server_host\":\"h\",\"server_user\":\"u\",\"identity_file\":\"id_ed25519\",\"known_hosts_file\":\"known_hosts\"}");
        var config = AgentConfig.Load(_dir);
        Assert.Equal(22, config.ServerPort);
        Assert.Equal("ssh", config.SshPath);
        Assert.Equal(15, config.HeartbeatS);
        Assert.Equal(5, config.ReconnectInitialS);
        Assert.Equal(300, config.ReconnectMaxS);
        Assert.Equal(1024 * 1024, config.MaxOutputBytes);
        Assert.Equal(Path.Combine(Path.GetFullPath(_dir), "id_ed25519"), config.IdentityFile);
    }

    [Fact]
    public void Config_Invalid_IsAReadableError()
    {
        File.WriteAllText(Path.Combine(_dir, AgentConfig.FileName),
            "{\"server_host\":\"h\",\"server_user\":\"u\",\"identity_file\":\"k\",\"known_hosts_file\":\"kh\",\"server_port\":70000}");
        var ex = Assert.Throws<AgentConfigException>(() => AgentConfig.Load(_dir));
        Assert.Contains("server_port", ex.Message);
    }

    [Fact]
    public void Config_Missing_SaysHowToCreateIt()
    {
        var ex = Assert.Throws<AgentConfigException>(() => AgentConfig.Load(Path.Combine(_dir, "none")));
        Assert.Contains("eph-agent init", ex.Message);
    }

    [Fact]
    public void State_KeepsUuidApartFromConfig()
    {
        Assert.Null(AgentState.Load(_dir).Uuid);
        new AgentState { Uuid = "u-1" }.Save(_dir);
        Assert.Equal("u-1", AgentState.Load(_dir).Uuid);
        Assert.False(File.Exists(Path.Combine(_dir, AgentConfig.FileName)));
    }

    [Fact]
    public void Status_RoundTripsWithSnakeCaseFields()
    {
        var reporter = new StatusReporter(_dir, "eph@h:22", 4242);
        reporter.Set(AgentStates.Online, uuid: "u-2", tunnelPort: 40001);
        var status = AgentStatus.Load(_dir)!;
        Assert.Equal(AgentStates.Online, status.State);
        Assert.Equal(40001, status.TunnelPort);
        Assert.Equal("u-2", status.Uuid);
        Assert.Equal(Environment.ProcessId, status.Pid);
        var text = Encoding.UTF8.GetString(File.ReadAllBytes(Path.Combine(_dir, AgentStatus.FileName)));
        Assert.Contains("\"tunnel_port\": 40001", text);

        reporter.Set(AgentStates.Backoff, lastError: "ssh exited (255)");
        status = AgentStatus.Load(_dir)!;
        Assert.Equal(AgentStates.Backoff, status.State);
        Assert.Null(status.TunnelPort);
        Assert.Equal("ssh exited (255)", status.LastError);
        Assert.Equal("u-2", status.Uuid);
    }
}
