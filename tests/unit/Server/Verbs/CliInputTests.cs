using EtPhoneHome.Core.Operations;
using System.CommandLine;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Server;
using EtPhoneHome.Server.Verbs;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Verbs;

/// <summary>Bad input on the command line: a clear message and a usage exit code, never a stack trace or a surprise.</summary>
public sealed class CliInputTests : IDisposable
{
    private readonly TempData _data = new();
    private readonly SqliteRegistry _registry;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public CliInputTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir);
        Keys.Admit(_registry, Keys.A, Keys.Identity(name: "web-01"));
    }

    public void Dispose()
    {
        _registry.Dispose();
        _data.Dispose();
    }

    private async Task<int> RunAsync(params string[] args) =>
        await Program.BuildRoot().Parse(args).InvokeAsync(new InvocationConfiguration { Output = _out, Error = _err });

    [Theory]
    [InlineData("exec", "--timeout", "99999999999", "--all", "--", "true")]
    [InlineData("exec", "--throttle", "99999999999", "--all", "--", "true")]
    [InlineData("history", "--since", "99999999999d")]
    [InlineData("history", "--since", "9223372036854775807s")]
    public async Task HugeNumbers_AreAUsageError_NotACrash(params string[] args)
    {
        var exit = await RunAsync([.. args, "--data", _data.Dir.Path]);

        Assert.NotEqual(0, exit);
        Assert.DoesNotContain("   at ", _err.ToString() + _out.ToString());
        Assert.DoesNotContain("Unhandled exception", _err.ToString());
    }

    [Theory]
    [InlineData("exec", "--all", "--", "true")]
    [InlineData("metrics", "--all")]
    [InlineData("status")]
    [InlineData("read", "--all", "/etc/hostname")]
    public async Task EveryFanOutVerb_TakesTheOneThrottleRange(params string[] args)
    {
        // One limit for every surface (FleetOptions): the cmdlets' ValidateRange and MCP's schema use the same numbers.
        var over = (FleetOptions.MaxThrottleLimit + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
        var exit = await RunAsync([args[0], "--data", _data.Dir.Path, "--throttle", over, .. args[1..]]);

        Assert.NotEqual(0, exit);
        Assert.Contains($"--throttle must be between {FleetOptions.MinThrottleLimit} and {FleetOptions.MaxThrottleLimit}, got {over}", _err.ToString());
        Assert.DoesNotContain(_registry.QueryHistory(new HistoryQuery()), h => h.Operation == "run_command");
    }

    [Fact]
    public async Task AMistypedDataDirectory_IsAnError_AndCreatesNothing()
    {
        var typo = _data.Dir.Path + "-typo";

        var exit = await RunAsync("clients", "--data", typo);

        Assert.Equal(1, exit);
        Assert.Contains("no registry", _err.ToString());
        Assert.Contains("eph-server init", _err.ToString());
        Assert.False(Directory.Exists(typo));
    }

    [Fact]
    public async Task Clients_WithAHubSocketNobodyServes_SearchesTheRegistryItself()
    {
        File.WriteAllText(_data.Dir.HubSocket, ""); // left behind by a hub that died: nothing listens

        var exit = await RunAsync("clients", "--data", _data.Dir.Path, "--name", "web-*");

        Assert.Equal(0, exit);
        Assert.Contains("web-01", _out.ToString());
        Assert.Equal("", _err.ToString());
    }

    [Theory]
    [InlineData("keys")]
    [InlineData("history")]
    [InlineData("status")]
    public async Task AMistypedDataDirectory_IsAnErrorForEveryReadVerb(string verb)
    {
        var typo = _data.Dir.Path + "-typo-" + verb;

        var exit = await RunAsync(verb, "--data", typo);

        Assert.NotEqual(0, exit);
        Assert.Contains("no registry", _err.ToString());
        Assert.False(Directory.Exists(typo));
    }

    [Theory]
    [InlineData("--tiemout", "5", "uptime")]
    [InlineData("uptime", "--bogus")]
    public async Task AnUnknownOptionBeforeDoubleDash_IsRefused_AndNothingRuns(params string[] rest)
    {
        var exit = await RunAsync(["exec", "--data", _data.Dir.Path, "--all", .. rest]);

        Assert.Equal(OperatorVerbs.UsageError, exit);
        Assert.Contains("unknown option", _err.ToString());
        Assert.DoesNotContain(_registry.QueryHistory(new HistoryQuery()), h => h.Operation == "run_command");
    }

    [Theory]
    [InlineData("--cwd", "srv/app", "absolute path")]
    [InlineData("--env", "A=x", null)]
    public async Task Exec_ChecksTheRequestWithCoresRule_BeforeAnyClientIsContacted(string option, string value, string? words)
    {
        var exit = await RunAsync("exec", "--data", _data.Dir.Path, "--all", option, value, "--", "true");

        if (words is null)
        {
            // A valid request passes the rule (the client is offline here, so nothing runs either way).
            Assert.NotEqual(OperatorVerbs.UsageError, exit);
            return;
        }

        Assert.Equal(OperatorVerbs.UsageError, exit);
        Assert.Contains(words, _err.ToString());
        Assert.Contains("nothing was run", _err.ToString());
        Assert.DoesNotContain(_registry.QueryHistory(new HistoryQuery()), h => h.Operation == "run_command");
    }

    [Fact]
    public async Task Exec_ACommandFileOverTheOneLimit_IsRefused()
    {
        var file = Path.Combine(_data.Dir.Path, "long.sh");
        await File.WriteAllTextAsync(file, new string('x', EtPhoneHome.Protocol.CommandLimits.MaxCommandLength + 1));

        var exit = await RunAsync("exec", "--data", _data.Dir.Path, "--all", "--command-file", file);

        Assert.Equal(OperatorVerbs.UsageError, exit);
        Assert.Contains("at most 65536", _err.ToString());
    }

    [Fact]
    public async Task ARelativeAllowedPath_IsRefused_OnEverySurfaceThroughTheRegistry()
    {
        var exit = await RunAsync("set", "--data", _data.Dir.Path, "web-01", "--allowed-path", "srv/app");

        Assert.NotEqual(0, exit);
        Assert.Contains("absolute", _err.ToString());
        Assert.Null(_registry.QueryClients(new ClientQuery()).Single().AllowedPaths);
        var uuid = _registry.QueryClients(new ClientQuery()).Single().Uuid;
        Assert.Throws<RegistryValidationException>(() => _registry.UpdateClient(uuid, new ClientUpdate { AllowedPaths = ["relative"] }, "t"));
        _registry.UpdateClient(uuid, new ClientUpdate { AllowedPaths = ["/srv/app", @"C:\Data", "D:/x", @"\\server\share"] }, "t");
        // The list travels with every tunnel connection: bounded in all, not only per path.
        var tooMuch = Enumerable.Range(0, 5).Select(i => "/" + new string('p', 4000) + i).ToList();
        Assert.Contains("in all", Assert.Throws<RegistryValidationException>(() => _registry.UpdateClient(uuid, new ClientUpdate { AllowedPaths = tooMuch }, "t")).Message);
    }

    [Fact]
    public async Task Init_TightensAnExistingDataDirectoryTo0700()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        File.SetUnixFileMode(_data.Dir.Path, (UnixFileMode)Convert.ToInt32("755", 8));
        var output = new StringWriter();

        Assert.Equal(0, await HubVerbs.InitAsync(_data.Dir, output, CancellationToken.None));

        Assert.Equal((UnixFileMode)Convert.ToInt32("700", 8), File.GetUnixFileMode(_data.Dir.Path));
        Assert.Contains("tightened", output.ToString());
    }

    [Theory]
    [InlineData("/opt/eph gate/eph-gate")]
    [InlineData("/opt/eph/eph-gate;touch /tmp/x")]
    [InlineData("/opt/%u/eph-gate")]
    [InlineData("/opt/\"q\"/eph-gate")]
    public void SshdConfig_RefusesPathsSshdOrAShellWouldInterpret(string gatePath)
    {
        var ex = Assert.Throws<ArgumentException>(() => HubVerbs.BuildSshdConfig(_data.Dir, "127.0.0.1", 2222, "eph", gatePath));
        Assert.Contains("--gate-path", ex.Message);
    }
}
