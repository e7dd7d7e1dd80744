using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>
/// The server connection of one PowerShell session (Connect-EphServer): one reconnecting <see cref="RemoteServer"/>,
/// kept in the session's <see cref="ModuleSettings"/> so every cmdlet of that runspace, and no other, goes through it.
/// </summary>
internal sealed class EphRemoteSession
{
    /// <summary>How long completers reuse the clients and keys they fetched (a prompt asks several times a second).</summary>
    public static readonly TimeSpan CompletionCacheLifetime = TimeSpan.FromSeconds(10);

    private readonly object _cacheLock = new();
    private Cached<IReadOnlyList<ClientRecord>>? _clients;
    private Cached<IReadOnlyList<KeyRecord>>? _keys;

    public EphRemoteSession(RemoteServer server, string? savedName)
    {
        Server = server ?? throw new ArgumentNullException(nameof(server));
        SavedName = savedName;
    }

    public RemoteServer Server { get; }

    /// <summary>The saved connection this came from (Connect-EphServer -Name), if any.</summary>
    public string? SavedName { get; }

    public ServerAddress Address => Server.Address;

    /// <summary>"ops@hub:22" as people read it.</summary>
    public string Describe() => Server.Address.ToString();

    /// <summary>The clients for completion: fetched at most every <see cref="CompletionCacheLifetime"/>; none on any failure.</summary>
    public IReadOnlyList<ClientRecord> CompletionClients(TimeSpan timeout)
    {
        lock (_cacheLock)
        {
            if (_clients is { } cached && DateTime.UtcNow - cached.At < CompletionCacheLifetime)
            {
                return cached.Value;
            }
        }

        var clients = Fetch(async ct => (await (await Server.GetAsync(ct).ConfigureAwait(false)).SearchAsync(new ClientQuery(), ct).ConfigureAwait(false)).Clients, timeout);
        lock (_cacheLock)
        {
            _clients = new(DateTime.UtcNow, clients);
        }

        return clients;
    }

    /// <summary>The keys for completion, cached like <see cref="CompletionClients"/>.</summary>
    public IReadOnlyList<KeyRecord> CompletionKeys(TimeSpan timeout)
    {
        lock (_cacheLock)
        {
            if (_keys is { } cached && DateTime.UtcNow - cached.At < CompletionCacheLifetime)
            {
                return cached.Value;
            }
        }

        var keys = Fetch(async ct => await (await Server.GetAsync(ct).ConfigureAwait(false)).ListKeysAsync(false, ct).ConfigureAwait(false), timeout);
        lock (_cacheLock)
        {
            _keys = new(DateTime.UtcNow, keys);
        }

        return keys;
    }

    /// <summary>A completion answer and when it was fetched (a class: no value type holding Core types in a layout).</summary>
    private sealed record Cached<T>(DateTime At, T Value);

    private static IReadOnlyList<T> Fetch<T>(Func<CancellationToken, Task<IReadOnlyList<T>>> fetch, TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            // Completers are synchronous; the fetch runs on the thread pool so no context is captured.
            return Task.Run(() => fetch(cts.Token), cts.Token).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is OperationCanceledException or RemoteConnectionException or OperatorRemoteException or IOException or ObjectDisposedException or ArgumentException)
        {
            // Completion must never throw at the prompt.
            return [];
        }
    }
}

/// <summary>
/// Errors of the operator service as the cmdlets report them: the same IDs and categories as the local cmdlets where
/// they mean the same thing (ClientNotFound, InvalidCommandRequest, RateLimited…), PermissionDenied naming the role.
/// </summary>
internal static class RemoteErrors
{
    /// <summary>
    /// The error record of a refusal or failure the server answered; <paramref name="invalidArgumentId"/> is the local
    /// cmdlet's ID for a bad argument (InvalidCommandRequest for Invoke-EphCommand…).
    /// </summary>
    public static ErrorRecord ToRecord(OperatorRemoteException ex, EphRemoteSession? session, object? target = null, string? invalidArgumentId = null) =>
        Describe(ex, session, target, invalidArgumentId).ToRecord(ex);

    /// <summary>What <see cref="ToRecord"/> reports: ID, category, target and message.</summary>
    public static RemoteErrorInfo Describe(OperatorRemoteException ex, EphRemoteSession? session, object? target = null, string? invalidArgumentId = null)
    {
        var error = ex.Error;
        switch (error.Code)
        {
            case OperatorErrorCodes.Forbidden:
                {
                    var who = session?.Server.Identity;
                    var message = string.Format(CultureInfo.CurrentCulture, Strings.OperatorRoleRequired, error.Message,
                        who?.Operator ?? "?", who?.Role.ToString().ToLowerInvariant() ?? "?", error.Needs ?? "?");
                    return new(Strings.OperatorRoleRequiredId, ErrorCategory.PermissionDenied, target ?? error.Needs, message);
                }

            case OperatorErrorCodes.NotFound:
                {
                    var names = error.Names is { Count: > 0 } n ? n : null;
                    var message = names is null
                        ? error.Message
                        : string.Format(CultureInfo.CurrentCulture, Strings.ClientsNotFound, string.Join(", ", names.Select(x => $"'{x}'")));
                    return new(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, names?.ToArray() ?? target, message);
                }

            case OperatorErrorCodes.InvalidArgument:
                return new(invalidArgumentId ?? Strings.RemoteInvalidArgumentId, ErrorCategory.InvalidArgument, error.Field ?? target, error.Message);
            case OperatorErrorCodes.RateLimited:
                return new(Strings.RemoteRateLimitedId, ErrorCategory.LimitsExceeded, target, error.Message);
            case OperatorErrorCodes.Cancelled:
                return new(Strings.RemoteOperationCancelledId, ErrorCategory.OperationStopped, target, error.Message);
            case OperatorErrorCodes.ConnectionLost:
                return DescribeConnection(new OperatorConnectionLostException(error.Message), session);
            default:
                return new(Strings.RemoteOperationFailedId, ErrorCategory.NotSpecified, target, error.Message);
        }
    }

    /// <summary>The error record of a connection that could not be made or was lost; host key faults have IDs of their own.</summary>
    public static ErrorRecord ConnectionError(Exception ex, EphRemoteSession? session, string? server = null) =>
        DescribeConnection(ex, session, server).ToRecord(ex);

    /// <summary>What <see cref="ConnectionError"/> reports.</summary>
    public static RemoteErrorInfo DescribeConnection(Exception ex, EphRemoteSession? session, string? server = null)
    {
        var where = server ?? session?.Describe() ?? "?";
        var (id, category) = ex switch
        {
            HostKeyChangedException => (Strings.HostKeyChangedId, ErrorCategory.SecurityError),
            HostKeyMismatchException => (Strings.HostKeyMismatchId, ErrorCategory.SecurityError),
            HostKeyNotTrustedException => (Strings.HostKeyNotTrustedId, ErrorCategory.SecurityError),
            SshAuthenticationException => (Strings.SshAuthenticationFailedId, ErrorCategory.AuthenticationError),
            _ => (Strings.ServerConnectionFailedId, ErrorCategory.ConnectionError),
        };
        return new(id, category, where, string.Format(CultureInfo.CurrentCulture, Strings.ServerConnectionFailed, where, ex.Message));
    }

    /// <summary>True for the exceptions <see cref="ConnectionError"/> describes.</summary>
    public static bool IsConnectionFault(Exception ex) => ex is RemoteConnectionException or OperatorConnectionLostException;
}

/// <summary>An error the cmdlets report: stable ID, category, target and message.</summary>
internal sealed record RemoteErrorInfo(string Id, ErrorCategory Category, object? Target, string Message)
{
    public ErrorRecord ToRecord(Exception ex) => EphCmdlet.NewError(Id, Category, Target, Message, ex);
}
