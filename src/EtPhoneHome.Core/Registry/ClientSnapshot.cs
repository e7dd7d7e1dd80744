namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Every client of one registry file, in memory as a <see cref="ClientIndex"/>, so that a search is a pass over
/// flat arrays and ready objects instead of a query that decodes and builds every matching row again (about 8 µs per client
/// returned, 1 s to list 100,000). The copy is kept current by the change sequence of the registry (schema step 5):
/// each change to a client row — and each session of the client opening, coming online or closing — stamps the row
/// with the next value of one counter, so a refresh reads only the rows stamped after the last value it saw, and
/// nothing at all when the counter has not moved. The counter's instance id tells the copy that the file was
/// replaced by a new registry; it then loads everything again.
/// </summary>
/// <remarks>
/// Heartbeat freshness is not part of the copy (heartbeats would stamp every online client every interval): the
/// caller reads the few open sessions whose heartbeat is stale and overrides their online state. One copy is kept
/// per database file and process (the <see cref="MaxFiles"/> most recently opened files), shared by every registry
/// instance on that file. An index handed out is never modified; a refresh builds the next one.
/// </remarks>
internal sealed class ClientSnapshot
{
    /// <summary>Registry files whose copies one process keeps.</summary>
    public const int MaxFiles = 8;

    private static readonly object s_filesGate = new();
    private static readonly List<(string File, ClientSnapshot Snapshot)> s_files = [];

    private readonly object _gate = new();
    private ClientIndex _clients = ClientIndex.Empty;
    private Dictionary<string, ClientRecord> _byUuid = new(StringComparer.Ordinal);
    private string? _instance;
    private long _seq;

    /// <summary>Times every client was read (first use, or the file was replaced).</summary>
    public int FullLoads { get; private set; }

    /// <summary>Client rows read by refreshes after the first load.</summary>
    public long RowsRefreshed { get; private set; }

    /// <summary>The copy for a database file, created empty on first use.</summary>
    public static ClientSnapshot For(string databaseFile)
    {
        var key = Path.GetFullPath(databaseFile);
        lock (s_filesGate)
        {
            var i = s_files.FindIndex(f => string.Equals(f.File, key, StringComparison.Ordinal));
            if (i >= 0)
            {
                var found = s_files[i];
                s_files.RemoveAt(i);
                s_files.Add(found);
                return found.Snapshot;
            }

            if (s_files.Count >= MaxFiles)
            {
                s_files.RemoveAt(0);
            }

            var snapshot = new ClientSnapshot();
            s_files.Add((key, snapshot));
            return snapshot;
        }
    }

    /// <summary>Drops the copy, so the next search reads every client again (benchmarks of the first search).</summary>
    internal void Forget()
    {
        lock (_gate)
        {
            _clients = ClientIndex.Empty;
            _byUuid = new Dictionary<string, ClientRecord>(StringComparer.Ordinal);
            _instance = null;
            _seq = 0;
        }
    }

    /// <summary>Clients in the copy as last refreshed.</summary>
    public int Count => _clients.Count;

    /// <summary>
    /// The clients as of counter value <paramref name="seq"/> of registry <paramref name="instance"/>.
    /// <paramref name="readChanged"/> reads the client rows stamped after the given value (null: every row), in the
    /// same read transaction as the counter. A caller whose transaction saw an older counter than the copy gets the
    /// newer copy.
    /// </summary>
    public ClientIndex Get(string instance, long seq, Func<long?, List<ClientRecord>> readChanged)
    {
        ArgumentNullException.ThrowIfNull(instance);
        ArgumentNullException.ThrowIfNull(readChanged);
        lock (_gate)
        {
            if (string.Equals(instance, _instance, StringComparison.Ordinal))
            {
                if (seq <= _seq)
                {
                    return _clients;
                }

                var changed = readChanged(_seq);
                RowsRefreshed += changed.Count;

                // Past a quarter of the fleet (a bulk import, a first load after seeding) building anew is cheaper
                // than placing each change. With() finds each client's previous version in the map before it is updated.
                var rebuild = changed.Count > Math.Max(1_000, _clients.Count / 4);
                if (!rebuild)
                {
                    _clients = _clients.With(changed, uuid => _byUuid.GetValueOrDefault(uuid));
                }

                foreach (var client in changed)
                {
                    _byUuid[client.Uuid] = client;
                }

                if (rebuild)
                {
                    _clients = ClientIndex.Build(_byUuid.Values);
                }
            }
            else
            {
                var all = readChanged(null);
                _clients = ClientIndex.Build(all);
                _byUuid = new Dictionary<string, ClientRecord>(all.Count, StringComparer.Ordinal);
                foreach (var client in all)
                {
                    _byUuid[client.Uuid] = client;
                }
                FullLoads++;
            }

            _instance = instance;
            _seq = seq;
            return _clients;
        }
    }
}
