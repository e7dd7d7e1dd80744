using System.Diagnostics;
using EtPhoneHome.Core;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

public sealed class HubVerbsTests : IDisposable
{
    private readonly TempData _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Init_CreatesRegistryAndHostKey_AndIsIdempotent()
    {
        var first = new StringWriter();
        Assert.Equal(0, await HubVerbs.InitAsync(_temp.Dir, first, CancellationToken.None));
        Assert.Contains("created registry", first.ToString());
        Assert.True(File.Exists(_temp.Dir.HostKeyFile));
        var hostKey = File.ReadAllText(_temp.Dir.HostKeyFile);

        var second = new StringWriter();
        Assert.Equal(0, await HubVerbs.InitAsync(_temp.Dir, second, CancellationToken.None));
        Assert.DoesNotContain("created", second.ToString());
        Assert.Equal(hostKey, File.ReadAllText(_temp.Dir.HostKeyFile));
    }

    [Fact]
    public async Task SshdConfig_IsAcceptedBySshdTest()
    {
        if (!File.Exists("/usr/sbin/sshd"))
        {
            Assert.Fail("/usr/sbin/sshd is required for this test (apt-get install openssh-server)");
        }

        await HubVerbs.InitAsync(_temp.Dir, TextWriter.Null, CancellationToken.None);
        var config = HubVerbs.BuildSshdConfig(_temp.Dir, "127.0.0.1", 2299, Environment.UserName, "/bin/true");
        Assert.Contains("AuthorizedKeysCommand /bin/true keys --socket " + _temp.Dir.HubSocket + " %u %f %t %k", config);
        Assert.Contains("AllowTcpForwarding remote", config);
        Assert.Contains("AllowStreamLocalForwarding no", config); // permitlisten does not bound unix-socket forwards
        Assert.Contains("PermitTTY no", config);
        Assert.Contains("PermitUserRC no", config); // ~/.ssh/rc would run before every forced command
        Assert.Contains("Match User", config);
        var file = Path.Combine(_temp.Root, "sshd_config");
        File.WriteAllText(file, config);
        Directory.CreateDirectory("/run/sshd");

        var psi = new ProcessStartInfo("/usr/sbin/sshd") { RedirectStandardError = true, RedirectStandardOutput = true };
        psi.ArgumentList.Add("-t");
        psi.ArgumentList.Add("-f");
        psi.ArgumentList.Add(file);
        using var proc = Process.Start(psi)!;
        var stderr = await proc.StandardError.ReadToEndAsync();
        await proc.WaitForExitAsync();
        Assert.True(proc.ExitCode == 0, $"sshd -t rejected the config: {stderr}");
    }

    [Theory]
    [InlineData("eph:x:998:998::/nonexistent:/bin/sh", null)]
    [InlineData("eph:x:998:998::/nonexistent:/usr/bin/dash", null)]
    [InlineData("eph:x:998:998::/home/eph:/bin/bash", "login shell of 'eph' is /bin/bash")]
    [InlineData("eph:x:998:998::/home/eph:/usr/bin/zsh", "usermod -s /bin/sh eph")]
    [InlineData("eph:x:0:0::/root:/bin/sh", "'eph' is root")]
    [InlineData("other:x:998:998::/home/other:/bin/bash", null)]
    public void SshdConfig_WarnsOfAFleetAccountWhoseShellRunsRcFilesOrThatIsRoot(string passwdLine, string? expected)
    {
        // sshd runs each forced command through the account's login shell: bash's rc files cost ~0.5 s per agent
        // admission on a machine with a version manager in ~/.bashrc; root makes every gate run as root.
        var warning = HubVerbs.ShellWarning("eph", ["root:x:0:0:root:/root:/bin/bash", passwdLine]);
        if (expected is null)
        {
            Assert.Null(warning);
        }
        else
        {
            Assert.Contains(expected, warning, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Verbs_AreRegisteredWithTheirOptions()
    {
        var root = EtPhoneHome.Server.Program.BuildRoot();
        var init = root.Subcommands.Single(c => c.Name == "init");
        Assert.Contains(init.Options, o => o.Name == "--data");
        var sshd = root.Subcommands.Single(c => c.Name == "sshd-config");
        foreach (var name in new[] { "--data", "--listen", "--port", "--user", "--gate-path" })
        {
            Assert.Contains(sshd.Options, o => o.Name == name);
        }

        var run = root.Subcommands.Single(c => c.Name == "run");
        foreach (var name in new[] { "--data", "--gate-path", "--heartbeat" })
        {
            Assert.Contains(run.Options, o => o.Name == name);
        }
    }

    [Fact]
    public void Run_TakesADeadHubTimeout_DefaultingToTheHubsOwn()
    {
        var root = EtPhoneHome.Server.Program.BuildRoot();
        Assert.Equal(60.0, root.Parse(["run"]).GetValue<double>("--dead-hub-timeout"));
        Assert.Equal(90.5, root.Parse(["run", "--dead-hub-timeout", "90.5"]).GetValue<double>("--dead-hub-timeout"));
        Assert.NotEmpty(root.Parse(["run", "--dead-hub-timeout", "soon"]).Errors);
    }

    [Theory]
    [InlineData(15, 15)]
    [InlineData(60, 60)]
    [InlineData(86400, 86400)]
    public void DeadHubTimeout_FromThreeHeartbeatsToADay_IsTaken(double seconds, double expected)
    {
        Assert.Equal(TimeSpan.FromSeconds(expected), HubVerbs.DeadHubTimeout(seconds, EtPhoneHome.Hub.HubOptions.DefaultHubHeartbeatInterval));
    }

    [Theory]
    [InlineData(14.9)]
    [InlineData(5)]
    [InlineData(0)]
    [InlineData(-60)]
    [InlineData(86401)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void DeadHubTimeout_BelowThreeHeartbeatsOrPastADay_IsRefusedSayingWhy(double seconds)
    {
        // Hubs beat every 5 s: a timeout under three beats could call a live hub dead after one slow registry write.
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => HubVerbs.DeadHubTimeout(seconds, EtPhoneHome.Hub.HubOptions.DefaultHubHeartbeatInterval));
        Assert.StartsWith("--dead-hub-timeout must be between 15 and 86400 seconds", ex.Message, StringComparison.Ordinal);
        Assert.Contains("heartbeat every 5 s", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DeadHubTimeout_Floor_FollowsTheHeartbeatInterval()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => HubVerbs.DeadHubTimeout(20, TimeSpan.FromSeconds(10)));
        Assert.Equal(TimeSpan.FromSeconds(30), HubVerbs.DeadHubTimeout(30, TimeSpan.FromSeconds(10)));
    }

    [Theory]
    [InlineData("5")]
    [InlineData("0")]
    [InlineData("100000")]
    public async Task Run_WithANonsenseDeadHubTimeout_ExitsWithUsage_AndStartsNothing(string value)
    {
        await HubVerbs.InitAsync(_temp.Dir, TextWriter.Null, CancellationToken.None);
        var code = await EtPhoneHome.Server.Program.BuildRoot().Parse(["run", "--data", _temp.Dir.Path, "--dead-hub-timeout", value]).InvokeAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(2, code);
        Assert.False(File.Exists(_temp.Dir.HubSocket), "the hub's socket exists: the hub started");
        Assert.False(File.Exists(_temp.Dir.HubRelayKeyFile));
    }

    [Fact]
    public void DataDirectory_FromOption_WinsOverEnvironment()
    {
        var root = EtPhoneHome.Server.Program.BuildRoot();
        var parsed = root.Parse(["init", "--data", _temp.Dir.Path]);
        var dataOption = (System.CommandLine.Option<string?>)parsed.CommandResult.Command.Options.Single(o => o.Name == "--data");
        Assert.Equal(_temp.Dir.Path, EtPhoneHome.Server.CommonOptions.ResolveData(parsed, dataOption).Path);
    }
}
