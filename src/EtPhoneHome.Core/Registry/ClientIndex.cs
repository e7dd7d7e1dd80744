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
/// in are rebuilt, the others are shared, and every array stays small (no large-object-heap churn).
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

    /// <summary>An index of <paramref name="clients"/> (each uuid once), sorted by <see cref="ClientOrder"/>.</summary>
    public static ClientIndex Build(IEnumerable<ClientRecord> clients)
    {
        ArgumentNullException.ThrowIfNull(clients);
        return new ClientIndex([], new WordIds()).Rebuilt(clients);
    }

    /// <summary>
    /// The next index: every client in <paramref name="changed"/> replaces its previous version (found through
    /// <paramref name="previous"/>, by uuid; null when the client is new). Segments without a change are shared with
    /// this index; O(k log n) to place k changes plus rebuilding the segments they touch.
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

        var removals = new Dictionary<int, List<ClientRecord>>();
        var additions = new Dictionary<int, List<ClientRecord>>();
        foreach (var client in changed)
        {
            if (previous(client.Uuid) is { } old)
            {
                Add(removals, SegmentOf(old), old);
            }

            Add(additions, SegmentOf(client), client);
        }

        var segments = new List<ClientSegment>(_segments.Length + 2);
        for (var k = 0; k < _segments.Length; k++)
        {
            var removed = removals.GetValueOrDefault(k);
            var added = additions.GetValueOrDefault(k);
            if (removed is null && added is null)
            {
                segments.Add(_segments[k]);
                continue;
            }

            var next = _segments[k].With(removed ?? [], added ?? [], _ids);
            segments.AddRange(next.Split(SegmentSize, _ids));
        }

        return new ClientIndex([.. segments], _ids);

        static void Add(Dictionary<int, List<ClientRecord>> map, int key, ClientRecord client)
        {
            if (!map.TryGetValue(key, out var list))
            {
                map[key] = list = [];
            }

            list.Add(client);
        }
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

/// <summary>One sorted run of clients and its flat search arrays; immutable once built.</summary>
internal sealed class ClientSegment
{
    internal const byte RemovedFlag = 1;
    internal const byte OnlineFlag = 2;

    /// <summary>The display name's lower-cased text is its <see cref="ClientNameKey"/>, so the name prefilter may read it.</summary>
    internal const byte PlainNameFlag = 4;

    private readonly ClientRecord[] _records;
    private readonly byte[] _flags;
    private readonly int[] _words;      // word ids of client i: _words[_wordStart[i] .. _wordStart[i + 1]]
    private readonly int[] _wordStart;

    // Text of client i, lower-cased UTF-8 at _text[_textStart[i] .. _textStart[i + 1]]:
    // purpose 1F display-name 1F hostname (1F tag)* 1F uuid. The query part ends before the uuid.
    private readonly byte[] _text;
    private readonly int[] _textStart;
    private readonly int[] _purposeLength;
    private readonly int[] _nameLength;
    private readonly int[] _queryLength;

    private ClientSegment(
        ClientRecord[] records, byte[] flags, int[] words, int[] wordStart, byte[] text, int[] textStart, int[] purposeLength, int[] nameLength,
        int[] queryLength)
    {
        _records = records;
        _flags = flags;
        _words = words;
        _wordStart = wordStart;
        _text = text;
        _textStart = textStart;
        _purposeLength = purposeLength;
        _nameLength = nameLength;
        _queryLength = queryLength;
    }

    public int Count => _records.Length;

    public ClientRecord Last => _records[^1];

    public static ClientSegment Build(ReadOnlySpan<ClientRecord> sorted, ClientIndex.WordIds ids)
    {
        var builder = new Builder(sorted.Length, ids, sorted.Length * 12, sorted.Length * 160);
        foreach (var client in sorted)
        {
            builder.AddNew(client);
        }

        return builder.Finish();
    }

    /// <summary>This segment without the <paramref name="removed"/> clients (same objects) and with <paramref name="added"/> merged in.</summary>
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

        var n = _records.Length;
        var builder = new Builder(n - removals.Count + added.Count, ids, _wordStart[n] + (added.Count * 16), _textStart[n] + (added.Count * 256));
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
                builder.AddNew(added[i++]); // before the old client at pos
            }
            else if (nextRemoval == pos)
            {
                pos++;
                r++;
            }
            else
            {
                break;
            }
        }

        return builder.Finish();
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
            var part = new Builder(to - at, ids, _wordStart[to] - _wordStart[at], _textStart[to] - _textStart[at]);
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

            if ((plan.Purpose is not null && TextOf(i)[.._purposeLength[i]].IndexOf(plan.Purpose) < 0)
                || (plan.Text is not null && TextOf(i)[.._queryLength[i]].IndexOf(plan.Text) < 0)
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

    private bool HasWords(int i, int[] wanted)
    {
        var have = _words.AsSpan(_wordStart[i], _wordStart[i + 1] - _wordStart[i]);
        foreach (var id in wanted)
        {
            if (!have.Contains(id))
            {
                return false;
            }
        }

        return true;
    }

    private ReadOnlySpan<byte> TextOf(int i) => _text.AsSpan(_textStart[i], _textStart[i + 1] - _textStart[i]);

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
        var name = text.Slice(_purposeLength[i] + 1, _nameLength[i]);
        var uuid = text[(_queryLength[i] + 1)..];
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

    /// <summary>Appends clients, new or copied in runs from an older index, into the arrays of the next index.</summary>
    private sealed class Builder
    {
        private readonly ClientIndex.WordIds _ids;
        private readonly ClientRecord[] _records;
        private readonly byte[] _flags;
        private readonly int[] _wordStart;
        private readonly int[] _textStart;
        private readonly int[] _purposeLength;
        private readonly int[] _nameLength;
        private readonly int[] _queryLength;
        private int[] _words;
        private byte[] _text;
        private int _count;
        private int _wordCount;
        private int _textLength;

        public Builder(int capacity, ClientIndex.WordIds ids, int wordCapacity, int textCapacity)
        {
            _ids = ids;
            _records = new ClientRecord[capacity];
            _flags = new byte[capacity];
            _wordStart = new int[capacity + 1];
            _textStart = new int[capacity + 1];
            _purposeLength = new int[capacity];
            _nameLength = new int[capacity];
            _queryLength = new int[capacity];
            _words = new int[Math.Max(16, wordCapacity)];
            _text = new byte[Math.Max(256, textCapacity)];
        }

        public void AddNew(ClientRecord client)
        {
            var k = _count++;
            _records[k] = client;
            _flags[k] = (byte)((client.RemovedAt is null ? 0 : RemovedFlag) | (client.Online ? OnlineFlag : 0)
                | (ClientNameKey.Of(client.DisplayName) == ClientIndex.LowerChars(client.DisplayName) ? PlainNameFlag : 0));
            foreach (var tag in client.Tags)
            {
                AddWord(_ids.Get(tag.Trim(), isTag: true));
            }

            foreach (var capability in client.Capabilities)
            {
                AddWord(_ids.Get(capability.Trim(), isTag: false));
            }

            _wordStart[k + 1] = _wordCount;
            var start = _textLength;
            _purposeLength[k] = AddText(client.Purpose);
            AddSeparator();
            _nameLength[k] = AddText(client.DisplayName);
            AddSeparator();
            AddText(client.Hostname);
            foreach (var tag in client.Tags)
            {
                AddSeparator();
                AddText(tag);
            }

            _queryLength[k] = _textLength - start;
            AddSeparator();
            AddText(client.Uuid);
            _textStart[k + 1] = _textLength;
        }

        /// <summary>Appends clients [from, to) of <paramref name="source"/> unchanged.</summary>
        public void CopyRange(ClientSegment source, int from, int to)
        {
            var length = to - from;
            var k = _count;
            Array.Copy(source._records, from, _records, k, length);
            Array.Copy(source._flags, from, _flags, k, length);
            Array.Copy(source._purposeLength, from, _purposeLength, k, length);
            Array.Copy(source._nameLength, from, _nameLength, k, length);
            Array.Copy(source._queryLength, from, _queryLength, k, length);
            _wordCount = CopyRuns(source._words, source._wordStart, from, to, ref _words, _wordStart, k, _wordCount);
            _textLength = CopyRuns(source._text, source._textStart, from, to, ref _text, _textStart, k, _textLength);
            _count += length;
        }

        public int Count => _count;

        public ClientSegment Finish() => new(
            _count == _records.Length ? _records : _records[.._count], _flags, _words, _wordStart, _text, _textStart,
            _purposeLength, _nameLength, _queryLength);

        /// <summary>Copies the data of items [from, to) and rebases their start offsets; returns the new data length.</summary>
        private static int CopyRuns<T>(T[] sourceData, int[] sourceStart, int from, int to, ref T[] data, int[] starts, int at, int length)
        {
            var first = sourceStart[from];
            var size = sourceStart[to] - first;
            if (length + size > data.Length)
            {
                Array.Resize(ref data, Math.Max(data.Length * 2, length + size));
            }

            Array.Copy(sourceData, first, data, length, size);
            var shift = length - first;
            for (var k = from + 1; k <= to; k++)
            {
                starts[at + (k - from)] = sourceStart[k] + shift;
            }

            return length + size;
        }

        private void AddWord(int id)
        {
            if (_wordCount == _words.Length)
            {
                Array.Resize(ref _words, _words.Length * 2);
            }

            _words[_wordCount++] = id;
        }

        private void AddSeparator()
        {
            EnsureText(1);
            _text[_textLength++] = ClientIndex.FieldSeparator;
        }

        /// <summary>Appends a field lower-cased as UTF-8; returns its length in bytes.</summary>
        private int AddText(string? value)
        {
            if (string.IsNullOrEmpty(value))
            {
                return 0;
            }

            var lower = ClientIndex.LowerChars(value);
            EnsureText(ClientIndex.Utf8.GetMaxByteCount(lower.Length));
            var written = ClientIndex.Utf8.GetBytes(lower, _text.AsSpan(_textLength));
            _textLength += written;
            return written;
        }

        private void EnsureText(int more)
        {
            if (_textLength + more > _text.Length)
            {
                Array.Resize(ref _text, Math.Max(_text.Length * 2, _textLength + more));
            }
        }
    }
}
