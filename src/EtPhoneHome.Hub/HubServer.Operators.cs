using System.Globalization;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Hub;

// Operators: the keys answer for an operator key, and the connections eph-gate operator relays to the operator service.
public sealed partial class HubServer
{
    /// <summary>The first frame's op of an operator's connection (eph-gate operator).</summary>
    internal const string OperatorOp = "operator";

    /// <summary>
    /// Serves one operator connection once the hub has checked it: the stream (the operator's ssh session, relayed by
    /// eph-gate operator), the active operator, and the session's SSH_CONNECTION (its source address). The operator
    /// service sets it; while it is null an operator connection is logged and closed.
    /// </summary>
    internal Func<Stream, OperatorRecord, string?, CancellationToken, Task>? OperatorSessionHandler { get; set; }

    /// <summary>
    /// The authorized_keys line for an operator key: the forced eph-gate operator under <c>restrict</c> (no port forwarding,
    /// no listening, no pty, agent or X11 forwarding) for an active operator whose stored key is the offered one; nothing
    /// for a removed operator (sshd refuses the key).
    /// </summary>
    private string[] OperatorKeyLines(OperatorRecord op, string fingerprint, string keyType, string key)
    {
        if (op.Removed)
        {
            return [];
        }

        if (!string.Equals(op.PublicKey, key, StringComparison.Ordinal) || !string.Equals(op.KeyType, keyType, StringComparison.Ordinal))
        {
            Log(EphLogLevel.Warning, $"key {fingerprint} offered for operator '{op.Name}' is not the stored key; refused");
            return [];
        }

        var command = $"{_options.GatePath} operator --socket {SocketPath} --fingerprint {fingerprint}";
        return [string.Create(CultureInfo.InvariantCulture, $"restrict,command=\"{command}\" {keyType} {key}")];
    }

    /// <summary>An operator's connection: the active operator of the key sshd authenticated, handed to the operator service.</summary>
    private async Task OperatorConnectionAsync(Stream stream, GateRequest request, int? peerPid, CancellationToken ct)
    {
        var op = _registry.GetOperator(request.Fingerprint);
        if (op is null && RelayingHub(request.Fingerprint) is { } hub && HubPeerHandler is { } peer)
        {
            Log(EphLogLevel.Information, $"hub {hub.Id} ({request.Fingerprint}) connected from {ClipLong(request.SshConnection ?? "?")} to relay");
            await peer(stream, HubIdentityOf(hub, request.Fingerprint, SourceAddress(request.SshConnection)), ct).ConfigureAwait(false);
            return;
        }

        if (op is null || !string.Equals(op.Fingerprint, request.Fingerprint, StringComparison.Ordinal))
        {
            Log(EphLogLevel.Warning, $"operator connection for key {ClipLong(request.Fingerprint)} (gate pid {peerPid?.ToString(CultureInfo.InvariantCulture) ?? "?"}): no active operator has that key; closing");
            return;
        }

        var handler = OperatorSessionHandler;
        if (handler is null)
        {
            Log(EphLogLevel.Warning, $"operator '{op.Name}' connected from {ClipLong(request.SshConnection ?? "?")}: operator service not available; closing");
            return;
        }

        Log(EphLogLevel.Information, $"operator '{op.Name}' ({op.Fingerprint}, {OperatorRoles.Wire(op.Role)}) connected from {ClipLong(request.SshConnection ?? "?")}");
        await handler(stream, op, request.SshConnection, ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The operator service of this hub: every connection borrows the hub's registry (a SQLite connection per call, so
    /// nothing queues behind a lock; its client index stays warm, so an operator's first search after connecting does not
    /// rebuild it), and the operator's role is read from it on every request.
    /// </summary>
    private OperatorService NewOperatorService()
    {
        var service = new OperatorService(
            () => RegistryStores.Borrow(_registry),
            fingerprint => _registry.GetOperator(fingerprint) is { Removed: false } op && op.Fingerprint == fingerprint
                ? new OperatorIdentity(op.Name, op.Fingerprint, op.Role, null)
                : RelayingHub(fingerprint) is { } hub ? HubIdentityOf(hub, fingerprint, null) : null,
            _options.Log)
        {
            HostName = _options.Host ?? Environment.MachineName,
            OperatorByName = name => _registry.ListOperators(includeRemoved: false)
                .FirstOrDefault(o => string.Equals(o.Name, name, StringComparison.OrdinalIgnoreCase)) is { } op
                ? new OperatorIdentity(op.Name, op.Fingerprint, op.Role, null)
                : null,
            LocalHubId = () => _hubId,
            Relay = _relay,
        };
        return service;
    }

    /// <summary>The client address of an SSH_CONNECTION value ("client_ip client_port server_ip server_port"); null when it is not one.</summary>
    internal static string? SourceAddress(string? sshConnection)
    {
        var first = sshConnection?.Split(' ', StringSplitOptions.RemoveEmptyEntries).FirstOrDefault();
        return first is not null && System.Net.IPAddress.TryParse(first, out var ip) ? ip.ToString() : null;
    }

    /// <summary>A gate-supplied value for a log line: whole up to 100 characters (a fingerprint, an SSH_CONNECTION), cut after.</summary>
    private static string ClipLong(string? s) => s is null ? "" : s.Length <= 100 ? s : s[..100] + "…";
}
