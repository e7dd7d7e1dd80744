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

    public static TheoryData<string, CommandRequest, string> Refusals() => new()
    {
        { "command", new CommandRequest { Command = "  " }, "empty" },
        { "command", new CommandRequest { Command = new string('x', CommandLimits.MaxCommandLength + 1) }, "at most 65536" },
        { "command", new CommandRequest { Command = "a\0b" }, "NUL" },
        { "timeout", new CommandRequest { Command = "true", TimeoutSeconds = 0 }, "between 1 and 3600" },
        { "timeout", new CommandRequest { Command = "true", TimeoutSeconds = 3601 }, "between 1 and 3600" },
        { "cwd", new CommandRequest { Command = "true", WorkingDirectory = "srv/app" }, "absolute" },
        { "cwd", new CommandRequest { Command = "true", WorkingDirectory = "C:" }, "absolute" },
        { "cwd", new CommandRequest { Command = "true", WorkingDirectory = "/" + new string('p', CommandLimits.MaxPathLength) }, "longer than 4096" },
        { "shell", new CommandRequest { Command = "true", Shell = "zsh" }, "sh, bash, powershell, pwsh, cmd" },
        { "stdin", new CommandRequest { Command = "true", Stdin = new string('i', CommandLimits.MaxStdinLength + 1) }, "at most" },
        { "env", new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { ["A=B"] = "1" } }, "without '='" },
        { "env", new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { [""] = "1" } }, "non-empty" },
        { "env", new CommandRequest { Command = "true", Environment = new Dictionary<string, string> { ["A"] = "x\0y" } }, "without NUL" },
        { "env", new CommandRequest { Command = "true", Environment = Enumerable.Range(0, CommandLimits.MaxEnvironmentVariables + 1).ToDictionary(i => "V" + i, _ => "") }, "at most 256" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void ABrokenLimit_IsRefused_NamingThePart(string field, CommandRequest request, string words)
    {
        var ex = Assert.Throws<InvalidCommandRequestException>(() => request.ToParams());

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
