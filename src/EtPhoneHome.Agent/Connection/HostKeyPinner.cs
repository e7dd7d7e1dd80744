using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>A host key offered by the server, as ssh-keyscan printed it.</summary>
public sealed record HostKey(string Type, string Blob, string Fingerprint);

/// <summary>
/// Pins the server's host key for the agent's private known_hosts file: scans the keys with
/// <c>ssh-keyscan</c>, keeps the one matching an operator-given fingerprint (or, with explicit trust on first
/// use, all offered keys), and writes <c>[HOST]:PORT type blob</c> lines.
/// </summary>
public static class HostKeyPinner
{
    /// <summary>The known_hosts host field OpenSSH uses: plain host on port 22, <c>[host]:port</c> otherwise.</summary>
    public static string HostPattern(string host, int port) =>
        port == 22 ? host : string.Create(CultureInfo.InvariantCulture, $"[{host}]:{port}");

    /// <summary>Parses ssh-keyscan output (known_hosts lines; comments and blank lines skipped).</summary>
    public static IReadOnlyList<HostKey> ParseKeyscan(string output)
    {
        var keys = new List<HostKey>();
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var fields = line.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (fields.Length < 3 || SshFingerprint.FromBase64Blob(fields[2]) is not { } fingerprint)
            {
                continue;
            }

            if (!keys.Exists(k => k.Blob == fields[2]))
            {
                keys.Add(new HostKey(fields[1], fields[2], fingerprint));
            }
        }

        return keys;
    }

    /// <summary>Runs ssh-keyscan against the server; throws <see cref="AgentConfigException"/> when it offers no key.</summary>
    public static async Task<IReadOnlyList<HostKey>> ScanAsync(string host, int port, string keyscanPath = "ssh-keyscan", CancellationToken ct = default)
    {
        var psi = new ProcessStartInfo(keyscanPath)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
        };
        foreach (var arg in new[] { "-T", "10", "-p", port.ToString(CultureInfo.InvariantCulture), "-t", "ed25519,ecdsa,rsa", host })
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
            throw new AgentConfigException($"cannot run {keyscanPath}: {ex.Message}");
        }

        process.StandardInput.Close();
        var stdout = process.StandardOutput.ReadToEndAsync(ct);
        var stderr = process.StandardError.ReadToEndAsync(ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new AgentConfigException($"ssh-keyscan of {host} port {port} did not finish in 30 s");
        }

        var keys = ParseKeyscan(await stdout.ConfigureAwait(false));
        if (keys.Count == 0)
        {
            var detail = (await stderr.ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Where(l => !l.StartsWith('#')).LastOrDefault();
            throw new AgentConfigException($"{host} port {port} offered no SSH host key{(detail is null ? " (is sshd reachable there?)" : ": " + detail)}");
        }

        return keys;
    }

    /// <summary>
    /// Chooses the keys to pin. With a fingerprint only the matching key is kept (none → error listing what
    /// was offered); with <paramref name="acceptOffered"/> every offered key is kept.
    /// </summary>
    public static IReadOnlyList<HostKey> Select(IReadOnlyList<HostKey> offered, string? expectedFingerprint, bool acceptOffered)
    {
        if (expectedFingerprint is not null)
        {
            var match = offered.Where(k => SshFingerprint.Matches(expectedFingerprint, k.Fingerprint)).ToList();
            if (match.Count == 0)
            {
                var list = string.Join(", ", offered.Select(k => $"{k.Type} {k.Fingerprint}"));
                throw new AgentConfigException($"the server offered no host key with fingerprint {expectedFingerprint}; it offered: {list}. Check the fingerprint with the server's operator (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub).");
            }

            return match;
        }

        if (!acceptOffered)
        {
            throw new AgentConfigException("no host key decision given");
        }

        return offered;
    }

    /// <summary>The known_hosts file content for the pinned keys.</summary>
    public static string KnownHostsContent(string host, int port, IEnumerable<HostKey> keys)
    {
        var pattern = HostPattern(host, port);
        return string.Concat(keys.Select(k => $"{pattern} {k.Type} {k.Blob}\n"));
    }
}
