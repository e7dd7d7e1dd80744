using System.Text.Json;
using EtPhoneHome.Agent;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class RunCommandOptionsTests
{
    private static readonly PathPolicy Open = new(null, null);

    private static CommandSpec Spec(RunCommandParams p, PathPolicy? policy = null) =>
        RunCommandRequest.ToSpec(Wire.ToElement(p, ProtocolJson.Default.RunCommandParams), CommandLimits.DefaultMaxOutputBytes, policy ?? Open);

    [Fact]
    public async Task Bash_EnvAndStdin_ReachTheCommand()
    {
        var spec = Spec(new RunCommandParams
        {
            Cmd = "read line; echo \"$GREETING $line ${BASH_VERSION:+bash}\"",
            Shell = CommandShells.Bash,
            Env = new() { ["GREETING"] = "hello" },
            Stdin = "world\n",
        });
        var result = await CommandRunner.RunAsync(spec, CancellationToken.None);
        Assert.Equal("hello world bash\n", result.Stdout);
    }

    [Fact]
    public async Task DefaultShell_IsSh()
    {
        var result = await CommandRunner.RunAsync(Spec(new RunCommandParams { Cmd = "echo ${BASH_VERSION:-plain}" }), CancellationToken.None);
        Assert.Equal("plain\n", result.Stdout);
    }

    [Theory]
    [InlineData("zsh", "shell must be one of")]
    [InlineData("cmd", "not available")]
    [InlineData("powershell", "not available")]
    public void UnknownOrForeignShell_IsInvalidParams(string shell, string expected)
    {
        var fault = Assert.Throws<RpcFault>(() => Spec(new RunCommandParams { Cmd = "true", Shell = shell }));
        Assert.Equal(RpcErrorCodes.InvalidParams, fault.Code);
        Assert.Contains(expected, fault.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("A=B")]
    public void BadEnvName_IsInvalidParams(string name)
    {
        var fault = Assert.Throws<RpcFault>(() => Spec(new RunCommandParams { Cmd = "true", Env = new() { [name] = "x" } }));
        Assert.Equal(RpcErrorCodes.InvalidParams, fault.Code);
        Assert.Contains("env", fault.Message);
    }

    [Fact]
    public void Cwd_ThroughPlantedLink_IsPathDenied()
    {
        var root = Directory.CreateTempSubdirectory("eph-cwd-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "allowed"));
            File.CreateSymbolicLink(Path.Combine(root, "allowed", "out"), "/");
            var policy = new PathPolicy([Path.Combine(root, "allowed")], null);
            var fault = Assert.Throws<RpcFault>(() => Spec(new RunCommandParams { Cmd = "true", Cwd = Path.Combine(root, "allowed", "out") }, policy));
            Assert.Equal(RpcErrorCodes.PathDenied, fault.Code);
            Assert.Equal(Path.Combine(root, "allowed"), Spec(new RunCommandParams { Cmd = "true", Cwd = Path.Combine(root, "allowed") + "//" }, policy).WorkingDirectory);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public void ParamsSerializeShellSnakeCase()
    {
        var json = JsonSerializer.Serialize(new RunCommandParams { Cmd = "x", Shell = "bash" }, ProtocolJson.Default.RunCommandParams);
        Assert.Contains("\"shell\":\"bash\"", json);
    }
}
