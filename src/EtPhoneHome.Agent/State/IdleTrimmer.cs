namespace EtPhoneHome.Agent;

/// <summary>
/// Gives memory back after a burst of work. Two things keep what a burst grew: the GC keeps its heap for reuse, and
/// the runtime's shared array pool (<c>ArrayPool&lt;byte&gt;.Shared</c>, which System.Text.Json and the transfer buffers
/// rent from) keeps a buffer per size per thread and per core — an idle agent after a burst of commands, file reads
/// and writes and a recursive list_files kept 27–82 MiB of such buffers after one compacting collection (bench/README.md).
/// The pool lets a buffer go only during a full collection that finds it unused for 30–60 s, and an idle process has
/// no collections. So once no request has been in flight for <see cref="Delay"/> and the committed heap has grown by more
/// than <see cref="Slack"/> since the last trim, a trim starts: one collection now and <see cref="FollowUps"/> more, one
/// every <see cref="Interval"/> while still idle, each letting the pool drop what has aged and returning its memory. A
/// request pauses the series; it resumes when the agent is idle again. None while busy.
/// </summary>
internal sealed class IdleTrimmer : IDisposable
{
    /// <summary>Idle time before the first collection of a trim.</summary>
    public static readonly TimeSpan DefaultDelay = TimeSpan.FromSeconds(5);

    /// <summary>Time between the collections of one trim.</summary>
    public static readonly TimeSpan DefaultInterval = TimeSpan.FromSeconds(10);

    /// <summary>Collections after the first: together they span the pool's 60 s age limit and its one-buffer-per-pass release.</summary>
    public const int DefaultFollowUps = 12;

    /// <summary>Growth of the committed heap that makes a trim worth it.</summary>
    public const long DefaultSlack = 4L * 1024 * 1024;

    private static readonly Lazy<IdleTrimmer> Shared = new(() => new IdleTrimmer());

    private readonly Timer _timer;
    private readonly Func<long> _committedBytes;
    private readonly Action _collect;
    private readonly object _sync = new();
    private int _busy;
    private long _baseline;
    private int _left;

    public IdleTrimmer(TimeSpan? delay = null, long slack = DefaultSlack, Func<long>? committedBytes = null, Action? collect = null,
        TimeSpan? interval = null, int followUps = DefaultFollowUps)
    {
        Delay = delay ?? DefaultDelay;
        Interval = interval ?? DefaultInterval;
        FollowUps = followUps;
        Slack = slack;
        _committedBytes = committedBytes ?? (() => GC.GetGCMemoryInfo().TotalCommittedBytes);
        _collect = collect ?? Collect;
        _baseline = _committedBytes();
        _timer = new Timer(_ => OnIdle(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The process's trimmer, shared by every server in it (never disposed).</summary>
    public static IdleTrimmer ForProcess => Shared.Value;

    public TimeSpan Delay { get; }

    public TimeSpan Interval { get; }

    public int FollowUps { get; }

    public long Slack { get; }

    /// <summary>Collections done so far.</summary>
    public int Trims { get; private set; }

    /// <summary>A request starts.</summary>
    public void Enter() => Interlocked.Increment(ref _busy);

    /// <summary>A request ended; the last one to end arms the idle timer.</summary>
    public void Exit()
    {
        if (Interlocked.Decrement(ref _busy) == 0)
        {
            _timer.Change(Delay, Timeout.InfiniteTimeSpan);
        }
    }

    public void Dispose() => _timer.Dispose();

    /// <summary>
    /// One pass: a full collection runs the pool's trimming (a gen2 callback on the finalizer thread); once it has run, an
    /// aggressive, compacting collection frees and decommits what it let go, with the rest of the garbage.
    /// </summary>
    private static void Collect()
    {
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: false);
        GC.WaitForPendingFinalizers();
        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
    }

    private void OnIdle()
    {
        lock (_sync)
        {
            if (Volatile.Read(ref _busy) != 0)
            {
                return;
            }

            if (_left == 0)
            {
                if (_committedBytes() <= _baseline + Slack)
                {
                    return;
                }

                _left = FollowUps + 1;
            }

            _collect();
            Trims++;
            _left--;
            _baseline = _committedBytes();
            if (_left > 0 && Volatile.Read(ref _busy) == 0)
            {
                _timer.Change(Interval, Timeout.InfiniteTimeSpan);
            }
        }
    }
}
