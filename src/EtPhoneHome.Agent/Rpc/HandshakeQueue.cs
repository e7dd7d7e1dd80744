namespace EtPhoneHome.Agent;

/// <summary>
/// The connections still in their handshake (not yet authenticated), in arrival order, bounded by
/// <see cref="Capacity"/>. Admitting a connection to a full queue evicts the oldest one instead of refusing the new
/// one: anyone who can reach the tunnel port can open connections, so a refusing bound would let them sit on every
/// place and lock operators out, while an evicting bound makes them out-race every operator's handshake, which takes
/// milliseconds, to keep a place at all.
/// </summary>
public sealed class HandshakeQueue
{
    private readonly LinkedList<Action> _order = new();
    private readonly object _sync = new();

    public HandshakeQueue(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        Capacity = capacity;
    }

    public int Capacity { get; }

    /// <summary>Connections in the queue now.</summary>
    public int Count
    {
        get
        {
            lock (_sync)
            {
                return _order.Count;
            }
        }
    }

    /// <summary>Connections evicted so far to admit newer ones.</summary>
    public long Evicted { get; private set; }

    /// <summary>
    /// Admits a connection; <paramref name="evict"/> is called (once, outside the queue's lock) if it is still in its
    /// handshake when it is the oldest of a full queue and another one arrives. Returns the place to give back with
    /// <see cref="Leave"/>.
    /// </summary>
    public object Admit(Action evict)
    {
        ArgumentNullException.ThrowIfNull(evict);
        Action? oldest = null;
        LinkedListNode<Action> node;
        lock (_sync)
        {
            if (_order.Count >= Capacity)
            {
                oldest = _order.First!.Value;
                _order.RemoveFirst();
                Evicted++;
            }

            node = _order.AddLast(evict);
        }

        oldest?.Invoke();
        return node;
    }

    /// <summary>
    /// Gives a place back (the handshake ended, one way or another). False when the connection had been evicted
    /// already: it must not be served.
    /// </summary>
    public bool Leave(object place)
    {
        var node = (LinkedListNode<Action>)place;
        lock (_sync)
        {
            if (node.List is null)
            {
                return false;
            }

            _order.Remove(node);
            return true;
        }
    }
}
