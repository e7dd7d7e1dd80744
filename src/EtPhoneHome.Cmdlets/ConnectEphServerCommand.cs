using System.Globalization;
using System.Management.Automation;
using System.Management.Automation.Host;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>
/// Connects this PowerShell session to a server's operator service over SSH: the server's host key is pinned (known
/// already, or named with -HostKeyFingerprint, or shown and confirmed; never trusted silently), the service greets
/// once so a wrong key or role shows now, and from then on every cmdlet of the session goes through the server.
/// </summary>
[Cmdlet(VerbsCommunications.Connect, "EphServer", HelpUri = HelpLinks.Base + "Connect-EphServer.md", DefaultParameterSetName = HostNameSet)]
[OutputType(typeof(EphServerConnection))]
public sealed class ConnectEphServerCommand : EphAsyncCmdlet
{
    public const string HostNameSet = "HostName";
    public const string SavedSet = "Saved";

    /// <summary>The server's host name or address; also accepts <c>user@host:port</c>.</summary>
    [Parameter(ParameterSetName = HostNameSet, Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    [Alias("Server")]
    public string HostName { get; set; } = "";

    /// <summary>The server's sshd port (22).</summary>
    [Parameter(ParameterSetName = HostNameSet)]
    [ValidateRange(1, 65535)]
    public int Port { get; set; } = 22;

    /// <summary>The account on the server (ssh's default when omitted).</summary>
    [Parameter(ParameterSetName = HostNameSet)]
    [ValidateNotNullOrEmpty]
    public string? User { get; set; }

    /// <summary>The private key ssh offers (ssh-agent's and ssh's defaults when omitted).</summary>
    [Parameter(ParameterSetName = HostNameSet)]
    [ValidateNotNullOrEmpty]
    public string? KeyFile { get; set; }

    /// <summary>The server host key's expected fingerprint (SHA256:…), for a server not pinned yet; required where nobody can be asked.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? HostKeyFingerprint { get; set; }

    /// <summary>A saved connection's name: connects to it (alone), or the name to save this one as (with -Save).</summary>
    [Parameter(ParameterSetName = SavedSet, Mandatory = true, Position = 0)]
    [Parameter(ParameterSetName = HostNameSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(SavedConnectionCompleter))]
    public string? Name { get; set; }

    /// <summary>Saves the connection under -Name in the user's profile.</summary>
    [Parameter(ParameterSetName = HostNameSet)]
    public SwitchParameter Save { get; set; }

    /// <summary>Writes the connection (server, operator, role, host key) after connecting.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        var address = await AddressAsync().ConfigureAwait(false);
        var shown = address.ToString();
        HostKey key;
        try
        {
            key = await new HostKeyPins().ResolveAsync(address, HostKeyFingerprint, Confirm(address), ct).ConfigureAwait(false);
        }
        catch (RemoteConnectionException ex)
        {
            throw new EphTerminatingException(RemoteErrors.ConnectionError(ex, null, shown));
        }
        catch (ConnectionProfileException ex)
        {
            throw new EphTerminatingException(NewError(Strings.ProfileErrorId, ErrorCategory.ReadError, shown, ex.Message, ex));
        }

        var server = new RemoteServer(address, key, Surfaces.PowerShell);
        try
        {
            await server.GetAsync(ct).ConfigureAwait(false); // the greeting: a wrong key or a missing operator shows now
        }
        catch (Exception ex) when (RemoteErrors.IsConnectionFault(ex) || ex is OperatorRemoteException)
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw new EphTerminatingException(ex is OperatorRemoteException remote
                ? RemoteErrors.ToRecord(remote, null, shown)
                : RemoteErrors.ConnectionError(ex, null, shown));
        }
        catch
        {
            await server.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        string? savedName = ParameterSetName == SavedSet ? Name : null;
        if (Save && Name is { } name)
        {
            try
            {
                new SavedConnections().Save(name, address);
                savedName = name;
            }
            catch (Exception ex) when (ex is ConnectionProfileException or ArgumentException)
            {
                await server.DisposeAsync().ConfigureAwait(false);
                throw new EphTerminatingException(NewError(Strings.ProfileErrorId, ErrorCategory.WriteError, name, ex.Message, ex));
            }
        }

        var session = new EphRemoteSession(server, savedName);
        var previous = await OnPipelineThreadAsync(() =>
        {
            var current = ModuleConfiguration.Current;
            ModuleConfiguration.Current = current with { Remote = session };
            return current.Remote;
        }).ConfigureAwait(false);
        if (previous is not null)
        {
            await previous.Server.DisposeAsync().ConfigureAwait(false);
        }

        var who = server.Identity!;
        WriteVerbose(string.Format(CultureInfo.CurrentCulture, Strings.VerboseConnected, shown, who.Operator, who.Role.ToString().ToLowerInvariant(), who.Host, key.Fingerprint));
        if (PassThru)
        {
            WriteObject(ServerConnections.Describe(session));
        }
    }

    private async Task<ServerAddress> AddressAsync()
    {
        if (ParameterSetName == SavedSet)
        {
            SavedConnection? saved;
            try
            {
                saved = new SavedConnections().Get(Name!);
            }
            catch (Exception ex) when (ex is ConnectionProfileException or ArgumentException)
            {
                throw new EphTerminatingException(NewError(Strings.ProfileErrorId, ErrorCategory.InvalidArgument, Name, ex.Message, ex));
            }

            return saved?.Address ?? throw new EphTerminatingException(NewError(Strings.SavedConnectionNotFoundId, ErrorCategory.ObjectNotFound, Name,
                string.Format(CultureInfo.CurrentCulture, Strings.SavedConnectionNotFound, Name)));
        }

        if (Save && Name is null)
        {
            throw new EphTerminatingException(NewError(Strings.InvalidServerAddressId, ErrorCategory.InvalidArgument, null,
                "-Save needs -Name: the name to save this connection as."));
        }

        var bound = MyInvocation.BoundParameters;
        var keyFile = KeyFile is null ? null : await OnPipelineThreadAsync(() => SessionState.Path.GetUnresolvedProviderPathFromPSPath(KeyFile)).ConfigureAwait(false);
        try
        {
            var address = ServerAddress.Parse(HostName, keyFile);
            if (bound.ContainsKey(nameof(Port)))
            {
                address = address with { Port = Port };
            }

            if (User is not null)
            {
                address = address with { User = User };
            }

            return address;
        }
        catch (Exception ex) when (ex is FormatException or ArgumentException)
        {
            throw new EphTerminatingException(NewError(Strings.InvalidServerAddressId, ErrorCategory.InvalidArgument, HostName, ex.Message, ex));
        }
    }

    /// <summary>
    /// Shows an unpinned server's key and asks (on the pipeline thread). A session that cannot ask (non-interactive,
    /// a hosted runspace without UI) gets a terminating error saying to pass -HostKeyFingerprint; nothing is trusted.
    /// </summary>
    private Func<HostKey, bool>? Confirm(ServerAddress address)
    {
        if (HostKeyFingerprint is not null)
        {
            return null;
        }

        return key =>
        {
            var answer = OnPipelineThreadAsync<bool?>(() =>
            {
                try
                {
                    return ShouldContinue(
                        string.Format(CultureInfo.CurrentCulture, Strings.HostKeyConfirmQuery, address.PinKey, key.Type, key.Fingerprint),
                        Strings.HostKeyConfirmCaption);
                }
                catch (Exception ex) when (ex is PSInvalidOperationException or HostException or NotImplementedException or NullReferenceException)
                {
                    return null;
                }
            }).GetAwaiter().GetResult();
            return answer ?? throw new EphTerminatingException(NewError(Strings.HostKeyNotTrustedId, ErrorCategory.SecurityError, address.PinKey,
                string.Format(CultureInfo.CurrentCulture, Strings.HostKeyConfirmNonInteractive, address.PinKey, address.HostName)));
        };
    }
}

/// <summary>Describes connections for the output.</summary>
internal static class ServerConnections
{
    public static EphServerConnection Describe(EphRemoteSession session, bool current = true)
    {
        var a = session.Address;
        var who = session.Server.Identity;
        return new EphServerConnection(session.SavedName, a.HostName, a.Port, a.User, a.KeyFile, session.Server.PinnedKey.Fingerprint)
        {
            Operator = who?.Operator,
            Role = who?.Role.ToString().ToLowerInvariant(),
            ServerHost = who?.Host,
            ServerVersion = who?.ServerVersion,
            Connected = session.Server.IsConnected,
            Current = current,
        };
    }

    public static EphServerConnection Describe(SavedConnection saved, EphRemoteSession? current)
    {
        var a = saved.Address;
        var isCurrent = current is not null && current.Address.PinKey == a.PinKey && current.Address.User == a.User;
        return new EphServerConnection(saved.Name, a.HostName, a.Port, a.User, a.KeyFile, new HostKeyPins().Get(a)?.Fingerprint ?? saved.PinnedFingerprint)
        {
            Operator = isCurrent ? current!.Server.Identity?.Operator : null,
            Role = isCurrent ? current!.Server.Identity?.Role.ToString().ToLowerInvariant() : null,
            Connected = isCurrent && current!.Server.IsConnected,
            Current = isCurrent,
        };
    }
}

/// <summary>Completes the names of saved connections.</summary>
public sealed class SavedConnectionCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete,
        System.Management.Automation.Language.CommandAst commandAst, System.Collections.IDictionary fakeBoundParameters)
    {
        try
        {
            var prefix = (wordToComplete ?? "").Trim('\'', '"');
            return [.. new SavedConnections().List()
                .Where(c => c.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                .Select(c => new CompletionResult(c.Name, c.Name, CompletionResultType.ParameterValue, c.Address.ToString()))];
        }
        catch (Exception ex) when (ex is ConnectionProfileException or IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }
}
