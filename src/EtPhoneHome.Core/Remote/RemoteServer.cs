namespace EtPhoneHome.Core.Remote;

/// <summary>
/// An operator's connection to one server, kept for a PowerShell session, a verb run or an MCP server: one ssh
/// process carrying the operator service, opened on first use and opened again when it dropped (a hub restart, a
/// network change) — the next request reconnects; requests in flight when it dropped end with a clear error or, for
/// fan-outs, a result per target. The host key is the pinned one, always.
/// </summary>
public sealed class RemoteServer : IAsyncDisposable
{
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly Func<CancellationToken, Task<RemoteOperator>> _open;
    private RemoteOperator? _current;
    private bool _disposed;

    /// <param name="address">Where the server's sshd listens, and as whom.</param>
    /// <param name="pinned">The server's pinned host key (see <see cref="HostKeyPins"/>).</param>
    /// <param name="surface">The surface recorded in the history: pwsh, cli or mcp.</param>
    /// <param name="options">ssh's path and timeouts.</param>
    public RemoteServer(ServerAddress address, HostKey pinned, string surface, SshLinkOptions? options = null)
    {
        Address = address ?? throw new ArgumentNullException(nameof(address));
        PinnedKey = pinned ?? throw new ArgumentNullException(nameof(pinned));
        _open = ct => OpenAsync(address, pinned, surface, options, ct);
    }

    /// <summary>A server reached some other way (tests: a socket pair).</summary>
    internal RemoteServer(ServerAddress address, HostKey pinned, Func<CancellationToken, Task<RemoteOperator>> open)
    {
        Address = address;
        PinnedKey = pinned;
        _open = open;
    }

    public ServerAddress Address { get; }

    public HostKey PinnedKey { get; }

    /// <summary>Who the server said we are at the last connect; null before the first.</summary>
    public HelloResult? Identity { get; private set; }

    /// <summary>Times the connection was opened (1 after the first request; more after drops).</summary>
    public int Connects { get; private set; }

    /// <summary>Whether a connection is open now.</summary>
    public bool IsConnected => _current?.IsOpen == true;

    /// <summary>The open connection, or a new one when there is none or it dropped.</summary>
    public async Task<RemoteOperator> GetAsync(CancellationToken ct)
    {
        if (_current is { IsOpen: true } open)
        {
            return open;
        }

        await _lock.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_current is { IsOpen: true } raced)
            {
                return raced;
            }

            if (_current is not null)
            {
                await _current.DisposeAsync().ConfigureAwait(false);
                _current = null;
            }

            _current = await _open(ct).ConfigureAwait(false);
            Identity = _current.Identity;
            Connects++;
            return _current;
        }
        finally
        {
            _lock.Release();
        }
    }

    private static async Task<RemoteOperator> OpenAsync(ServerAddress address, HostKey pinned, string surface, SshLinkOptions? options, CancellationToken ct)
    {
        var link = await SshLink.OpenAsync(address, pinned, options, ct).ConfigureAwait(false);
        // ssh's stdout is read by the channel's own thread with blocking reads (see BlockingReadStream).
        var channel = new OperatorChannel(new BlockingReadStream(link.Output), link.Input, link);
        try
        {
            using var hello = CancellationTokenSource.CreateLinkedTokenSource(ct);
            hello.CancelAfter(TimeSpan.FromSeconds(30));
            return await RemoteOperator.OpenAsync(channel, surface, hello.Token).ConfigureAwait(false);
        }
        catch (OperatorConnectionLostException ex)
        {
            // ssh authenticated, but no operator service answered: the key is not an operator's (sshd gave it a
            // client's session, which closes on a frame that is not an agent's hello), or the hub is down.
            var stderr = link.ErrorOutput;
            throw new RemoteConnectionException(
                $"the server at {address} accepted the ssh connection but its operator service did not answer ({ex.Message}). " +
                "Either this key is not an operator's key — an admin adds it on the server with `eph-server operators add --name NAME --key \"<your public key>\" --role reader|operator|admin` — " +
                "or the hub is not running there." + (string.IsNullOrWhiteSpace(stderr) ? "" : $" The server said: {stderr.Trim()}"), ex)
            {
                SshError = stderr,
            };
        }
    }

    /// <summary>Ends the connection (Disconnect-EphServer); the next request opens a new one unless disposed.</summary>
    public async Task DisconnectAsync()
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_current is not null)
            {
                await _current.DisposeAsync().ConfigureAwait(false);
                _current = null;
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await DisconnectAsync().ConfigureAwait(false);
        _disposed = true;
    }
}
