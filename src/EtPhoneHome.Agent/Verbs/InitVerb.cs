using System.Diagnostics;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary><c>eph-agent init</c>: config directory, ed25519 key, pinned server host key, agent.json.</summary>
public static class InitVerb
{
    public const string Usage = """
        usage: eph-agent init --server HOST --user USER [--port PORT] [--config-dir DIR]
                              [--name NAME] [--purpose TEXT] [--tag TAG]...
                              (--host-key-fingerprint SHA256:... | --accept-host-key) [--force]

          Creates DIR (mode 0700) with agent.json, an ed25519 key (id_ed25519) and known_hosts holding the
          server's pinned host key. The server's host key must be pinned one of two ways:
            --host-key-fingerprint SHA256:...  pin the key with this fingerprint (ask the server's operator:
                                               ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)
            --accept-host-key                  trust the key the server offers now and print its fingerprint
          --force replaces an existing agent.json and known_hosts; an existing key is kept.
          DIR defaults to $ETPHONEHOME_AGENT_DIR, else ~/.etphonehome-agent.
        """;

    private static readonly string[] ValueOptions = ["config-dir", "server", "port", "user", "name", "purpose", "tag", "host-key-fingerprint"];
    private static readonly string[] FlagOptions = ["accept-host-key", "force"];

    public static async Task<int> RunAsync(IReadOnlyList<string> args, CancellationToken ct)
    {
        var cl = CommandLine.Parse(args, ValueOptions, FlagOptions);
        if (cl.Help)
        {
            Console.Out.WriteLine(Usage);
            return 0;
        }

        var dir = Path.GetFullPath(cl.ConfigDir());
        var host = cl.Required("server");
        var user = cl.Required("user");
        var port = cl.Port("port", 22);
        var fingerprint = cl.Value("host-key-fingerprint");
        var accept = cl.Flag("accept-host-key");
        if (fingerprint is null && !accept)
        {
            throw new UsageException("the server's host key must be pinned: pass --host-key-fingerprint SHA256:... (the fingerprint the server's operator gives you) or --accept-host-key (trust what the server offers now and print its fingerprint)");
        }

        if (fingerprint is not null && accept)
        {
            throw new UsageException("give either --host-key-fingerprint or --accept-host-key, not both");
        }

        var configPath = Path.Combine(dir, AgentConfig.FileName);
        if (File.Exists(configPath) && !cl.Flag("force"))
        {
            Console.Error.WriteLine($"eph-agent: {configPath} already exists; pass --force to replace it (the existing key is kept)");
            return 1;
        }

        // Pin the host key before writing anything, so a wrong fingerprint leaves no half-made config.
        var offered = await HostKeyPinner.ScanAsync(host, port, ct: ct).ConfigureAwait(false);
        var pinned = HostKeyPinner.Select(offered, fingerprint, accept);

        SecureFile.CreatePrivateDirectory(dir);
        var identity = Path.Combine(dir, "id_ed25519");
        var knownHosts = Path.Combine(dir, "known_hosts");
        if (File.Exists(identity))
        {
            Console.Out.WriteLine($"keeping the existing key {identity}");
        }
        else
        {
            await GenerateKeyAsync(identity, ct).ConfigureAwait(false);
        }

        SecureFile.WriteAllText(knownHosts, HostKeyPinner.KnownHostsContent(host, port, pinned));
        var tags = cl.Values("tag").Where(t => t.Length > 0).Distinct(StringComparer.Ordinal).ToArray();
        var config = new AgentConfig
        {
            ServerHost = host,
            ServerPort = port,
            ServerUser = user,
            IdentityFile = identity,
            KnownHostsFile = knownHosts,
            DisplayName = cl.Value("name"),
            Purpose = cl.Value("purpose"),
            Tags = tags.Length == 0 ? null : tags,
        };
        config.Save(dir);

        foreach (var key in pinned)
        {
            Console.Out.WriteLine($"{(accept ? "trusted" : "pinned")} host key {HostKeyPinner.HostPattern(host, port)} {key.Type} {key.Fingerprint}");
        }

        Console.Out.WriteLine($"wrote {configPath}");
        Console.Out.WriteLine($"agent key: {SshFingerprint.FromBase64Blob(File.ReadAllText(identity + ".pub").Split(' ')[1]) ?? "?"} ({identity}.pub)");
        Console.Out.WriteLine($"next: eph-agent run --config-dir {dir}   (the server's operator approves the key with eph-server approve)");
        return 0;
    }

    private static async Task GenerateKeyAsync(string identity, CancellationToken ct)
    {
        var psi = new ProcessStartInfo("ssh-keygen")
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        };
        foreach (var arg in new[] { "-t", "ed25519", "-N", string.Empty, "-f", identity, "-C", "eph-agent@" + HostIdentity.Hostname(), "-q" })
        {
            psi.ArgumentList.Add(arg);
        }

        using var process = new Process { StartInfo = psi };
        try
        {
            process.Start();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new AgentConfigException($"cannot run ssh-keygen: {ex.Message}");
        }

        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync(ct);
        _ = process.StandardOutput.ReadToEndAsync(ct);
        await process.WaitForExitAsync(ct).ConfigureAwait(false);
        if (process.ExitCode != 0 || !File.Exists(identity + ".pub"))
        {
            throw new AgentConfigException($"ssh-keygen failed ({process.ExitCode}): {(await stderr.ConfigureAwait(false)).Trim()}");
        }
    }
}
