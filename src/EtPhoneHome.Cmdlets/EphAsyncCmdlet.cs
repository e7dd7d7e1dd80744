using EtPhoneHome.Core.Services;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

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
        catch (OperationCanceledException) when (_cancellation.IsCancellationRequested)
        {
            // Stopped by Ctrl+C: PowerShell is already unwinding the pipeline.
            throw new PipelineStoppedException();
        }
    }

    protected override void StopProcessing() => _cancellation.Cancel();

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
        new(registry, OperatorContext.ForSurface(Surfaces.PowerShell), new CmdletLog(this), ownsRegistry: false);


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
