using System.Collections.Concurrent;
using System.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>The order of every client list: display name (case-insensitive), then uuid.</summary>
public static class ClientOrder
{
    public static IComparer<ClientRecord> Comparer { get; } = Comparer<ClientRecord>.Create(Compare);

    public static int Compare(ClientRecord? x, ClientRecord? y)
    {
        if (ReferenceEquals(x, y))
        {
            return 0;
        }

        if (x is null || y is null)
        {
            return x is null ? -1 : 1;
        }

        var byName = string.Compare(x.DisplayName, y.DisplayName, StringComparison.OrdinalIgnoreCase);
        return byName != 0 ? byName : string.CompareOrdinal(x.Uuid, y.Uuid);
    }
}

/// <summary>
/// An immutable, sorted set of clients laid out for searching. Clients are kept in segments of about
/// <see cref="SegmentSize"/>; besides the records, each segment holds flat arrays that a search walks in order — a
/// flag byte per client, the ids of its tags and capabilities, and its text (purpose, display name, hostname, tags
/// and uuid, lower-cased, UTF-8, fields apart) — so a fleet-wide filter touches a few contiguous arrays instead of
/// 100,000 objects. <see cref="With"/> makes the next index from the changed clients: only the segments they fall
/// in get a new version, the others are shared, and every array stays small (no large-object-heap churn). A new
/// version of a segment copies only its per-client arrays; the text and word ids are appended to arenas its older
/// versions share (<see cref="Arena{T}"/>, whose appends reserve their range atomically); any number of threads may
/// search any version meanwhile.
/// </summary>
/// <remarks>
/// Search rules (<see cref="Search"/>); every given filter must hold:
/// Names — any pattern (<c>*</c>, <c>?</c>) matches the display name (as <see cref="ClientNameKey"/> compares names) or
/// the uuid, case-insensitively;
/// Ids — any equals the uuid, case-insensitively;
/// Query — a substring of the display name, the purpose, the hostname or one tag (never across two);
/// Purpose — a substring of the purpose;
/// Tags and Capabilities — the client has ALL of them (blank entries ignored);
/// OnlineOnly — online; removed clients only with IncludeRemoved.
/// Text comparisons ignore case: both sides are lower-cased char by char with the invariant culture.
/// </remarks>
internal sealed class ClientIndex
{
    /// <summary>Clients per segment after a full build; a segment is split past twice this.</summary>
    public const int SegmentSize = 128;

    /// <summary>Touched segments from which <see cref="With"/> builds their next versions in parallel.</summary>
    internal const int ParallelSegments = 64;

    /// <summary>Changed clients from which <see cref="With"/> places them in parallel.</summary>
    internal const int ParallelChanges = 256;

    /// <summary>Separates fields in the text (U+001F; inside a field or a needle it is read as a space).</summary>
    internal const byte FieldSeparator = 0x1f;

    internal static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

    private readonly ClientSegment[] _segments;
    private readonly WordIds _ids;

    private ClientIndex(ClientSegment[] segments, WordIds ids)
    {
        _segments = segments;
        _ids = ids;
        Count = segments.Sum(s => s.Count);
    }

    public static ClientIndex Empty { get; } = Build([]);

    /// <summary>Clients in the index.</summary>
    public int Count { get; }

    /// <summary>Segments in the index.</summary>
    public int SegmentCount => _segments.Length;

    /// <summary>The segments, in order (tests of how versions share storage).</summary>
    internal IReadOnlyList<ClientSegment> Segments => _segments;

    /// <summary>An index of <paramref name="clients"/> (each uuid once), sorted by <see cref="ClientOrder"/>.</summary>
    public static ClientIndex Build(IEnumerable<ClientRecord> clients)
    {
        ArgumentNullException.ThrowIfNull(clients);
        return new ClientIndex([], new WordIds()).Rebuilt(clients);
    }

    /// <summary>
    /// The next index: every client in <paramref name="changed"/> replaces its previous version (found through
    /// <paramref name="previous"/>, by uuid; null when the client is new). Segments without a change are shared with
    /// this index; O(k log n) to place k changes plus rebuilding the segments they touch. A large change is placed and
    /// built on several threads, so <paramref name="previous"/> may be called concurrently (it must only read).
    /// </summary>
    public ClientIndex With(IReadOnlyCollection<ClientRecord> changed, Func<string, ClientRecord?> previous)
    {
        ArgumentNullException.ThrowIfNull(changed);
        ArgumentNullException.ThrowIfNull(previous);
        if (changed.Count == 0)
        {
            return this;
        }

        if (_segments.Length == 0)
        {
            return Rebuilt(changed);
        }

        // Where each change goes: its previous version's segment and its own. A large change places its clients on every
        // core (the segment bounds are compared through cold records: memory latency, not arithmetic, is the cost).
        var clients = changed as IReadOnlyList<ClientRecord> ?? [.. changed];
        var olds = new ClientRecord?[clients.Count];
        var oldAt = new int[clients.Count];
        var newAt = new int[clients.Count];
        if (clients.Count >= ParallelChanges && Environment.ProcessorCount > 1)
        {
            Parallel.For(0, clients.Count, Place);
        }
        else
        {
            for (var i = 0; i < clients.Count; i++)
            {
                Place(i);
            }
        }

        var removals = new List<ClientRecord>?[_segments.Length];
        var additions = new List<ClientRecord>?[_segments.Length];
        var touched = new List<int>();
        for (var i = 0; i < clients.Count; i++)
        {
            if (olds[i] is { } old)
            {
                Add(removals, oldAt[i], old);
            }

            Add(additions, newAt[i], clients[i]);
        }

        for (var k = 0; k < _segments.Length; k++)
        {
            if (removals[k] is not null || additions[k] is not null)
            {
                touched.Add(k);
            }
        }

        // The touched segments' next versions are independent of each other (each appends only to its own arenas; the
        // word ids are shared and thread-safe), so a large change (a bulk edit, a reconnect storm) builds them on every core.
        var rebuilt = new ClientSegment[touched.Count][];
        if (touched.Count >= ParallelSegments && Environment.ProcessorCount > 1)
        {
            Parallel.For(0, touched.Count, t => rebuilt[t] = Next(touched[t]));
        }
        else
        {
            for (var t = 0; t < touched.Count; t++)
            {
                rebuilt[t] = Next(touched[t]);
            }
        }

        var segments = new List<ClientSegment>(_segments.Length + 2);
        var at = 0;
        for (var k = 0; k < _segments.Length; k++)
        {
            if (at < touched.Count && touched[at] == k)
            {
                segments.AddRange(rebuilt[at++]);
            }
            else
            {
                segments.Add(_segments[k]);
            }
        }

        return new ClientIndex([.. segments], _ids);

        void Place(int i)
        {
            var client = clients[i];
            var old = previous(client.Uuid);
            olds[i] = old;
            oldAt[i] = old is null ? -1 : SegmentOf(old);
            newAt[i] = SegmentOf(client);
        }

        ClientSegment[] Next(int k) => [.. _segments[k].With(removals[k] ?? [], additions[k] ?? [], _ids).Split(SegmentSize, _ids)];

        static void Add(List<ClientRecord>?[] lists, int k, ClientRecord client) => (lists[k] ??= []).Add(client);
    }

    /// <summary>
    /// The clients passing every filter of <paramref name="query"/>, in index order. Online clients whose uuid is
    /// in <paramref name="staleOnline"/> count as offline and are returned as such.
    /// </summary>
    public List<ClientRecord> Search(ClientQuery query, IReadOnlySet<string>? staleOnline = null)
    {
        ArgumentNullException.ThrowIfNull(query);
        var result = new List<ClientRecord>();
        if (SearchPlan.Create(query, _ids, staleOnline) is { } plan)
        {
            foreach (var segment in _segments)
            {
                segment.Search(plan, result);
            }
        }

        return result;
    }

    /// <summary>An index of <paramref name="clients"/> alone, sharing this index's word ids.</summary>
    private ClientIndex Rebuilt(IEnumerable<ClientRecord> clients)
    {
        var sorted = clients.ToArray();
        Array.Sort(sorted, ClientOrder.Comparer);
        var segments = new List<ClientSegment>((sorted.Length / SegmentSize) + 1);
        for (var at = 0; at < sorted.Length; at += SegmentSize)
        {
            segments.Add(ClientSegment.Build(sorted.AsSpan(at, Math.Min(SegmentSize, sorted.Length - at)), _ids));
        }

        return new ClientIndex([.. segments], _ids);
    }

    /// <summary>The segment a client belongs in: the first whose last client sorts at or after it (else the last).</summary>
    private int SegmentOf(ClientRecord client)
    {
        int lo = 0, hi = _segments.Length - 1;
        while (lo < hi)
        {
            var mid = (lo + hi) / 2;
            if (ClientOrder.Compare(_segments[mid].Last, client) >= 0)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }

        return lo;
    }

    /// <summary>
    /// Lower case char by char, as the name matcher compares; the field separator becomes a space, in fields and in
    /// needles alike, so no needle can span two fields.
    /// </summary>
    internal static string LowerChars(string value) => string.Create(value.Length, value, static (span, source) =>
    {
        for (var k = 0; k < source.Length; k++)
        {
            var c = char.ToLowerInvariant(source[k]);
            span[k] = c == (char)FieldSeparator ? ' ' : c;
        }
    });

    internal static byte[]? Needle(string? value) => string.IsNullOrEmpty(value) ? null : Utf8.GetBytes(LowerChars(value));

    /// <summary>Ids of tags and capabilities (case-insensitive), shared by successive indexes; only ever grows.</summary>
    internal sealed class WordIds
    {
        private readonly ConcurrentDictionary<string, int> _tags = new(StringComparer.OrdinalIgnoreCase);
        private readonly ConcurrentDictionary<string, int> _capabilities = new(StringComparer.OrdinalIgnoreCase);
        private int _next;

        public int Get(string word, bool isTag) =>
            (isTag ? _tags : _capabilities).GetOrAdd(word, static (_, self) => Interlocked.Increment(ref self._next), this);

        public bool TryFind(string word, bool isTag, out int id) => (isTag ? _tags : _capabilities).TryGetValue(word, out id);
    }

}

/// <summary>A query prepared once for every segment: word ids, lower-cased needles, name parts.</summary>
internal sealed class SearchPlan
{
    public required int[] Words { get; init; }
    public required string[] Names { get; init; }
    /// <summary>Per name pattern, its literal runs (lower-cased UTF-8) that the display name or uuid must contain.</summary>
    public required byte[][][] NameParts { get; init; }
    public required HashSet<string>? Ids { get; init; }
    public required byte[]? Text { get; init; }
    public required byte[]? Purpose { get; init; }
    public required IReadOnlySet<string>? Stale { get; init; }
    public required byte Skip { get; init; }
    public required bool OnlineOnly { get; init; }

    /// <summary>The plan, or null when a wanted tag or capability is on no client (nothing can match).</summary>
    public static SearchPlan? Create(ClientQuery query, ClientIndex.WordIds ids, IReadOnlySet<string>? stale)
    {
        var words = new List<int>();
        foreach (var (list, isTag) in new[] { (query.Tags, true), (query.Capabilities, false) })
        {
            foreach (var word in (list ?? []).Where(w => w is not null).Select(w => w.Trim()).Where(w => w.Length > 0))
            {
                if (!ids.TryFind(word, isTag, out var id))
                {
                    return null;
                }

                if (!words.Contains(id))
                {
                    words.Add(id);
                }
            }
        }

        var names = query.Names is { Count: > 0 } n ? n.Where(x => x is not null).ToArray() : [];
        return new SearchPlan
        {
            Words = [.. words],
            Names = names,
            NameParts = names.Select(pattern => ClientNameKey.Of(pattern)
                .Split(['*', '?'], StringSplitOptions.RemoveEmptyEntries)
                .Select(part => ClientIndex.Utf8.GetBytes(ClientIndex.LowerChars(part)))
                .ToArray()).ToArray(),
            Ids = query.Ids is { Count: > 0 } d ? new HashSet<string>(d.Where(x => x is not null).Select(x => x.Trim()), StringComparer.OrdinalIgnoreCase) : null,
            Text = ClientIndex.Needle(query.Query),
            Purpose = ClientIndex.Needle(query.Purpose),
            Stale = stale is { Count: > 0 } ? stale : null,
            Skip = query.IncludeRemoved ? (byte)0 : ClientSegment.RemovedFlag,
            OnlineOnly = query.OnlineOnly,
        };
    }
}

/// <summary>
/// Append-only storage shared by the successive versions of one segment (the text bytes, or the word ids, of its
/// clients). A version reads only the ranges it was built with, all below <see cref="Used"/> at that time; a later
/// version appends its changed clients past <see cref="Used"/>, into capacity no earlier version reads, so the older
/// indexes that readers still hold never see a byte change. When the capacity is spent, the next version copies its
/// live ranges into a new arena instead (the old one is dropped with the last version that reads it).
/// </summary>
internal sealed class Arena<T>
{
    private int _used;

    public Arena(T[] data, int used)
    {
        Data = data;
        _used = used;
    }

    /// <summary>The storage; its length never changes.</summary>
    public T[] Data { get; }

    /// <summary>Items handed out so far (the high-water mark: nothing at or past it is read by any version).</summary>
    public int Used => Volatile.Read(ref _used);

    /// <summary>Reserves <paramref name="length"/> items past the high-water mark; false when they do not fit.</summary>
    public bool TryReserve(int length, out int at)
    {
        while (true)
        {
            var used = Volatile.Read(ref _used);
            if (length > Data.Length - used)
            {
                at = -1;
                return false;
            }

            if (Interlocked.CompareExchange(ref _used, used + length, used) == used)
            {
                at = used;
                return true;
            }
        }
    }
}

/// <summary>
/// One sorted run of clients and its flat search arrays; immutable once built, as seen by its readers. The per-client
/// arrays (records, flags, ranges, field lengths) belong to one version; the text and word ids live in arenas that the
/// versions of a segment share (<see cref="Arena{T}"/>), so a changed client costs its own bytes and the next version
/// copies only the small per-client arrays.
/// </summary>
internal sealed class ClientSegment
{
    internal const byte RemovedFlag = 1;
    internal const byte OnlineFlag = 2;

    /// <summary>The display name's lower-cased text is its <see cref="ClientNameKey"/>, so the name prefilter may read it.</summary>
    internal const byte PlainNameFlag = 4;

    /// <summary>An arena past this many times its live items (plus <see cref="ArenaSlack"/>) is compacted by the next version.</summary>
    private const int MaxWasteFactor = 3;

    private const int ArenaSlack = 64;

    private readonly ClientRecord[] _records;
    private readonly byte[] _flags;

    // Word ids of client i: _words.Data[_wordRange[2i] .. _wordRange[2i + 1]].
    private readonly int[] _wordRange;
    private readonly Arena<int> _words;

    // Text of client i, lower-cased UTF-8 at _text.Data[_textRange[2i] .. _textRange[2i + 1]]:
    // purpose 1F display-name 1F hostname (1F tag)* 1F uuid. The query part ends before the uuid.
    // _fieldLength[3i], [3i + 1], [3i + 2]: bytes of the purpose, of the display name, of the query part.
    private readonly int[] _textRange;
    private readonly int[] _fieldLength;
    private readonly Arena<byte> _text;

    // The arenas' storage, read by every search (an arena's storage never changes).
    private readonly int[] _wordData;
    private readonly byte[] _textData;

    private ClientSegment(ClientRecord[] records, byte[] flags, int[] wordRange, Arena<int> words, int[] textRange, int[] fieldLength, Arena<byte> text)
    {
        _records = records;
        _flags = flags;
        _wordRange = wordRange;
        _words = words;
        _textRange = textRange;
        _fieldLength = fieldLength;
        _text = text;
        _wordData = words.Data;
        _textData = text.Data;
    }

    public int Count => _records.Length;

    public ClientRecord Last => _records[^1];

    /// <summary>True when this segment stores its text and word ids in the same arenas as <paramref name="other"/>.</summary>
    internal bool SharesArenasWith(ClientSegment other) => ReferenceEquals(_text, other._text) && ReferenceEquals(_words, other._words);

    public static ClientSegment Build(ReadOnlySpan<ClientRecord> sorted, ClientIndex.WordIds ids)
    {
        var builder = Builder.Fresh(sorted.Length, ids, sorted.Length * 12, sorted.Length * 192);
        foreach (var client in sorted)
        {
            builder.AddNew(client);
        }

        return builder.Finish();
    }

    /// <summary>
    /// This segment without the <paramref name="removed"/> clients (same objects) and with <paramref name="added"/>
    /// merged in. The new version shares this one's arenas and appends only the added clients' text and word ids;
    /// when they do not fit, or the arenas hold mostly dead ranges, it copies its clients into new arenas.
    /// </summary>
    public ClientSegment With(List<ClientRecord> removed, List<ClientRecord> added, ClientIndex.WordIds ids)
    {
        var removals = new List<int>(removed.Count);
        foreach (var old in removed)
        {
            var at = Array.BinarySearch(_records, old, ClientOrder.Comparer);
            if (at >= 0)
            {
                removals.Add(at);
            }
        }

        removals.Sort();
        added.Sort(ClientOrder.Comparer);
        var insertAt = new int[added.Count];
        for (var j = 0; j < added.Count; j++)
        {
            var at = Array.BinarySearch(_records, added[j], ClientOrder.Comparer);
            insertAt[j] = at >= 0 ? at : ~at;
        }

        var count = _records.Length - removals.Count + added.Count;
        var shared = Builder.Sharing(this, count, ids);
        if (Merge(shared, removals, added, insertAt)
            && shared.LiveText * MaxWasteFactor + ArenaSlack >= _text.Data.Length
            && shared.LiveWords * MaxWasteFactor + ArenaSlack >= _words.Data.Length)
        {
            return shared.Finish();
        }

        // Spent (or mostly dead) arenas: what the sharing attempt reserved stays unread, and the new version gets its own.
        var n = _records.Length;
        var fresh = Builder.Fresh(count, ids, LiveItems(_wordRange, 0, n) + (added.Count * 16), LiveItems(_textRange, 0, n) + (added.Count * 256));
        Merge(fresh, removals, added, insertAt);
        return fresh.Finish();
    }

    /// <summary>Copies the kept clients and adds the new ones in order; false when a sharing builder ran out of arena.</summary>
    private bool Merge(Builder builder, List<int> removals, List<ClientRecord> added, int[] insertAt)
    {
        var n = _records.Length;
        int pos = 0, r = 0, i = 0;
        while (true)
        {
            var nextInsert = i < added.Count ? insertAt[i] : int.MaxValue;
            var nextRemoval = r < removals.Count ? removals[r] : int.MaxValue;
            var stop = Math.Min(n, Math.Min(nextInsert, nextRemoval));
            if (stop > pos)
            {
                builder.CopyRange(this, pos, stop);
                pos = stop;
            }

            if (nextInsert == pos)
            {
                if (!builder.AddNew(added[i++])) // before the old client at pos
                {
                    return false;
                }
            }
            else if (nextRemoval == pos)
            {
                pos++;
                r++;
            }
            else
            {
                return true;
            }
        }
    }

    /// <summary>This segment, or nothing when empty, or halves of about <paramref name="size"/> when past twice that.</summary>
    public IEnumerable<ClientSegment> Split(int size, ClientIndex.WordIds ids)
    {
        if (Count == 0)
        {
            yield break;
        }

        if (Count <= 2 * size)
        {
            yield return this;
            yield break;
        }

        for (var at = 0; at < Count; at += size)
        {
            var to = Math.Min(Count, at + size);
            var part = Builder.Fresh(to - at, ids, LiveItems(_wordRange, at, to), LiveItems(_textRange, at, to));
            part.CopyRange(this, at, to);
            yield return part.Finish();
        }
    }

    /// <summary>Adds the clients of this segment that pass <paramref name="plan"/> to <paramref name="result"/>.</summary>
    public void Search(SearchPlan plan, List<ClientRecord> result)
    {
        for (var i = 0; i < _records.Length; i++)
        {
            var flags = _flags[i];
            if ((flags & plan.Skip) != 0)
            {
                continue;
            }

            var online = (flags & OnlineFlag) != 0;
            var wentStale = online && plan.Stale is not null && plan.Stale.Contains(_records[i].Uuid);
            if ((plan.OnlineOnly && (!online || wentStale)) || (plan.Words.Length > 0 && !HasWords(i, plan.Words)))
            {
                continue;
            }

            if ((plan.Purpose is not null && TextOf(i)[.._fieldLength[3 * i]].IndexOf(plan.Purpose) < 0)
                || (plan.Text is not null && TextOf(i)[.._fieldLength[(3 * i) + 2]].IndexOf(plan.Text) < 0)
                || (plan.Names.Length > 0 && !MayMatchName(i, plan.NameParts)))
            {
                continue;
            }

            var client = _records[i];
            if ((plan.Ids is not null && !plan.Ids.Contains(client.Uuid)) || (plan.Names.Length > 0 && !AnyName(plan.Names, client)))
            {
                continue;
            }

            result.Add(wentStale ? client with { Online = false, TunnelPort = null, SessionId = null } : client);
        }
    }

    /// <summary>Items in the ranges of clients [from, to).</summary>
    private static int LiveItems(int[] ranges, int from, int to)
    {
        var sum = 0;
        for (var k = from; k < to; k++)
        {
            sum += ranges[(2 * k) + 1] - ranges[2 * k];
        }

        return sum;
    }

    private bool HasWords(int i, int[] wanted)
    {
        var start = _wordRange[2 * i];
        var have = _wordData.AsSpan(start, _wordRange[(2 * i) + 1] - start);
        foreach (var id in wanted)
        {
            if (!have.Contains(id))
            {
                return false;
            }
        }

        return true;
    }

    private ReadOnlySpan<byte> TextOf(int i)
    {
        var start = _textRange[2 * i];
        return _textData.AsSpan(start, _textRange[(2 * i) + 1] - start);
    }

    /// <summary>
    /// A cheap necessary condition for a name pattern to match, checked on the flat text: every literal run of some
    /// pattern occurs in the display name, or every one occurs in the uuid. The pattern matcher confirms.
    /// </summary>
    private bool MayMatchName(int i, byte[][][] patterns)
    {
        if ((_flags[i] & PlainNameFlag) == 0)
        {
            return true; // a name that normalises to other characters is left to the matcher
        }

        var text = TextOf(i);
        var name = text.Slice(_fieldLength[3 * i] + 1, _fieldLength[(3 * i) + 1]);
        var uuid = text[(_fieldLength[(3 * i) + 2] + 1)..];
        foreach (var parts in patterns)
        {
            if (ContainsAll(name, parts) || ContainsAll(uuid, parts))
            {
                return true;
            }
        }

        return false;
    }

    private static bool ContainsAll(ReadOnlySpan<byte> field, byte[][] parts)
    {
        foreach (var part in parts)
        {
            if (field.IndexOf(part) < 0)
            {
                return false;
            }
        }

        return true;
    }

    private static bool AnyName(string[] names, ClientRecord client)
    {
        foreach (var name in names)
        {
            if (ClientNameMatcher.IsMatch(name, client))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Lays out the next version of a segment: kept clients copied from an older version, new clients encoded. A
    /// sharing builder appends into the older version's arenas (kept clients keep their ranges as they are); a fresh
    /// builder fills arrays of its own and makes new arenas of them, with some room for later versions to append.
    /// </summary>
    private sealed class Builder
    {
        private readonly ClientIndex.WordIds _ids;
        private readonly ClientRecord[] _records;
        private readonly byte[] _flags;
        private readonly int[] _wordRange;
        private readonly int[] _textRange;
        private readonly int[] _fieldLength;

        // Sharing: the arenas appended to. Fresh: null, and the arrays below grow.
        private readonly Arena<int>? _sharedWords;
        private readonly Arena<byte>? _sharedText;
        private int[] _words = [];
        private byte[] _text = [];
        private int _wordCount;
        private int _textLength;
        private int _count;

        private Builder(int capacity, ClientIndex.WordIds ids, Arena<int>? sharedWords, Arena<byte>? sharedText)
        {
            _ids = ids;
            _records = new ClientRecord[capacity];
            _flags = new byte[capacity];
            _wordRange = new int[2 * capacity];
            _textRange = new int[2 * capacity];
            _fieldLength = new int[3 * capacity];
            _sharedWords = sharedWords;
            _sharedText = sharedText;
        }

        /// <summary>Live word ids and text bytes of the clients added so far.</summary>
        public int LiveWords { get; private set; }

        public int LiveText { get; private set; }

        public static Builder Sharing(ClientSegment source, int capacity, ClientIndex.WordIds ids) =>
            new(capacity, ids, source._words, source._text);

        public static Builder Fresh(int capacity, ClientIndex.WordIds ids, int wordCapacity, int textCapacity) =>
            new(capacity, ids, null, null)
            {
                _words = new int[Math.Max(16, wordCapacity)],
                _text = new byte[Math.Max(256, textCapacity)],
            };

        /// <summary>Appends a new client; false when a sharing builder's arenas have no room for it (nothing is then usable).</summary>
        public bool AddNew(ClientRecord client)
        {
            var k = _count;

            // Word ids first, to know their number.
            var wordCount = client.Tags.Count + client.Capabilities.Count;
            if (!Reserve(_sharedWords, ref _words, ref _wordCount, wordCount, out var wordAt))
            {
                return false;
            }

            var words = (_sharedWords?.Data ?? _words).AsSpan(wordAt, wordCount);
            var w = 0;
            foreach (var tag in client.Tags)
            {
                words[w++] = _ids.Get(tag.Trim(), isTag: true);
            }

            foreach (var capability in client.Capabilities)
            {
                words[w++] = _ids.Get(capability.Trim(), isTag: false);
            }

            // Text: purpose 1F name 1F hostname (1F tag)* 1F uuid, each field lower-cased.
            var lowerName = LowerOrEmpty(client.DisplayName);
            var fields = new string[4 + client.Tags.Count];
            fields[0] = LowerOrEmpty(client.Purpose);
            fields[1] = lowerName;
            fields[2] = LowerOrEmpty(client.Hostname);
            for (var t = 0; t < client.Tags.Count; t++)
            {
                fields[3 + t] = LowerOrEmpty(client.Tags[t]);
            }

            fields[^1] = LowerOrEmpty(client.Uuid);
            var textLength = fields.Length - 1;
            foreach (var field in fields)
            {
                textLength += ClientIndex.Utf8.GetByteCount(field);
            }

            if (!Reserve(_sharedText, ref _text, ref _textLength, textLength, out var textAt))
            {
                return false;
            }

            var text = (_sharedText?.Data ?? _text).AsSpan(textAt, textLength);
            var written = 0;
            for (var f = 0; f < fields.Length; f++)
            {
                if (f > 0)
                {
                    text[written++] = ClientIndex.FieldSeparator;
                }

                var bytes = ClientIndex.Utf8.GetBytes(fields[f], text[written..]);
                if (f == 0)
                {
                    _fieldLength[3 * k] = bytes;
                }
                else if (f == 1)
                {
                    _fieldLength[(3 * k) + 1] = bytes;
                }

                written += bytes;
                if (f == fields.Length - 2)
                {
                    _fieldLength[(3 * k) + 2] = written; // the query part ends before the uuid
                }
            }

            _records[k] = client;
            _flags[k] = (byte)((client.RemovedAt is null ? 0 : RemovedFlag) | (client.Online ? OnlineFlag : 0)
                | (ClientNameKey.Of(client.DisplayName) == lowerName ? PlainNameFlag : 0));
            _wordRange[2 * k] = wordAt;
            _wordRange[(2 * k) + 1] = wordAt + wordCount;
            _textRange[2 * k] = textAt;
            _textRange[(2 * k) + 1] = textAt + textLength;
            LiveWords += wordCount;
            LiveText += textLength;
            _count++;
            return true;
        }

        /// <summary>Appends clients [from, to) of <paramref name="source"/> unchanged.</summary>
        public void CopyRange(ClientSegment source, int from, int to)
        {
            var length = to - from;
            var k = _count;
            Array.Copy(source._records, from, _records, k, length);
            Array.Copy(source._flags, from, _flags, k, length);
            Array.Copy(source._fieldLength, 3 * from, _fieldLength, 3 * k, 3 * length);
            var words = LiveItems(source._wordRange, from, to);
            var text = LiveItems(source._textRange, from, to);
            if (_sharedText is not null)
            {
                // Same arenas: the ranges stay as they are.
                Array.Copy(source._wordRange, 2 * from, _wordRange, 2 * k, 2 * length);
                Array.Copy(source._textRange, 2 * from, _textRange, 2 * k, 2 * length);
            }
            else
            {
                Gather(source._words.Data, source._wordRange, from, to, ref _words, ref _wordCount, _wordRange, k);
                Gather(source._text.Data, source._textRange, from, to, ref _text, ref _textLength, _textRange, k);
            }

            LiveWords += words;
            LiveText += text;
            _count += length;
        }

        public ClientSegment Finish()
        {
            var records = _count == _records.Length ? _records : _records[.._count];
            if (_sharedText is not null && _sharedWords is not null)
            {
                return new ClientSegment(records, _flags, _wordRange, _sharedWords, _textRange, _fieldLength, _sharedText);
            }

            // Room to append: a quarter of the live size, so a version copies its clients anew after about a quarter changed.
            var words = new Arena<int>(Sized(_words, _wordCount), _wordCount);
            var text = new Arena<byte>(Sized(_text, _textLength), _textLength);
            return new ClientSegment(records, _flags, _wordRange, words, _textRange, _fieldLength, text);

            static T[] Sized<T>(T[] data, int used)
            {
                var capacity = used + (used / 4) + ArenaSlack;
                if (data.Length != capacity)
                {
                    Array.Resize(ref data, capacity);
                }

                return data;
            }
        }

        private static string LowerOrEmpty(string? value) => string.IsNullOrEmpty(value) ? string.Empty : ClientIndex.LowerChars(value);

        /// <summary>Room for <paramref name="length"/> items: in the shared arena, else at the end of the growing array.</summary>
        private static bool Reserve<T>(Arena<T>? shared, ref T[] data, ref int used, int length, out int at)
        {
            if (shared is not null)
            {
                return shared.TryReserve(length, out at);
            }

            if (used + length > data.Length)
            {
                Array.Resize(ref data, Math.Max(data.Length * 2, used + length));
            }

            at = used;
            used += length;
            return true;
        }

        /// <summary>Copies the items of clients [from, to) to the end of <paramref name="data"/> and records their new ranges.</summary>
        private static void Gather<T>(T[] source, int[] sourceRange, int from, int to, ref T[] data, ref int used, int[] ranges, int at)
        {
            for (var k = from; k < to; k++)
            {
                var start = sourceRange[2 * k];
                var length = sourceRange[(2 * k) + 1] - start;
                if (used + length > data.Length)
                {
                    Array.Resize(ref data, Math.Max(data.Length * 2, used + length));
                }

                Array.Copy(source, start, data, used, length);
                var to2 = at + (k - from);
                ranges[2 * to2] = used;
                ranges[(2 * to2) + 1] = used + length;
                used += length;
            }
        }
    }
}
