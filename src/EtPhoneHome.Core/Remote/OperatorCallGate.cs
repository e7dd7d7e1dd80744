using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>What one call takes of a connection's bounds while it is in flight: a place, maybe a transfer's, its message's bytes.</summary>
internal readonly record struct OperatorCallCost(bool Transfer, long Bytes);

/// <summary>
/// Keeps one connection's calls within the service's bounds (<see cref="OperatorLimits"/>): a call that does not fit
/// waits, in order, until calls in flight end, its caller cancels, or the connection closes. Calls waiting for a
/// transfer's place let the others pass; for a place or bytes they keep their turn, so a large call is not starved by
/// small ones.
/// </summary>
internal sealed class OperatorCallGate
{
    private readonly object _lock = new();
    private readonly LinkedList<Waiter> _waiting = new();
    private readonly int _maxCalls;
    private readonly int _maxTransfers;
    private readonly long _maxBytes;
    private int _calls;
    private int _transfers;
    private long _bytes;
    private Exception? _closed;

    public OperatorCallGate(int maxCalls = OperatorLimits.MaxInFlight, int maxTransfers = OperatorLimits.MaxTransfersInFlight,
        long maxBytes = OperatorLimits.MaxArgumentBytesInFlight)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCalls, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTransfers, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        _maxCalls = maxCalls;
        _maxTransfers = maxTransfers;
        _maxBytes = maxBytes;
    }

    /// <summary>Calls holding a place now.</summary>
    public int InFlight
    {
        get
        {
            lock (_lock)
            {
                return _calls;
            }
        }
    }

    /// <summary>Calls waiting for a place now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Bytes of call messages in flight now.</summary>
    public long Bytes
    {
        get
        {
            lock (_lock)
            {
                return _bytes;
            }
        }
    }

    /// <summary>
    /// Takes a place for a call of <paramref name="cost"/>, waiting for one when the bounds are full. Throws
    /// <see cref="OperationCanceledException"/> when <paramref name="ct"/> is cancelled first (nothing is then held), and
    /// the connection's fault once it closed.
    /// </summary>
    public Task EnterAsync(OperatorCallCost cost, CancellationToken ct)
    {
        // A message larger than the byte bound on its own still goes alone (the service takes it with nothing else in flight).
        cost = cost with { Bytes = Math.Clamp(cost.Bytes, 0, _maxBytes) };
        Waiter waiter;
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                return Task.FromException(closed);
            }

            ct.ThrowIfCancellationRequested();
            waiter = new Waiter(cost);
            waiter.Node = _waiting.AddLast(waiter);
            Pump();
            if (waiter.Done.Task.IsCompleted)
            {
                return waiter.Done.Task;
            }

            if (ct.CanBeCanceled)
            {
                waiter.Registration = ct.Register(() => Abandon(waiter, ct));
            }
        }

        return waiter.Done.Task;
    }

    /// <summary>Gives back what a call took (once its end arrived); the next waiting calls that fit go.</summary>
    public void Release(OperatorCallCost cost)
    {
        cost = cost with { Bytes = Math.Clamp(cost.Bytes, 0, _maxBytes) };
        lock (_lock)
        {
            _calls--;
            _bytes -= cost.Bytes;
            if (cost.Transfer)
            {
                _transfers--;
            }

            Pump();
        }
    }

    /// <summary>The connection ended: every waiting call fails with <paramref name="fault"/>, and so does every later one.</summary>
    public void Close(Exception fault)
    {
        lock (_lock)
        {
            _closed ??= fault;
            while (_waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                first.Value.Registration.Unregister(); // never waits for a callback that may be waiting for this lock
                first.Value.Done.TrySetException(_closed);
            }
        }
    }

    private void Abandon(Waiter waiter, CancellationToken ct)
    {
        lock (_lock)
        {
            if (waiter.Node?.List is null)
            {
                return; // it got its place (or the connection closed) first
            }

            _waiting.Remove(waiter.Node);
            waiter.Done.TrySetCanceled(ct);

            // The one that left may have kept the next ones from their turn.
            Pump();
        }
    }

    /// <summary>Lets the waiting calls that fit go, in order (under the lock).</summary>
    private void Pump()
    {
        for (var node = _waiting.First; node is not null;)
        {
            var next = node.Next;
            var cost = node.Value.Cost;
            var placeAndBytes = _calls < _maxCalls && _bytes + cost.Bytes <= _maxBytes;
            if (placeAndBytes && (!cost.Transfer || _transfers < _maxTransfers))
            {
                _waiting.Remove(node);
                _calls++;
                _bytes += cost.Bytes;
                if (cost.Transfer)
                {
                    _transfers++;
                }

                node.Value.Registration.Unregister(); // never waits for a callback that may be waiting for this lock
                node.Value.Done.TrySetResult();
            }
            else if (!placeAndBytes)
            {
                return; // everyone behind needs a place and bytes too: they keep the order
            }

            node = next;
        }
    }

    private sealed class Waiter(OperatorCallCost cost)
    {
        public OperatorCallCost Cost { get; } = cost;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public LinkedListNode<Waiter>? Node { get; set; }

        public CancellationTokenRegistration Registration { get; set; }
    }
}
