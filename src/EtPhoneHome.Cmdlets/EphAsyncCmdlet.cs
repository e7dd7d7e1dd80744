using EtPhoneHome.Core.Services;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome;

/// <summary>
/// Base of cmdlets that do I/O. Begin/Process/End run as async methods on the thread pool; every write and
/// ShouldProcess call is marshalled to the pipeline thread; Ctrl+C (StopProcessing) cancels the token every
/// awaited call receives.
/// </summary>
public abstract class EphAsyncCmdlet : EphCmdlet, IDisposable
{
    private readonly CancellationTokenSource _cancellation = new();
    private PipelineDispatcher? _dispatcher;

    private PipelineDispatcher Dispatcher => _dispatcher ??= new PipelineDispatcher();

    protected virtual Task BeginProcessingAsync(CancellationToken ct) => Task.CompletedTask;

    protected virtual Task ProcessRecordAsync(CancellationToken ct) => Task.CompletedTask;

    protected virtual Task EndProcessingAsync(CancellationToken ct) => Task.CompletedTask;

    protected sealed override void BeginProcessing()
    {
        _ = Settings; // the session's settings, read here on the pipeline thread
        try
        {
            RefuseIfRemoteUnsupported();
        }
        catch (EphTerminatingException ex)
        {
            ThrowTerminatingError(ex.Record);
        }

        Run(BeginProcessingAsync);
    }

    protected sealed override void ProcessRecord() => Run(ProcessRecordAsync);

    protected sealed override void EndProcessing() => Run(EndProcessingAsync);

    private void Run(Func<CancellationToken, Task> work)
    {
        try
        {
            Dispatcher.Run(work, _cancellation);
        }
        catch (EphTerminatingException ex)
        {
            ThrowTerminatingError(ex.Record);
        }
        catch (OperatorRemoteException ex)
        {
            // The server refused or failed the request: the same IDs as the local cmdlets where they mean the same.
            ThrowTerminatingError(RemoteErrors.ToRecord(ex, Remote, invalidArgumentId: RemoteInvalidArgumentId));
        }
        catch (Exception ex) when (RemoteErrors.IsConnectionFault(ex) && !_cancellation.IsCancellationRequested)
        {
            // The connection could not be made or dropped: the next cmdlet reconnects (RemoteServer does).
            ThrowTerminatingError(RemoteErrors.ConnectionError(ex, Remote));
        }
        catch (OperationCanceledException) when (_cancellation.IsCancellationRequested)
        {
            // Stopped by Ctrl+C: PowerShell is already unwinding the pipeline.
            throw new PipelineStoppedException();
        }
    }

    protected override void StopProcessing() => _cancellation.Cancel();

    /// <summary>The ID of an INVALID_ARGUMENT answer of the server for this cmdlet (the local cmdlet's ID for the same fault).</summary>
    private protected virtual string? RemoteInvalidArgumentId => null;

    /// <summary>
    /// The session's open operator connection (reconnecting after a drop). Only for cmdlets that declared
    /// <see cref="EphCmdlet.SupportsRemote"/> and found <see cref="EphCmdlet.Remote"/> set.
    /// </summary>
    internal async Task<RemoteOperator> RemoteOperatorAsync(CancellationToken ct)
    {
        var remote = Remote ?? throw new InvalidOperationException("the session is not connected to a server");
        var op = await remote.Server.GetAsync(ct).ConfigureAwait(false);
        WriteVerbose(string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.VerboseRemote,
            MyInvocation.MyCommand.Name, remote.Describe(), op.Identity.Operator, op.Identity.Role.ToString().ToLowerInvariant()));
        return op;
    }

    /// <summary>
    /// A server's refusal of one target's change as a non-terminating error (the others go on); a refusal for the
    /// operator's role is the same for every target, so it is rethrown and ends the cmdlet once, naming the role.
    /// </summary>
    internal ErrorRecord RemoteTargetError(OperatorRemoteException ex, object target, string? invalidArgumentId)
    {
        if (ex.Code == EtPhoneHome.Protocol.OperatorErrorCodes.Forbidden)
        {
            throw new EphTerminatingException(RemoteErrors.ToRecord(ex, Remote));
        }

        return RemoteErrors.ToRecord(ex, Remote, target, invalidArgumentId);
    }

    /// <summary>
    /// The targets of a fan-out through the server, by the same rules as <see cref="EphCmdlet.ResolveTargets"/>: nothing
    /// piped means nothing to do, no target without -All is NoClient, and any literal name the server does not know
    /// refuses the whole operation (ClientNotFound naming them) before anything runs.
    /// </summary>
    internal async Task<IReadOnlyList<FleetTarget>> ResolveRemoteTargetsAsync(RemoteOperator op, IReadOnlyList<string> names, bool all, CancellationToken ct)
    {
        if (!all && names.Count == 0)
        {
            return MyInvocation.ExpectingInput
                ? []
                : throw new EphTerminatingException(NewError(Strings.NoClientId, ErrorCategory.InvalidArgument, null, Strings.NoClient));
        }

        var lookup = await op.SearchAsync(new ClientQuery { Names = all ? null : names.Distinct(StringComparer.OrdinalIgnoreCase).ToList() }, ct).ConfigureAwait(false);
        if (lookup.NotFound.Count > 0)
        {
            throw new EphTerminatingException(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, lookup.NotFound.ToArray(),
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.ClientsNotFound,
                    string.Join(", ", lookup.NotFound.Select(n => $"'{n}'")))));
        }

        return [.. lookup.Clients.Select(c => new FleetTarget(c.Uuid, c.DisplayName, null))];
    }

    public new void WriteObject(object? sendToPipeline) => Dispatcher.Post(() => base.WriteObject(sendToPipeline));

    public new void WriteError(ErrorRecord errorRecord) => Dispatcher.Post(() => base.WriteError(errorRecord));

    public new void WriteVerbose(string text) => Dispatcher.Post(() => base.WriteVerbose(text));

    public new void WriteWarning(string text) => Dispatcher.Post(() => base.WriteWarning(text));

    public new void WriteDebug(string text) => Dispatcher.Post(() => base.WriteDebug(text));

    public new void WriteProgress(ProgressRecord progressRecord) => Dispatcher.Post(() => base.WriteProgress(progressRecord));

    /// <summary>
    /// The operation guard of the cmdlets (surface pwsh): its rate-limit warnings go to the warning stream, so
    /// -WarningAction, -WarningVariable and 3> apply to them.
    /// </summary>
    internal OperationGuard NewGuard(RegistryStores registry) => NewServices(registry).Guard;

    /// <summary>
    /// The cmdlets' composition root: the operator services of this pipeline over <paramref name="registry"/> (which
    /// the cmdlet opened and disposes), surface pwsh, Core's log to PowerShell's streams (<see cref="CmdletLog"/>).
    /// </summary>
    internal OperatorServices NewServices(RegistryStores registry) =>
        new(registry, OperatorContext.ForSurface(Surfaces.PowerShell), new CmdletLog(this), ownsRegistry: false) { Routing = HubRouting.ForFrontEnd(registry) };


    /// <summary>ShouldProcess on the pipeline thread (it may prompt), awaited by the worker.</summary>
    protected Task<bool> ShouldProcessAsync(string target, string action) =>
        Dispatcher.InvokeAsync(() => ShouldProcess(target, action));

    /// <summary>Runs <paramref name="func"/> on the pipeline thread (session state, provider paths) and awaits its result.</summary>
    protected Task<T> OnPipelineThreadAsync<T>(Func<T> func) => Dispatcher.InvokeAsync(func);

    public void Dispose()
    {
        _cancellation.Dispose();
        GC.SuppressFinalize(this);
    }
}
