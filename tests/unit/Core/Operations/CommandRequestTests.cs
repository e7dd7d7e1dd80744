using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>Core's one rule for a command request, used by the cmdlets, the verbs and the MCP tools alike.</summary>
public sealed class CommandRequestTests
{
    [Fact]
    public void AValidRequest_BecomesTheAgentsParameters()
    {
        var parameters = new CommandRequest
        {
            Command = "uptime",
            TimeoutSeconds = 30,
            WorkingDirectory = "/srv",
            Shell = " Bash ",
            Stdin = "in",
            Environment = new Dictionary<string, string> { ["A"] = "1" },
        }.ToParams();

        Assert.Equal("uptime", parameters.Cmd);
        Assert.Equal(30, parameters.TimeoutS);
        Assert.Equal("/srv", parameters.Cwd);
        Assert.Equal("bash", parameters.Shell);
        Assert.Equal("in", parameters.Stdin);
        Assert.Equal("1", parameters.Env!["A"]);
    }

    [Fact]
    public void Defaults_AreTheProtocolsDefaults_AndABlankDirectoryIsNone()
    {
        var parameters = new CommandRequest { Command = "true", WorkingDirectory = "  " }.ToParams();

        Assert.Equal(CommandLimits.DefaultTimeoutSeconds, parameters.TimeoutS);
        Assert.Null(parameters.Cwd);
        Assert.Null(parameters.Shell);
        Assert.Null(parameters.Env);
    }

    [Theory]
    [InlineData(@"C:\work")]
    [InlineData("D:/work")]
    [InlineData(@"\\server\share")]
    public void AWindowsAbsoluteDirectory_IsAccepted_ForAWindowsClient(string cwd)
    {
        Assert.Equal(cwd, new CommandRequest { Command = "dir", WorkingDirectory = cwd }.ToParams().Cwd);
    }

    // Named cases: the test runner prints theory arguments, and a request holding NUL or 64 KiB would end up in its output.
    private static readonly Dictionary<string, CommandRequest> Broken = new()
    {
        ["blank command"] = new CommandRequest { Command = "  " },
        ["command over the limit"] = new CommandRequest { Command = new string('x', CommandLimits.MaxCommandLength + 1) },
        ["command with NUL"] = new CommandRequest { Command = "a\0b" },
        ["timeout 0"] = new CommandRequest { Command = "true", TimeoutSeconds = 0 },
        ["timeout 3601"] = new CommandRequest { Command = "true", TimeoutSeconds = 3601 },
        ["relative cwd"] = new CommandRequest { Command = "true", WorkingDirectory = "srv/app" },
        ["drive without root"] = new CommandRequest { Command = "true", WorkingDirectory = "C:" },
        ["cwd over the limit"] = new CommandRequest { Command = "true", WorkingDirectory = "/" + new string('p', CommandLimits.MaxPathLength) },
        ["unknown shell"] = new CommandRequest { Command = "true", Shell = "zsh" },
        ["stdin over the limit"] = new CommandRequest { Command = "true", Stdin = new string('i', CommandLimits.MaxStdinLength + 1) },
        ["env name with ="] = new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { ["A=B"] = "1" } },
        ["empty env name"] = new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { [""] = "1" } },
        ["env value with NUL"] = new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { ["A"] = "x\0y" } },
        ["too many env variables"] = new CommandRequest { Command = "true", Environment = Enumerable.Range(0, CommandLimits.MaxEnvironmentVariables + 1).ToDictionary(i => "V" + i, _ => "") },
    };

    [Theory]
    [InlineData("blank command", "command", "empty")]
    [InlineData("command over the limit", "command", "at most 65536")]
    [InlineData("command with NUL", "command", "NUL")]
    [InlineData("timeout 0", "timeout", "between 1 and 3600")]
    [InlineData("timeout 3601", "timeout", "between 1 and 3600")]
    [InlineData("relative cwd", "cwd", "absolute")]
    [InlineData("drive without root", "cwd", "absolute")]
    [InlineData("cwd over the limit", "cwd", "longer than 4096")]
    [InlineData("unknown shell", "shell", "sh, bash, powershell, pwsh, cmd")]
    [InlineData("stdin over the limit", "stdin", "at most")]
    [InlineData("env name with =", "env", "without '='")]
    [InlineData("empty env name", "env", "non-empty")]
    [InlineData("env value with NUL", "env", "without NUL")]
    [InlineData("too many env variables", "env", "at most 256")]
    public void ABrokenLimit_IsRefused_NamingThePart(string name, string field, string words)
    {
        var ex = Assert.Throws<InvalidCommandRequestException>(() => Broken[name].ToParams());

        Assert.Equal(field, ex.Field);
        Assert.Contains(words, ex.Message);
    }

    [Fact]
    public void ARefusal_ShowsHostileTextNeutralised()
    {
        var ex = Assert.Throws<InvalidCommandRequestException>(() => new CommandRequest { Command = "true", WorkingDirectory = "rel\u001b[2J" }.ToParams());

        Assert.DoesNotContain('\u001b', ex.Message);
    }

    [Fact]
    public async Task TheServicesEntryPoint_RefusesBeforeAnyTargetIsContacted()
    {
        var registry = new FakeFleet();
        registry.AddClient("11111111-aaaa", "web-01", true, 40001);
        var transport = new FakeTransport();
        using var services = new EtPhoneHome.Core.Services.OperatorServices(registry.Stores(), new OperatorContext("t", Surfaces.Cli), ownsRegistry: false)
        {
            CommandTransport = _ => transport,
        };
        var targets = services.Targets(new TargetSelection { All = true });

        Assert.Throws<InvalidCommandRequestException>(() => services.RunCommandsAsync(targets, new CommandRequest { Command = "true", WorkingDirectory = "rel" }));
        await Assert.ThrowsAsync<InvalidCommandRequestException>(() => services.RunCommandAsync(targets[0], new CommandRequest { Command = "" }));
        Assert.Equal(0, transport.Calls);

        var results = new List<FleetCommandResult>();
        await foreach (var r in services.RunCommandsAsync(targets, new CommandRequest { Command = "true" }))
        {
            results.Add(r);
        }

        Assert.Equal(1, transport.Calls);
        Assert.Single(results);
    }
}
