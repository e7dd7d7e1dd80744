using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using EtPhoneHome.Sandbox;
using ModelContextProtocol.Client;
using ModelContextProtocol.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// eph-server from a workstation: another Unix user, who cannot read the data directory, drives the sandbox's fleet
/// through its sshd (127.0.0.1 standing in for a laptop's network) with its own operator key — search, fan-out, a copy
/// both ways, metrics, history, and MCP on stdio — every call through the operator service.
/// </summary>
public sealed class RemoteCliIntegrationTests(SandboxFixture fixture) : IClassFixture<SandboxFixture>
{
    private const string User = "eph-remote-cli";

    private SandboxEnvironment Env => fixture.Env;

    [Fact]
    public async Task AnotherUser_DrivesTheFleet_ThroughTheOperatorService_CliAndMcp()
    {
        Assert.True(Environment.UserName == "root", "this test creates a Unix user and runs eph-server as it; run it as root (as CI does)");
        await EnsureUserAsync();
        var home = (await RunAsync("runuser", ["-u", User, "--", "sh", "-c", "echo $HOME"])).Stdout.Trim();
        var work = Path.Combine(home, "eph-" + Guid.NewGuid().ToString("N")[..8]);
        await AsUserAsync(["mkdir", "-m", "0700", work]);
        var key = Path.Combine(work, "id_ed25519");
        await AsUserAsync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "remote-cli@laptop", "-f", key]);
        Assert.Equal("600", (await RunAsync("stat", ["-c", "%a", key])).Stdout.Trim());

        // The user reads the binaries but not the data directory.
        Assert.NotEqual(0, (await RunAsync("runuser", ["-u", User, "--", "test", "-r", Env.Data.RegistryFile])).ExitCode);
        Assert.Equal(0, (await RunAsync("runuser", ["-u", User, "--", "test", "-x", Env.ServerExecutable])).ExitCode);

        var name = "rcli-" + Guid.NewGuid().ToString("N")[..6];
        var added = await RunAsync(Env.ServerExecutable, ["operators", "add", "--data", Env.Data.Path, "--name", name, "--public-key-file", key + ".pub", "--role", "operator"]);
        Assert.True(added.ExitCode == 0, added.Stderr);

        var (_, alpha) = await fixture.AddOnlineAgentAsync("rcli-alpha", "rcligroup");
        var (_, bravo) = await fixture.AddOnlineAgentAsync("rcli-bravo", "rcligroup");
        var fingerprint = (await RunAsync("ssh-keygen", ["-lf", Env.Data.HostKeyFile + ".pub"])).Stdout.Split(' ')[1];
        string[] server = ["--server", $"{Env.FleetUser}@127.0.0.1:{Env.SshPort.ToString(CultureInfo.InvariantCulture)}", "--key-file", key, "--host-key-fingerprint", fingerprint];

        // Search.
        var clients = await CliAsync(work, [.. server, "clients", "--tag", "rcligroup", "--json"]);
        Assert.True(clients.ExitCode == 0, clients.Stderr);
        Assert.Equal(["rcli-alpha", "rcli-bravo"], Lines(clients.Stdout).Select(l => l.GetProperty("display_name").GetString()).Order());

        // Fan-out to every agent of the group, streamed as JSON lines.
        var exec = await CliAsync(work, [.. server, "exec", "--tag", "rcligroup", "--json", "--", "echo hello-from-agent"]);
        Assert.True(exec.ExitCode == 0, exec.Stderr);
        var results = Lines(exec.Stdout);
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.StartsWith("hello-from-", r.GetProperty("stdout").GetString(), StringComparison.Ordinal));

        // A copy both ways, SHA-256 compared.
        var local = Path.Combine(work, "payload.bin");
        await AsUserAsync(["sh", "-c", $"head -c 3000000 /dev/urandom > '{local}'"]);
        var remote = Path.Combine(Env.WorkDirectory, "rcli-" + Guid.NewGuid().ToString("N")[..6] + ".bin");
        var up = await CliAsync(work, [.. server, "upload", "--client", "rcli-alpha", "--json", local, remote]);
        Assert.True(up.ExitCode == 0, up.Stdout + up.Stderr);
        Assert.Equal(Sha256(local), Sha256(remote));
        var back = Path.Combine(work, "back.bin");
        var down = await CliAsync(work, [.. server, "download", "--client", "rcli-alpha", "--json", remote, back]);
        Assert.True(down.ExitCode == 0, down.Stdout + down.Stderr);
        Assert.Equal(Sha256(local), Sha256(back));
        Assert.Equal(Sha256(local), Lines(down.Stdout).Single().GetProperty("sha256").GetString());

        // A file written, read and listed through the server, on the agent's disk.
        var textFile = Path.Combine(Env.WorkDirectory, "rcli-" + Guid.NewGuid().ToString("N")[..6] + ".txt");
        var write = await CliAsync(work, [.. server, "write", "--client", "rcli-alpha", textFile, "--value", "written remotely"]);
        Assert.True(write.ExitCode == 0, write.Stdout + write.Stderr);
        Assert.Equal("written remotely", File.ReadAllText(textFile));
        var read = await CliAsync(work, [.. server, "read", "--client", "rcli-alpha", "--json", textFile]);
        Assert.True(read.ExitCode == 0, read.Stdout + read.Stderr);
        Assert.Equal("written remotely", Lines(read.Stdout).Single().GetProperty("content").GetString());
        var ls = await CliAsync(work, [.. server, "ls", "--client", "rcli-alpha", "--json", Env.WorkDirectory]);
        Assert.True(ls.ExitCode == 0, ls.Stderr);
        Assert.Contains(Lines(ls.Stdout), e => e.GetProperty("name").GetString() == Path.GetFileName(textFile));
        var limits = await CliAsync(work, [.. server, "limits", "rcli-alpha", "--json"]);
        Assert.True(limits.ExitCode == 0, limits.Stderr);
        Assert.Equal(alpha.Uuid, Lines(limits.Stdout).Single().GetProperty("uuid").GetString());

        // Metrics and history.
        var metrics = await CliAsync(work, [.. server, "metrics", "--tag", "rcligroup", "--json"]);
        Assert.True(metrics.ExitCode == 0, metrics.Stdout + metrics.Stderr);
        Assert.Equal(2, Lines(metrics.Stdout).Count);
        var history = await CliAsync(work, [.. server, "history", "--client", alpha.Uuid, "--json", "--limit", "50"]);
        Assert.True(history.ExitCode == 0, history.Stderr);
        Assert.Contains(Lines(history.Stdout), e => e.GetProperty("operation").GetString() == "run_command" && e.GetProperty("surface").GetString() == "cli+ssh");

        // connect pins (already pinned above) and saves by name; the name then works alone, with no fingerprint.
        var connected = await CliAsync(work, [.. server, "connect", "--name", "sandbox"]);
        Assert.True(connected.ExitCode == 0, connected.Stderr);
        Assert.Contains($"as {name}, role operator", connected.Stdout, StringComparison.Ordinal);
        var byName = await CliAsync(work, ["--server", "sandbox", "--key-file", key, "clients", "--name", "rcli-bravo", "--json"]);
        Assert.True(byName.ExitCode == 0, byName.Stderr);
        Assert.Equal(bravo.Uuid, Lines(byName.Stdout).Single().GetProperty("uuid").GetString());

        // A reader's key: searches, but exec is refused (exit 77) naming the role it needs, and nothing runs.
        var readerKey = Path.Combine(work, "reader_ed25519");
        await AsUserAsync(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "reader@laptop", "-f", readerKey]);
        var reader = await RunAsync(Env.ServerExecutable, ["operators", "add", "--data", Env.Data.Path, "--name", name + "-r", "--public-key-file", readerKey + ".pub", "--role", "reader"]);
        Assert.True(reader.ExitCode == 0, reader.Stderr);
        string[] asReader = ["--server", "sandbox", "--key-file", readerKey];
        var marker = Path.Combine(Env.WorkDirectory, "rcli-reader-" + Guid.NewGuid().ToString("N")[..6]);
        var refusedExec = await CliAsync(work, [.. asReader, "exec", "--tag", "rcligroup", "--", $"touch {marker}"]);
        Assert.Equal(77, refusedExec.ExitCode);
        Assert.Contains("operator role", refusedExec.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
        var refusedWrite = await CliAsync(work, [.. asReader, "write", "--client", "rcli-alpha", marker, "--value", "no"]);
        Assert.Equal(77, refusedWrite.ExitCode);
        Assert.Contains("operator role", refusedWrite.Stderr, StringComparison.Ordinal);
        Assert.False(File.Exists(marker));
        Assert.Equal(0, (await CliAsync(work, [.. asReader, "clients", "--tag", "rcligroup"])).ExitCode);

        // A verb with no remote operation refuses and creates nothing.
        var backup = Path.Combine(work, "backup.db");
        var refused = await CliAsync(work, [.. server, "backup", "--to", backup]);
        Assert.Equal(2, refused.ExitCode);
        Assert.False(File.Exists(backup));

        // MCP on stdio, as that user: run_command on every agent.
        var env = UserEnvironment(work);
        await using var mcp = await McpClient.CreateAsync(new StdioClientTransport(new StdioClientTransportOptions
        {
            Name = "eph-server-remote",
            Command = "runuser",
            Arguments = ["-u", User, "--", "env", .. env, Env.ServerExecutable, .. server, "mcp"],
        }));
        foreach (var client in new[] { alpha, bravo })
        {
            var answer = await mcp.CallToolAsync("run_command", new Dictionary<string, object?> { ["cmd"] = "echo mcp-ok", ["client_id"] = client.Uuid });
            var text = Assert.IsType<TextContentBlock>(Assert.Single(answer.Content)).Text;
            Assert.True(answer.IsError is not true, text);
            Assert.Equal("mcp-ok\n", JsonDocument.Parse(text).RootElement.GetProperty("stdout").GetString());
        }

        var readFile = await mcp.CallToolAsync("read_file", new Dictionary<string, object?> { ["path"] = textFile, ["client_id"] = alpha.Uuid });
        var readText = Assert.IsType<TextContentBlock>(Assert.Single(readFile.Content)).Text;
        Assert.True(readFile.IsError is not true, readText);
        Assert.Equal("written remotely", JsonDocument.Parse(readText).RootElement.GetProperty("content").GetString());
        var stats = await mcp.CallToolAsync("get_rate_limit_stats", new Dictionary<string, object?> { ["uuid"] = alpha.Uuid });
        Assert.True(stats.IsError is not true, Assert.IsType<TextContentBlock>(Assert.Single(stats.Content)).Text);

        // The exchange's credentials are the server's: its tools go through it, and this hub has none configured.
        var unconfigured = await mcp.CallToolAsync("exchange_list", new Dictionary<string, object?>());
        var unconfiguredText = Assert.IsType<TextContentBlock>(Assert.Single(unconfigured.Content)).Text;
        Assert.Contains("R2_NOT_CONFIGURED", unconfiguredText, StringComparison.Ordinal);
        Assert.Contains("the server has no exchange configured", unconfiguredText, StringComparison.Ordinal);
        File.Delete(remote);
        File.Delete(textFile);
    }

    private static async Task EnsureUserAsync()
    {
        if ((await RunAsync("id", ["-u", User])).ExitCode != 0)
        {
            var created = await RunAsync("useradd", ["-m", User]);
            Assert.True(created.ExitCode == 0 || (await RunAsync("id", ["-u", User])).ExitCode == 0, created.Stderr);
        }
    }

    /// <summary>The user's environment for eph-server: its own profile folder, no ssh agent, the shared dotnet.</summary>
    private static string[] UserEnvironment(string work) =>
    [
        "-u", "SSH_AUTH_SOCK", "-u", "ETPHONEHOME_DATA_DIR", "-u", "ETPHONEHOME_SERVER",
        $"ETPHONEHOME_CONFIG_DIR={Path.Combine(work, "profile")}",
        "DOTNET_ROOT=" + (Environment.GetEnvironmentVariable("DOTNET_ROOT") is { Length: > 0 } root ? root : "/usr/share/dotnet"),
        "DOTNET_CLI_TELEMETRY_OPTOUT=1",
    ];

    private async Task<(int ExitCode, string Stdout, string Stderr)> CliAsync(string work, string[] args)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        return await RunAsync("runuser", ["-u", User, "--", "env", .. UserEnvironment(work), Env.ServerExecutable, .. args], timeout.Token);
    }

    private static async Task AsUserAsync(string[] args)
    {
        var result = await RunAsync("runuser", ["-u", User, "--", .. args]);
        Assert.True(result.ExitCode == 0, $"{string.Join(' ', args)}: {result.Stderr}");
    }

    private static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(string file, string[] args, CancellationToken ct = default) =>
        SandboxEnvironment.RunForResultAsync(file, args, ct);

    private static List<JsonElement> Lines(string text) =>
        [.. text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement)];

    private static string Sha256(string path)
    {
        using var file = File.OpenRead(path);
        return Convert.ToHexString(SHA256.HashData(file)).ToLowerInvariant();
    }
}
