using System.Globalization;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Sandbox;

namespace EtPhoneHome.Bench;

/// <summary>
/// A sandbox for side-by-side runs: sshd also accepts a bench-only plain key from an authorized_keys file, so
/// ssh, scp, parallel-ssh and ansible reach the very same sshd the tunnels use (the gate's forced command applies
/// only to keys the hub answers for).
/// </summary>
internal sealed class BenchSandbox : IAsyncDisposable
{
    private BenchSandbox(SandboxEnvironment env, string key, string knownHosts)
    {
        Env = env;
        Key = key;
        KnownHosts = knownHosts;
    }

    public SandboxEnvironment Env { get; }

    /// <summary>Private key file of the plain bench key.</summary>
    public string Key { get; }

    public string KnownHosts { get; }

    public string User => Env.FleetUser;

    /// <summary>ssh options for the plain key (new connection each time, host key pinned).</summary>
    public string[] SshOptions => ["-i", Key, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", $"UserKnownHostsFile={KnownHosts}", "-o", "StrictHostKeyChecking=yes"];

    public static async Task<BenchSandbox> CreateAsync(double heartbeatSeconds = 15, double reconnectMaxSeconds = 300)
    {
        var env = await SandboxEnvironment.CreateAsync(new SandboxOptions
        {
            HeartbeatSeconds = heartbeatSeconds,
            ReconnectInitialSeconds = Math.Min(5, reconnectMaxSeconds),
            ReconnectMaxSeconds = reconnectMaxSeconds,
            Log = Console.Error,
        });
        var key = Path.Combine(env.WorkDirectory, "bench_ed25519");
        await SandboxEnvironment.RunAsync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
        // StrictModes refuses an authorized_keys file under a world-writable directory (/tmp): keep it beside the
        // root-owned gate copy, which the sandbox removes on dispose.
        var authorized = Path.Combine(Path.GetDirectoryName(env.GatePath)!, "authorized_keys");
        File.Copy(key + ".pub", authorized);
        var config = File.ReadAllText(env.SshdConfigFile).Replace("AuthorizedKeysFile none", $"AuthorizedKeysFile {authorized}", StringComparison.Ordinal);
        File.WriteAllText(env.SshdConfigFile, config);
        await env.StartSshdAsync();
        await env.StartHubAsync();

        var knownHosts = Path.Combine(env.WorkDirectory, "bench_known_hosts");
        var scan = await SandboxEnvironment.RunAsync("ssh-keyscan", ["-p", env.SshPort.ToString(CultureInfo.InvariantCulture), "-t", "ed25519", "127.0.0.1"]);
        await File.WriteAllTextAsync(knownHosts, scan);
        return new BenchSandbox(env, key, knownHosts);
    }

    /// <summary>Adds <paramref name="count"/> agents named prefix-N, approves them all, waits until all are online.</summary>
    public async Task<IReadOnlyList<ClientRecord>> AddOnlineAgentsAsync(string prefix, int count, TimeSpan patience)
    {
        var names = Enumerable.Range(0, count).Select(i => $"{prefix}-{i:D3}").ToList();
        await Parallel.ForEachAsync(names, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (name, ct) => await Env.AddAgentAsync(name, ct: ct));
        using var registry = Env.OpenRegistry();
        var approved = new HashSet<string>(StringComparer.Ordinal);
        await SandboxEnvironment.WaitUntilAsync(() =>
        {
            foreach (var key in registry.ListKeys(KeyStatus.Pending).Where(k => k.ClaimedDisplayName is { } n && names.Contains(n)))
            {
                registry.ApproveKey(key.Fingerprint, "bench");
                approved.Add(key.ClaimedDisplayName!);
            }

            return approved.Count == count ? (object)true : null;
        }, patience, $"{count} pending keys");
        try
        {
            return await Env.WaitOnlineAsync(names, patience);
        }
        catch (TimeoutException)
        {
            var online = registry.QueryClients(new ClientQuery { OnlineOnly = true }).Count(c => names.Contains(c.DisplayName));
            throw new TimeoutException($"{online} of {count} new agents online after {patience.TotalSeconds:0} s");
        }
    }

    /// <summary>VmRSS and VmHWM of a process in KiB.</summary>
    public static (long Rss, long Hwm)? Memory(int pid)
    {
        try
        {
            long Field(string name) => long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith(name, StringComparison.Ordinal))
                .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);
            return (Field("VmRSS:"), Field("VmHWM:"));
        }
        catch (Exception ex) when (ex is IOException or InvalidOperationException)
        {
            return null;
        }
    }

    public static double Median(List<double> samples)
    {
        samples.Sort();
        return samples[samples.Count / 2];
    }

    public ValueTask DisposeAsync() => Env.DisposeAsync();
}
