using System.Diagnostics;
using System.Globalization;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Hub;

// Hub to hub: this hub's relay key and published endpoint, and the other hubs' relay keys answered as operator gates.
public sealed partial class HubServer
{
    private readonly HubRelay? _relay;

    /// <summary>
    /// Serves another hub's connection (its relay key, published in the registry): the operator service with the hub's
    /// identity, which relays fan-outs for named operators to this hub's own clients only.
    /// </summary>
    internal Func<Stream, OperatorIdentity, CancellationToken, Task>? HubPeerHandler { get; set; }

    /// <summary>A hub's row as the registry says now; null when it has none.</summary>
    private HubRecord? FindHub(string hubId) => _registry.ListHubs().FirstOrDefault(h => string.Equals(h.Id, hubId, StringComparison.Ordinal));

    /// <summary>
    /// The hubs' published relay keys by fingerprint, as of the last heartbeat (every few seconds): sshd asks about every
    /// key it is offered, and a storm of agents must not cost a registry query each for the few hubs' keys.
    /// </summary>
    private volatile IReadOnlyDictionary<string, HubRecord> _relayKeys = new Dictionary<string, HubRecord>(StringComparer.Ordinal);

    /// <summary>Reads the hubs' relay keys again (at start and with each heartbeat); a newer row wins a shared key.</summary>
    private void RefreshRelayKeys()
    {
        var keys = new Dictionary<string, HubRecord>(StringComparer.Ordinal);
        foreach (var hub in _registry.ListHubs().Where(h => h.Relay is not null).OrderBy(h => h.LastSeen))
        {
            keys[hub.Relay!.KeyFingerprint] = hub;
        }

        _relayKeys = keys;
    }

    /// <summary>The live hub whose published relay key has <paramref name="fingerprint"/>; null for none or a dead one.</summary>
    private HubRecord? RelayingHub(string fingerprint) =>
        PublishedRelayKey(fingerprint) is { } hub && hub.IsAlive(DateTimeOffset.UtcNow, _options.DeadHubTimeout) ? hub : null;

    /// <summary>The hub, alive or not, that published <paramref name="fingerprint"/> as its relay key; null for none.</summary>
    private HubRecord? PublishedRelayKey(string fingerprint) => _relayKeys.TryGetValue(fingerprint, out var hub) ? hub : null;

    /// <summary>The authorized_keys line for a hub's relay key: the forced eph-gate operator under <c>restrict</c>, for the stored key only.</summary>
    private string[] HubKeyLines(HubRecord hub, string fingerprint, string keyType, string key)
    {
        if (!string.Equals(hub.Relay!.Key, keyType + " " + key, StringComparison.Ordinal))
        {
            Log(EphLogLevel.Warning, $"key {fingerprint} offered for hub {hub.Id} is not the key it published; refused");
            return [];
        }

        var command = $"{_options.GatePath} operator --socket {SocketPath} --fingerprint {fingerprint}";
        return [string.Create(CultureInfo.InvariantCulture, $"restrict,command=\"{command}\" {keyType} {key}")];
    }

    /// <summary>The identity of a connection made with a live hub's relay key; null when the key is no hub's.</summary>
    private static OperatorIdentity HubIdentityOf(HubRecord hub, string fingerprint, string? source) =>
        new("hub " + hub.Id, fingerprint, OperatorRole.Reader, source) { Hub = hub.Id };

    /// <summary>
    /// With a relay address: makes sure the relay key exists (0600, created once with ssh-keygen) and publishes the
    /// address, this host's sshd key and the relay public key in the hub's row, so the other hubs relay to this one and
    /// accept its key. A missing host key or a bad address stops the start with why.
    /// </summary>
    private void PublishRelay(string hubId)
    {
        if (_options.RelayAddress is not { } address)
        {
            return;
        }

        var parsed = ServerAddress.Parse(address);
        string hostKeyLine;
        try
        {
            hostKeyLine = HostKey.Parse(File.ReadAllText(_options.RelayHostKeyFile).Trim()).PublicKeyLine;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException or ArgumentException)
        {
            throw new InvalidOperationException($"--relay-host-key {_options.RelayHostKeyFile}: {ex.Message}; the other hubs pin this host's sshd key from it", ex);
        }

        var keyFile = _options.DataDirectory.HubRelayKeyFile;
        if (!File.Exists(keyFile))
        {
            GenerateKey(keyFile, hubId);
        }

        var publicLine = File.ReadAllText(keyFile + ".pub").Trim();
        var parts = publicLine.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || SshKeyFingerprint.FromBase64Blob(parts[1]) is not { } fingerprint)
        {
            throw new InvalidOperationException($"{keyFile}.pub is not an OpenSSH public key; remove {keyFile} and its .pub to make a new one");
        }

        _registry.PublishHubRelay(hubId, new HubRelayEndpoint(parsed.ToString(), hostKeyLine, parts[0] + " " + parts[1], fingerprint));
        Log(EphLogLevel.Information, $"hub {hubId} relays at {parsed} (relay key {fingerprint})");
    }

    private static void GenerateKey(string keyFile, string hubId)
    {
        var psi = new ProcessStartInfo("ssh-keygen") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in new[] { "-q", "-t", "ed25519", "-N", "", "-C", "eph-hub-relay " + hubId, "-f", keyFile })
        {
            psi.ArgumentList.Add(arg);
        }

        using var process = Process.Start(psi) ?? throw new InvalidOperationException("cannot run ssh-keygen to make the hub's relay key");
        var stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ssh-keygen could not make the hub's relay key {keyFile}: {stderr.Trim()}");
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(keyFile, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }
}
