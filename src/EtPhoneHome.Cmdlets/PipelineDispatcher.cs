using System.Collections.Concurrent;

namespace EtPhoneHome;

/// <summary>
/// Runs async work on the thread pool while the calling (pipeline) thread executes every callback the work
/// posts: PowerShell only accepts WriteObject, WriteError, WriteProgress and ShouldProcess from the thread
/// that called ProcessRecord. No PowerShell types here, so the unit tests can exercise it.
/// </summary>
internal sealed class PipelineDispatcher
{
    private readonly int _pipelineThread = Environment.CurrentManagedThreadId;
    private BlockingCollection<Action>? _queue;
    private CancellationToken _stopped;

    /// <summary>True on the thread that created the dispatcher.</summary>
    public bool OnPipelineThread => Environment.CurrentManagedThreadId == _pipelineThread;

    /// <summary>Runs <paramref name="work"/> and pumps its callbacks here until it ends; rethrows its exception.</summary>
    public void Run(Func<CancellationToken, Task> work, CancellationTokenSource cancellation)
    {
        using var queue = new BlockingCollection<Action>();
        _queue = queue;
        _stopped = cancellation.Token;
        var task = Task.Run(async () =>
        {
            try
            {
                await work(cancellation.Token).ConfigureAwait(false);
            }
            finally
            {
                queue.CompleteAdding();
            }
        });

        try
        {
            foreach (var action in queue.GetConsumingEnumerable())
            {
                action();
            }
        }
        catch
        {
            // A callback failed on the pipeline thread (the pipeline was stopped, or a terminating error):
            // stop the work and let it finish before the queue goes away.
            cancellation.Cancel();
            Volatile.Write(ref _queue, null);
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch
            {
                // The callback's exception is the one to report.
            }

            throw;
        }

        Volatile.Write(ref _queue, null);
        task.GetAwaiter().GetResult();
    }

    /// <summary>Runs <paramref name="action"/> on the pipeline thread (at once when already there).</summary>
    public void Post(Action action)
    {
        if (OnPipelineThread || Volatile.Read(ref _queue) is not { } queue)
        {
            action();
            return;
        }

        try
        {
            queue.Add(action);
        }
        catch (InvalidOperationException)
        {
            // The pipeline is gone; output after a stop is dropped.
        }
    }

    /// <summary>Runs <paramref name="func"/> on the pipeline thread and returns its result to the worker.</summary>
    public Task<T> InvokeAsync<T>(Func<T> func)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);

        // When a callback ahead of this one fails (WriteError under -ErrorAction Stop), the pipeline thread stops
        // pumping and cancels: the question is then never asked, so the waiting worker gets a cancellation, not a hang.
        var registration = _stopped.Register(() => done.TrySetCanceled(_stopped));
        _ = done.Task.ContinueWith(_ => registration.Dispose(), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        Post(() =>
        {
            try
            {
                done.TrySetResult(func());
            }
            catch (Exception ex)
            {
                done.TrySetException(ex);
                throw;
            }
        });
        return done.Task;
    }
}
