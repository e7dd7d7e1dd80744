using System.Data.Common;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Writes that arrive together share one transaction (group commit). A fan-out to a thousand clients starts and
/// completes a thousand operations at once, each a small write of the rate-limit ledger and the history; writers of a
/// registry take turns (SQLite's write lock, PostgreSQL's advisory lock), so a transaction each meant a thousand turns,
/// a thousand commits and, on PostgreSQL, a pooled connection held by every writer waiting for its turn — the pool ran
/// dry and operations failed. Here the callers queue and one writer at a time takes everything queued, up to
/// <see cref="MaxBatch"/>, into one transaction: one turn of the lock, one commit, one connection.
/// <para>
/// Each piece of work runs in order inside the batch's transaction and sees the writes of the ones before it, as it
/// would in transactions of its own, one after the other. Its task completes only after the commit. If a piece throws,
/// nothing of the batch was written: that piece fails and the others run again without it, so one piece's fault is its
/// own. If the connection, the writer lock or the commit fails, the batch is written again after a pause (up to three
/// times within 10 s of its start); then every piece of it fails (alone, each would meet the same fault; retrying them
/// one by one would multiply the wait).
/// No caller blocks a thread while it waits; the writer runs on the thread pool without the callers' execution context
/// (anything a piece needs from its caller is captured before it is queued).
/// </para>
/// </summary>
internal sealed class GroupCommit(Func<DbConnection> connect, Func<DbConnection, DbTransaction> beginWrite)
{
    /// <summary>Most pieces of work in one transaction: bounds how long one batch holds the registry's writer lock.</summary>
    public const int MaxBatch = 256;

    private readonly object _gate = new();
    private List<Piece> _queue = [];
    private bool _writing;

    /// <summary>Transactions written so far (tests and diagnostics).</summary>
    public long Batches => Interlocked.Read(ref _batches);

    private long _batches;

    /// <summary>Queues <paramref name="work"/>; the task gives its result once the transaction it ran in has committed.</summary>
    public Task<T> RunAsync<T>(Func<DbConnection, DbTransaction, T> work)
    {
        ArgumentNullException.ThrowIfNull(work);
        var piece = new Piece<T>(work);
        bool start;
        lock (_gate)
        {
            _queue.Add(piece);
            start = !_writing;
            _writing = true;
        }

        if (start)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static self => self.Drain(), this, preferLocal: false);
        }

        return piece.Task;
    }

    private void Drain()
    {
        while (true)
        {
            List<Piece> batch;
            lock (_gate)
            {
                if (_queue.Count == 0)
                {
                    _writing = false;
                    return;
                }

                if (_queue.Count <= MaxBatch)
                {
                    batch = _queue;
                    _queue = [];
                }
                else
                {
                    batch = _queue.GetRange(0, MaxBatch);
                    _queue.RemoveRange(0, MaxBatch);
                }
            }

            Write(batch);
        }
    }

    /// <summary>
    /// Pauses before writing a batch again after a fault of the connection, the lock or the commit (a database
    /// restarting, a pool briefly empty): a blip must not cost a fan-out its history. Only while the batch is younger
    /// than <see cref="RetryWithin"/>: a fault that took longer to come (SQLite's 30 s busy timeout) is not waited for again.
    /// </summary>
    private static readonly TimeSpan[] Backoff = [TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)];

    private static readonly TimeSpan RetryWithin = TimeSpan.FromSeconds(10);

    private void Write(List<Piece> batch)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var retries = 0;
        while (batch.Count > 0)
        {
            Piece? running = null;
            try
            {
                using (var c = connect())
                using (var tx = beginWrite(c))
                {
                    foreach (var piece in batch)
                    {
                        running = piece;
                        piece.Run(c, tx);
                    }

                    running = null;
                    tx.Commit();
                }
            }
            catch (Exception ex) when (running is not null)
            {
                // That piece's own fault, and the transaction rolled back: it fails, the others go again without it.
                running.Fail(ex);
                batch = batch.Where(p => !ReferenceEquals(p, running)).ToList();
                continue;
            }
            catch (Exception) when (retries < Backoff.Length && clock.Elapsed < RetryWithin)
            {
                // The connection, the writer lock or the commit, soon after the batch began: the whole batch again.
                Thread.Sleep(Backoff[retries++]);
                continue;
            }
            catch (Exception ex)
            {
                // The connection, the writer lock or the commit, still: every piece of the batch would meet it alone
                // too, so each fails now rather than waiting for it again one by one.
                foreach (var piece in batch)
                {
                    piece.Fail(ex);
                }

                return;
            }

            Interlocked.Increment(ref _batches);
            foreach (var piece in batch)
            {
                piece.Complete();
            }

            return;
        }
    }

    private abstract class Piece
    {
        public abstract void Run(DbConnection c, DbTransaction tx);

        public abstract void Complete();

        public abstract void Fail(Exception ex);
    }

    private sealed class Piece<T>(Func<DbConnection, DbTransaction, T> work) : Piece
    {
        // Continuations run on the pool, not on the writer's thread: the writer goes on to the next batch.
        private readonly TaskCompletionSource<T> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T? _result;

        public Task<T> Task => _done.Task;

        public override void Run(DbConnection c, DbTransaction tx) => _result = work(c, tx);

        public override void Complete() => _done.TrySetResult(_result!);

        public override void Fail(Exception ex) => _done.TrySetException(ex);
    }
}
