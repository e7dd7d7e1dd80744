using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The servers' host keys the operator trusts, one per <c>host:port</c>, in <c>known-servers.json</c> of the
/// <see cref="ConnectionProfile"/> folder. A key is pinned the first time the operator connects — after the operator
/// confirmed its fingerprint or named it in advance — and from then on ssh accepts that key only.
/// </summary>
public sealed class HostKeyPins
{
    /// <summary>The file's name in the profile folder.</summary>
    public const string FileName = "known-servers.json";

    /// <summary>ssh-keyscan's output is read up to this many bytes (a few keys are a few KiB).</summary>
    public const int MaxScanOutputBytes = 64 * 1024;

    // Relaxed escaping: the file is read by people and this program, never placed in HTML, so "+" stays "+".
    private static readonly JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    /// <summary>Pins in the profile folder of <see cref="ConnectionProfile.Directory"/>.</summary>
    public HostKeyPins()
        : this(ConnectionProfile.Directory)
    {
    }

    /// <summary>Pins in <paramref name="directory"/>.</summary>
    public HostKeyPins(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        FilePath = Path.Combine(directory, FileName);
    }

    public string FilePath { get; }

    /// <summary>ssh-keyscan's path: <c>$ETPHONEHOME_SSH_KEYSCAN</c>, else next to <c>$ETPHONEHOME_SSH</c>, else on PATH.</summary>
    public string KeyscanPath { get; init; } = DefaultKeyscanPath();

    /// <summary>The pinned key of <paramref name="address"/>'s host and port; null when none is.</summary>
    public HostKey? Get(ServerAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return Load().TryGetValue(address.PinKey, out var key) ? key : null;
    }

    /// <summary>Every pin, by <c>host:port</c>.</summary>
    public IReadOnlyDictionary<string, HostKey> List() => Load();

    /// <summary>Pins <paramref name="key"/> for <paramref name="address"/>'s host and port, replacing a pin it had.</summary>
    public void Pin(ServerAddress address, HostKey key)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(key);
        ConnectionProfile.Update(FilePath, () =>
        {
            var pins = Load();
            pins[address.PinKey] = key;
            Save(pins);
            return true;
        });
    }

    /// <summary>Forgets the pin of <paramref name="address"/>'s host and port; false when there was none.</summary>
    public bool Remove(ServerAddress address)
    {
        ArgumentNullException.ThrowIfNull(address);
        return ConnectionProfile.Update(FilePath, () =>
        {
            var pins = Load();
            if (!pins.Remove(address.PinKey))
            {
                return false;
            }

            Save(pins);
            return true;
        });
    }

    /// <summary>
    /// The key to connect with. A pinned key is used as it is (an expected fingerprint that names another key is refused:
    /// the pin decides, and a changed pin is removed on purpose first). Without a pin the server's keys are scanned and one is
    /// chosen by <see cref="Choose"/>, then pinned.
    /// </summary>
    public async Task<HostKey> ResolveAsync(ServerAddress address, string? expectedFingerprint, Func<HostKey, bool>? confirm, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(address);
        if (Get(address) is { } pinned)
        {
            if (expectedFingerprint is not null && !SshFingerprint.Matches(expectedFingerprint, pinned.Fingerprint))
            {
                throw new HostKeyMismatchException(
                    $"the host key pinned for {address.PinKey} is {pinned.Fingerprint}, not {Show(expectedFingerprint)}; if the server's key was changed on purpose, " +
                    $"{ForgetAdvice}",
                    Show(expectedFingerprint), [pinned.Fingerprint]);
            }

            return pinned;
        }

        if (expectedFingerprint is null && confirm is null)
        {
            throw NotTrusted(address); // refuse before touching the network
        }

        var offered = await ScanAsync(address, ct).ConfigureAwait(false);
        var chosen = Choose(address, offered, expectedFingerprint, confirm);
        Pin(address, chosen);
        return chosen;
    }

    /// <summary>
    /// The decision for a server with no pin. With <paramref name="expectedFingerprint"/> the offered key with that fingerprint
    /// (none → <see cref="HostKeyMismatchException"/> naming the expected and the offered fingerprints); otherwise the preferred
    /// offered key (ed25519 first) if <paramref name="confirm"/>, shown it, says yes. No fingerprint and no confirmation →
    /// <see cref="HostKeyNotTrustedException"/>: a key is never trusted silently.
    /// </summary>
    public static HostKey Choose(ServerAddress address, IReadOnlyList<HostKey> offered, string? expectedFingerprint, Func<HostKey, bool>? confirm)
    {
        ArgumentNullException.ThrowIfNull(address);
        ArgumentNullException.ThrowIfNull(offered);
        var ordered = offered.OrderBy(k => HostKey.Rank(k.Type)).ToList();
        if (ordered.Count == 0)
        {
            throw new SshConnectionException($"the server at {address.PinKey} offered no host key");
        }

        if (expectedFingerprint is not null)
        {
            // Every offered key is compared (constant time each), so the time taken does not tell which one matched.
            HostKey? match = null;
            foreach (var key in ordered)
            {
                if (SshFingerprint.Matches(expectedFingerprint, key.Fingerprint))
                {
                    match ??= key;
                }
            }

            return match ?? throw new HostKeyMismatchException(
                $"the server at {address.PinKey} offered no host key with fingerprint {Show(expectedFingerprint)}; it offered " +
                string.Join(", ", ordered.Select(k => $"{k.Type} {k.Fingerprint}")) +
                ". Check the fingerprint with the server's operator (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server); " +
                "if they differ, something else may be answering in the server's place",
                Show(expectedFingerprint), [.. ordered.Select(k => k.Fingerprint)]);
        }

        if (confirm is null)
        {
            throw NotTrusted(address);
        }

        var preferred = ordered[0];
        return confirm(preferred)
            ? preferred
            : throw new HostKeyNotTrustedException($"the host key {preferred.Fingerprint} of {address.PinKey} was not accepted; nothing was pinned");
    }

    /// <summary>
    /// Runs <c>ssh-keyscan -T 5 -p PORT -t ed25519,ecdsa,rsa -- HOST</c> and returns the keys it printed, ed25519 first.
    /// Throws <see cref="SshConnectionException"/> when ssh-keyscan cannot run or the server offers no key.
    /// </summary>
    public Task<IReadOnlyList<HostKey>> ScanAsync(ServerAddress address, CancellationToken ct) => ScanAsync(KeyscanPath, address, ct);

    internal static async Task<IReadOnlyList<HostKey>> ScanAsync(string keyscanPath, ServerAddress address, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(address);
        var psi = new ProcessStartInfo(keyscanPath)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var arg in ScanArguments(address))
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
            throw new SshConnectionException($"cannot run {keyscanPath} ({ex.Message}); install the OpenSSH client or set ETPHONEHOME_SSH_KEYSCAN", ex);
        }

        process.StandardInput.Close();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            var stdout = ReadBoundedAsync(process.StandardOutput.BaseStream, MaxScanOutputBytes, timeout.Token);
            var stderr = ReadBoundedAsync(process.StandardError.BaseStream, 8 * 1024, timeout.Token);
            await process.WaitForExitAsync(timeout.Token).ConfigureAwait(false);
            var keys = HostKey.ParseKeyscan(await stdout.ConfigureAwait(false));
            if (keys.Count == 0)
            {
                var detail = (await stderr.ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                    .LastOrDefault(l => !l.StartsWith('#'));
                throw new SshConnectionException($"the server at {address.PinKey} offered no SSH host key" +
                                                 (detail is null ? " (is sshd reachable there?)" : ": " + UntrustedText.ForTerminal(detail, 300)));
            }

            return keys;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            throw new SshConnectionException($"ssh-keyscan of {address.PinKey} did not finish in 30 s");
        }
        finally
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
    }

    /// <summary>ssh-keyscan's arguments: the host after <c>--</c>, so it is never read as an option.</summary>
    public static IReadOnlyList<string> ScanArguments(ServerAddress address) =>
        ["-T", "5", "-p", address.Port.ToString(CultureInfo.InvariantCulture), "-t", "ed25519,ecdsa,rsa", "--", address.HostName];

    private static async Task<string> ReadBoundedAsync(Stream stream, int limit, CancellationToken ct)
    {
        var buffer = new byte[limit];
        var total = 0;
        var scratch = new byte[4096];
        int n;
        while ((n = await stream.ReadAsync(scratch, ct).ConfigureAwait(false)) > 0)
        {
            var take = Math.Min(n, limit - total);
            scratch.AsSpan(0, take).CopyTo(buffer.AsSpan(total));
            total += take; // past the limit the rest is read and dropped, so the process is never blocked on a full pipe
        }

        return Encoding.UTF8.GetString(buffer, 0, total);
    }

    internal static string DefaultKeyscanPath()
    {
        var keyscan = Environment.GetEnvironmentVariable("ETPHONEHOME_SSH_KEYSCAN");
        if (!string.IsNullOrWhiteSpace(keyscan))
        {
            return keyscan;
        }

        var ssh = Environment.GetEnvironmentVariable(SshLinkOptions.SshVariable);
        if (!string.IsNullOrWhiteSpace(ssh) && Path.GetDirectoryName(ssh) is { Length: > 0 } dir)
        {
            var sibling = Path.Combine(dir, OperatingSystem.IsWindows() ? "ssh-keyscan.exe" : "ssh-keyscan");
            if (File.Exists(sibling))
            {
                return sibling;
            }
        }

        return "ssh-keyscan";
    }

    /// <summary>What to do when a server's key changed on purpose.</summary>
    internal const string ForgetAdvice = "remove the pin (Remove-EphServerHostKey, or `eph-server connections forget-host-key HOST[:PORT]` on the command line) and connect again";

    private static HostKeyNotTrustedException NotTrusted(ServerAddress address) => new(
        $"no host key is pinned for {address.PinKey} and none was confirmed: a server's key is never trusted silently. " +
        $"Ask the server's operator for its fingerprint (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server) and pass it " +
        $"with -HostKeyFingerprint SHA256:… (--host-key-fingerprint on the command line), or connect interactively to be shown the fingerprint and asked");

    private static string Show(string text) => UntrustedText.ForTerminal(text, 100);

    private Dictionary<string, HostKey> Load()
    {
        string json;
        try
        {
            json = File.ReadAllText(FilePath);
        }
        catch (FileNotFoundException)
        {
            return new Dictionary<string, HostKey>(StringComparer.Ordinal);
        }
        catch (DirectoryNotFoundException)
        {
            return new Dictionary<string, HostKey>(StringComparer.Ordinal);
        }
        catch (IOException ex)
        {
            throw new ConnectionProfileException($"cannot read the pinned host keys in {FilePath}: {ex.Message}", ex);
        }
        catch (UnauthorizedAccessException ex)
        {
            throw new ConnectionProfileException($"cannot read the pinned host keys in {FilePath}: {ex.Message}", ex);
        }

        PinsFile? file;
        try
        {
            file = JsonSerializer.Deserialize<PinsFile>(json, s_json);
        }
        catch (JsonException ex)
        {
            throw Corrupt($"it is not valid JSON ({ex.Message})", ex);
        }

        var pins = new Dictionary<string, HostKey>(StringComparer.Ordinal);
        foreach (var (server, entry) in file?.Servers ?? [])
        {
            if (entry?.Key is null || entry.Fingerprint is null)
            {
                throw Corrupt($"the entry for '{Show(server)}' has no key or fingerprint");
            }

            HostKey key;
            try
            {
                key = HostKey.Parse(entry.Key);
            }
            catch (FormatException ex)
            {
                throw Corrupt($"the key of '{Show(server)}' is not valid: {ex.Message}", ex);
            }

            if (key.Fingerprint != entry.Fingerprint)
            {
                throw Corrupt($"the key of '{Show(server)}' does not have the fingerprint recorded with it");
            }

            pins[server] = key;
        }

        return pins;
    }

    private ConnectionProfileException Corrupt(string why, Exception? inner = null) => new(
        $"the pinned host keys file {FilePath} is damaged: {why}. Fix it, or delete it and pin the servers' keys again " +
        "(with -HostKeyFingerprint)", inner);

    private void Save(Dictionary<string, HostKey> pins)
    {
        var file = new PinsFile
        {
            Servers = pins.OrderBy(p => p.Key, StringComparer.Ordinal).ToDictionary(
                p => p.Key, p => (PinEntry?)new PinEntry { Key = p.Value.PublicKeyLine, Fingerprint = p.Value.Fingerprint }, StringComparer.Ordinal),
        };
        ConnectionProfile.WritePrivateFile(FilePath, JsonSerializer.Serialize(file, s_json) + "\n");
    }

    private sealed class PinsFile
    {
        [JsonPropertyName("version")]
        public int Version { get; set; } = 1;

        [JsonPropertyName("servers")]
        public Dictionary<string, PinEntry?>? Servers { get; set; }
    }

    private sealed class PinEntry
    {
        [JsonPropertyName("key")]
        public string? Key { get; set; }

        [JsonPropertyName("fingerprint")]
        public string? Fingerprint { get; set; }
    }
}
