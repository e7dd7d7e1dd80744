using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>
/// The in-memory client index against a plain reference of the search rules (LINQ over records), over random
/// fleets spanning several segments and random rounds of changes.
/// </summary>
public sealed class ClientIndexTests
{
    private static readonly string[] TagPool = ["prod", "Staging", "dev", "eu-west", "US-East", "gpu", "édge", "team-Ü", "web", "db"];
    private static readonly string[] CapabilityPool = ["docker", "nvidia-gpu", "git", "python3.12", "kubectl", "apt", "systemd"];
    private static readonly string[] Words = ["web", "DB", "cache", "Frankfurt", "tokyo", "billing", "Ledger", "münchen", "edge", "x"];

    [Fact]
    public void Search_AgreesWithTheReference_AcrossRandomChanges()
    {
        var random = new Random(4242);
        var fleet = Enumerable.Range(0, 1_800).Select(i => RandomClient(random, i)).ToDictionary(c => c.Uuid, StringComparer.Ordinal);
        var index = ClientIndex.Build(fleet.Values);
        Assert.True(index.SegmentCount >= 3, "the fleet must span several segments");
        var next = fleet.Count;

        for (var round = 0; round < 25; round++)
        {
            var changed = new List<ClientRecord>();
            var changes = random.Next(1, round % 5 == 0 ? 400 : 20);
            for (var k = 0; k < changes; k++)
            {
                ClientRecord client;
                if (random.NextDouble() < 0.25)
                {
                    client = RandomClient(random, next++); // a new client
                }
                else
                {
                    var old = fleet.Values.ElementAt(random.Next(fleet.Count));
                    client = Mutate(random, old);
                }

                changed.RemoveAll(c => c.Uuid == client.Uuid);
                changed.Add(client);
            }

            var previous = new Dictionary<string, ClientRecord>(fleet, StringComparer.Ordinal);
            index = index.With(changed, uuid => previous.GetValueOrDefault(uuid));
            foreach (var client in changed)
            {
                fleet[client.Uuid] = client;
            }

            Assert.Equal(fleet.Count, index.Count);
            var rebuilt = ClientIndex.Build(fleet.Values);
            foreach (var query in Queries(random, fleet.Values.ToList()))
            {
                var expected = Reference(fleet.Values, query);
                Assert.Equal(Describe(expected), Describe(index.Search(query)));
                Assert.Equal(Describe(expected), Describe(rebuilt.Search(query)));
            }
        }
    }

    [Fact]
    public void ManyRoundsOfEdits_SearchAsAFreshIndex_ThroughAppendsAndCompactions()
    {
        // Long enough that segments append into their arenas, run out of room and copy themselves anew, many times over:
        // same-position edits (purpose, online, removal), renames that move clients, tag and capability sets that grow.
        var random = new Random(99);
        var fleet = Enumerable.Range(0, 1_500).Select(i => RandomClient(random, i)).ToDictionary(c => c.Uuid, StringComparer.Ordinal);
        var index = ClientIndex.Build(fleet.Values);
        var first = index;
        var uuids = fleet.Keys.ToList();
        var next = fleet.Count;
        for (var round = 0; round < 150; round++)
        {
            var changed = new Dictionary<string, ClientRecord>(StringComparer.Ordinal);
            var changes = random.Next(1, 60);
            for (var k = 0; k < changes; k++)
            {
                ClientRecord client;
                if (random.Next(10) == 0)
                {
                    client = RandomClient(random, next++);
                    uuids.Add(client.Uuid);
                }
                else
                {
                    var uuid = uuids[random.Next(uuids.Count)];
                    var old = changed.GetValueOrDefault(uuid) ?? fleet[uuid];
                    client = random.Next(4) == 0
                        ? old with { Tags = TagPool.Concat([$"grown-{round}-{k}", "Another Long Tag Name " + round]).ToArray(), Capabilities = CapabilityPool }
                        : Mutate(random, old);
                }

                changed[client.Uuid] = client;
            }

            var previous = new Dictionary<string, ClientRecord>(fleet, StringComparer.Ordinal);
            index = index.With(changed.Values, uuid => previous.GetValueOrDefault(uuid));
            foreach (var client in changed.Values)
            {
                fleet[client.Uuid] = client;
            }

            if (round % 10 == 9)
            {
                var rebuilt = ClientIndex.Build(fleet.Values);
                foreach (var query in Queries(random, fleet.Values.ToList()).Append(new ClientQuery { Tags = [$"grown-{round}-0"] }))
                {
                    Assert.Equal(Describe(rebuilt.Search(query)), Describe(index.Search(query)));
                }
            }
        }

        Assert.Equal(fleet.Count, index.Count);
        Assert.Equal(Describe(Reference(fleet.Values, new ClientQuery { IncludeRemoved = true })), Describe(index.Search(new ClientQuery { IncludeRemoved = true })));

        // Storage really is shared between versions, and really is renewed when spent.
        Assert.Contains(index.Segments, s => !first.Segments.Any(s.SharesArenasWith));
        var one = fleet.Values.First(c => c.DisplayName.Length > 0);
        var edited = index.With([one with { Purpose = "one more edit" }], uuid => fleet.GetValueOrDefault(uuid));
        Assert.Equal(index.SegmentCount, edited.SegmentCount);
        Assert.All(Enumerable.Range(0, index.SegmentCount), k => Assert.True(edited.Segments[k].SharesArenasWith(index.Segments[k])));
        Assert.Single(edited.Search(new ClientQuery { Purpose = "ONE MORE", IncludeRemoved = true }));
        Assert.Empty(index.Search(new ClientQuery { Purpose = "ONE MORE", IncludeRemoved = true }));
    }

    [Fact]
    public void ALargeChange_PlacedAndBuiltOnSeveralThreads_SearchesAsTheReference()
    {
        // Big enough for With's parallel paths: ≥ ParallelChanges changes at once, touching ≥ ParallelSegments segments;
        // renames that crowd hundreds of clients into one segment (which then splits), new clients, and plain edits.
        var random = new Random(2026);
        var fleet = Enumerable.Range(0, 20_000).Select(i => RandomClient(random, i)).ToDictionary(c => c.Uuid, StringComparer.Ordinal);
        var index = ClientIndex.Build(fleet.Values);
        var first = index;
        Assert.True(index.SegmentCount >= 2 * ClientIndex.ParallelSegments, "the fleet must span many segments");
        var next = fleet.Count;
        for (var round = 0; round < 4; round++)
        {
            var changed = new Dictionary<string, ClientRecord>(StringComparer.Ordinal);
            var uuids = fleet.Keys.ToList();
            while (changed.Count < 1_500)
            {
                var old = fleet[uuids[random.Next(uuids.Count)]];
                var client = random.Next(10) switch
                {
                    0 => RandomClient(random, next++),
                    1 or 2 => old with { DisplayName = $"crowd-{round}-{random.Next(100_000):00000}" },
                    _ => Mutate(random, old),
                };
                changed[client.Uuid] = client;
            }

            Assert.True(changed.Count >= ClientIndex.ParallelChanges);
            var previous = new Dictionary<string, ClientRecord>(fleet, StringComparer.Ordinal);
            index = index.With(changed.Values, uuid => previous.GetValueOrDefault(uuid));
            foreach (var client in changed.Values)
            {
                fleet[client.Uuid] = client;
            }

            Assert.Equal(fleet.Count, index.Count);
            var all = index.Search(new ClientQuery { IncludeRemoved = true });
            Assert.Equal(Describe(fleet.Values.Order(ClientOrder.Comparer)), Describe(all));
            Assert.True(all.Zip(all.Skip(1)).All(p => ClientOrder.Compare(p.First, p.Second) < 0), "the index stays in order across segments");
            Assert.All(index.Segments, s => Assert.InRange(s.Count, 1, 2 * ClientIndex.SegmentSize));
            foreach (var query in Queries(random, fleet.Values.ToList()).Append(new ClientQuery { Names = [$"crowd-{round}-*"] }))
            {
                Assert.Equal(Describe(Reference(fleet.Values, query)), Describe(index.Search(query)));
            }
        }

        // The first version still answers as it was built.
        Assert.Equal(20_000, first.Count);
        Assert.Empty(first.Search(new ClientQuery { Names = ["crowd-*"] }));
    }

    [Fact]
    public void OlderIndexes_AnswerAsTheyWereBuilt_AfterLaterVersionsAppendToSharedStorage()
    {
        var random = new Random(5);
        var fleet = Enumerable.Range(0, 700).Select(i => RandomClient(random, i)).ToDictionary(c => c.Uuid, StringComparer.Ordinal);
        var versions = new List<(ClientIndex Index, List<ClientRecord> Fleet)> { (ClientIndex.Build(fleet.Values), fleet.Values.ToList()) };
        for (var round = 0; round < 60; round++)
        {
            var changed = fleet.Values.OrderBy(_ => random.Next()).Take(random.Next(1, 40)).Select(c => Mutate(random, c))
                .GroupBy(c => c.Uuid).Select(g => g.First()).ToList();
            var previous = new Dictionary<string, ClientRecord>(fleet, StringComparer.Ordinal);
            var index = versions[^1].Index.With(changed, uuid => previous.GetValueOrDefault(uuid));
            foreach (var client in changed)
            {
                fleet[client.Uuid] = client;
            }

            versions.Add((index, fleet.Values.ToList()));
        }

        foreach (var (index, clients) in versions)
        {
            foreach (var query in Queries(random, clients))
            {
                Assert.Equal(Describe(Reference(clients, query)), Describe(index.Search(query)));
            }
        }
    }

    [Fact]
    public async Task ReadersSearchingWhileRefreshesBuildNewVersions_AlwaysSeeAWholeVersion()
    {
        // One writer makes version after version (as the registry's copy does, under its lock) and publishes each with
        // the fleet it holds; readers search whatever version they last took, old or new, and compare with the rules.
        var random = new Random(11);
        var fleet = Enumerable.Range(0, 1_200).Select(i => RandomClient(random, i)).ToDictionary(c => c.Uuid, StringComparer.Ordinal);
        var published = Tuple.Create(ClientIndex.Build(fleet.Values), fleet.Values.ToList());
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        var newerVersionsTaken = 0;

        var readers = Enumerable.Range(0, 3).Select(r => Task.Run(() =>
        {
            var mine = new Random(r);
            var held = Volatile.Read(ref published);
            for (var i = 0; i < 60; i++)
            {
                if (i % 4 == 0 && Volatile.Read(ref published) is var latest && latest != held)
                {
                    held = latest; // and keep searching it a while as newer versions appear
                    Interlocked.Increment(ref newerVersionsTaken);
                }

                foreach (var query in Queries(mine, held.Item2).Take(8))
                {
                    var got = Describe(held.Item1.Search(query));
                    if (got != Describe(Reference(held.Item2, query)))
                    {
                        failures.Enqueue($"reader {r}, search {i}: {query.Query ?? query.Purpose ?? string.Join(",", query.Names ?? [])}");
                    }
                }
            }
        })).ToArray();

        var rounds = 0;
        var writer = Task.Run(() =>
        {
            for (; rounds < 20_000 && !readers.All(t => t.IsCompleted); rounds++)
            {
                var changed = fleet.Values.OrderBy(_ => random.Next()).Take(random.Next(1, 80)).Select(c => Mutate(random, c))
                    .GroupBy(c => c.Uuid).Select(g => g.First()).ToList();
                var current = Volatile.Read(ref published).Item1;
                var index = current.With(changed, uuid => fleet.GetValueOrDefault(uuid));
                foreach (var client in changed)
                {
                    fleet[client.Uuid] = client;
                }

                Volatile.Write(ref published, Tuple.Create(index, fleet.Values.ToList()));
            }
        });

        await Task.WhenAll(readers).WaitAsync(TimeSpan.FromMinutes(3));
        await writer.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.Empty(failures);
        Assert.True(rounds >= 10 && newerVersionsTaken >= 3, $"versions written: {rounds}, newer versions taken by readers: {newerVersionsTaken}");
    }

    [Fact]
    public void Segments_SplitWhenManyClientsLandInOne_AndOrderHolds()
    {
        var random = new Random(7);
        var fleet = Enumerable.Range(0, 600).Select(i => RandomClient(random, i)).ToList();
        var index = ClientIndex.Build(fleet);
        var before = index.SegmentCount;

        // 3,000 new clients whose names sort next to each other all fall into one segment, which must split.
        var added = Enumerable.Range(0, 3_000).Select(i => RandomClient(random, 10_000 + i) with { DisplayName = $"zz-{i:00000}" }).ToList();
        index = index.With(added, _ => null);

        Assert.Equal(3_600, index.Count);
        Assert.True(index.SegmentCount >= before + 5, $"segments: {before} -> {index.SegmentCount}");
        var all = fleet.Concat(added).ToList();
        Assert.Equal(Describe(all.Order(ClientOrder.Comparer).ToList()), Describe(index.Search(new ClientQuery { IncludeRemoved = true })));
    }

    [Fact]
    public void StaleOnlineClients_AreReturnedOffline_AndLeftOutOfOnlineSearches()
    {
        var a = Client("a", online: true);
        var b = Client("b", online: true);
        var index = ClientIndex.Build([a, b]);
        var stale = new HashSet<string> { b.Uuid };

        var online = index.Search(new ClientQuery { OnlineOnly = true }, stale);
        Assert.Equal(["a"], online.Select(c => c.DisplayName));

        var all = index.Search(new ClientQuery(), stale);
        var returned = all.Single(c => c.Uuid == b.Uuid);
        Assert.False(returned.Online);
        Assert.Null(returned.TunnelPort);
        Assert.Null(returned.SessionId);
        Assert.True(all.Single(c => c.Uuid == a.Uuid).Online);
    }

    [Fact]
    public void Query_NeverSpansTwoFields_EvenWithTheSeparatorInIt()
    {
        var client = Client("box") with { Purpose = "payroll", Hostname = "h1", Tags = ["t1"] };
        var index = ClientIndex.Build([client]);

        Assert.Empty(index.Search(new ClientQuery { Query = "payroll\u001fbox" }));
        Assert.Empty(index.Search(new ClientQuery { Query = "box h1" }));
        Assert.Single(index.Search(new ClientQuery { Query = "ROLL" }));
        Assert.Empty(index.Search(new ClientQuery { Purpose = "box" })); // the purpose filter reads the purpose only
        Assert.Empty(index.Search(new ClientQuery { Query = client.Uuid[..8] })); // the uuid is not part of -Query
        Assert.Single(index.Search(new ClientQuery { Names = [client.Uuid[..8].ToUpperInvariant() + "*"] }));
    }

    [Fact]
    public void UnknownTagOrCapability_MatchesNothing_BlankOnesAreIgnored()
    {
        var index = ClientIndex.Build([Client("a") with { Tags = ["prod"], Capabilities = ["git"] }]);

        Assert.Empty(index.Search(new ClientQuery { Tags = ["nope"] }));
        Assert.Empty(index.Search(new ClientQuery { Capabilities = ["prod"] })); // a tag is not a capability
        Assert.Single(index.Search(new ClientQuery { Tags = [" PROD ", ""], Capabilities = ["GIT"] }));
    }

    // ----- the reference: the documented rules, written as plainly as possible -----

    private static List<ClientRecord> Reference(IEnumerable<ClientRecord> clients, ClientQuery q)
    {
        static string Low(string? s) => string.Concat((s ?? "").Select(c => char.ToLowerInvariant(c) == '\u001f' ? ' ' : char.ToLowerInvariant(c)));
        static bool Has(string? field, string needle) => Low(field).Contains(Low(needle), StringComparison.Ordinal);
        static IEnumerable<string> Clean(IReadOnlyList<string>? words) => (words ?? []).Select(w => w.Trim()).Where(w => w.Length > 0);

        return clients
            .Where(c => q.IncludeRemoved || c.RemovedAt is null)
            .Where(c => !q.OnlineOnly || c.Online)
            .Where(c => Clean(q.Tags).All(t => c.Tags.Any(x => Low(x) == Low(t))))
            .Where(c => Clean(q.Capabilities).All(t => c.Capabilities.Any(x => Low(x) == Low(t))))
            .Where(c => q.Ids is not { Count: > 0 } || q.Ids.Any(id => string.Equals(id.Trim(), c.Uuid, StringComparison.OrdinalIgnoreCase)))
            .Where(c => q.Names is not { Count: > 0 } || q.Names.Any(n => ClientNameMatcher.IsNameMatch(n, c.DisplayName) || ClientNameMatcher.IsMatch(n, c.Uuid)))
            .Where(c => string.IsNullOrEmpty(q.Purpose) || Has(c.Purpose, q.Purpose))
            .Where(c => string.IsNullOrEmpty(q.Query) || Has(c.DisplayName, q.Query) || Has(c.Purpose, q.Query) || Has(c.Hostname, q.Query)
                        || c.Tags.Any(t => Has(t, q.Query)))
            .Order(ClientOrder.Comparer)
            .ToList();
    }

    private static IEnumerable<ClientQuery> Queries(Random random, List<ClientRecord> fleet)
    {
        ClientRecord Any() => fleet[random.Next(fleet.Count)];
        string Cased(string s) => random.Next(3) switch { 0 => s.ToUpperInvariant(), 1 => s.ToLowerInvariant(), _ => s };
        string Piece(string? s)
        {
            if (string.IsNullOrEmpty(s))
            {
                return "x";
            }

            var start = random.Next(s.Length);
            return Cased(s.Substring(start, random.Next(1, Math.Min(8, s.Length - start) + 1)));
        }

        yield return new ClientQuery();
        yield return new ClientQuery { IncludeRemoved = true };
        yield return new ClientQuery { OnlineOnly = true };
        yield return new ClientQuery { Tags = [Cased(TagPool[random.Next(TagPool.Length)])] };
        yield return new ClientQuery { Tags = [TagPool[random.Next(TagPool.Length)], TagPool[random.Next(TagPool.Length)]], OnlineOnly = true };
        yield return new ClientQuery { Capabilities = [Cased(CapabilityPool[random.Next(CapabilityPool.Length)]), CapabilityPool[random.Next(CapabilityPool.Length)]] };
        yield return new ClientQuery { Capabilities = [CapabilityPool[random.Next(CapabilityPool.Length)]], Tags = [TagPool[random.Next(TagPool.Length)]] };
        var c = Any();
        yield return new ClientQuery { Query = Piece(c.DisplayName) };
        yield return new ClientQuery { Query = Piece(c.Purpose), IncludeRemoved = true };
        yield return new ClientQuery { Query = Piece(c.Hostname) };
        yield return new ClientQuery { Query = c.Tags.Count > 0 ? Piece(c.Tags[0]) : "x" };
        yield return new ClientQuery { Query = Words[random.Next(Words.Length)] + " " + Words[random.Next(Words.Length)] };
        yield return new ClientQuery { Purpose = Piece(c.Purpose) };
        yield return new ClientQuery { Purpose = Piece(c.DisplayName) };
        var name = Any().DisplayName;
        yield return new ClientQuery { Names = [Cased(name[..Math.Max(1, name.Length / 2)]) + "*"] };
        yield return new ClientQuery { Names = ["*" + Cased(name[(name.Length / 2)..])] };
        yield return new ClientQuery { Names = [Cased(name)] };
        yield return new ClientQuery { Names = [Fullwidth(name) + "\u200b"] }; // a look-alike finds the name (ClientNameKey)
        yield return new ClientQuery { Names = [name.Length > 2 ? name[..1] + "?" + name[2..] : name, "*" + Piece(name) + "*"] };
        var other = Any();
        yield return new ClientQuery { Names = [other.Uuid[..6].ToUpperInvariant() + "*"], IncludeRemoved = true };
        yield return new ClientQuery { Ids = [other.Uuid.ToUpperInvariant(), Any().Uuid], IncludeRemoved = true };
        yield return new ClientQuery { Ids = [other.Uuid], Tags = [TagPool[0]] };
    }

    /// <summary>The name in fullwidth forms (U+FF01–U+FF5E), as a look-alike typed on an East Asian keyboard.</summary>
    private static string Fullwidth(string name) =>
        string.Concat(name.Select(ch => ch is > ' ' and <= '~' ? (char)(ch + 0xFEE0) : ch));

    private static ClientRecord RandomClient(Random random, int i)
    {
        string Word() => Words[random.Next(Words.Length)];
        var name = random.Next(4) switch
        {
            0 => $"{Word()}-{i:0000}",
            1 => $"{Word().ToUpperInvariant()}_{Word()}-{i}",
            2 => $"Ñode {Word()} {i}",
            _ => $"{Word()}{i % 37}",
        };
        return new ClientRecord
        {
            Uuid = new Guid(random.Next(), (short)random.Next(), (short)random.Next(), BitConverter.GetBytes(random.NextInt64())).ToString(),
            DisplayName = name,
            Purpose = random.Next(5) == 0 ? null : $"{Word()} for {Word()} {random.Next(100)}",
            Hostname = random.Next(6) == 0 ? null : $"{Word()}-{i}.Fleet.internal",
            Tags = TagPool.Where(_ => random.Next(4) == 0).ToArray(),
            Capabilities = CapabilityPool.Where(_ => random.Next(3) == 0).ToArray(),
            FirstSeen = DateTimeOffset.UnixEpoch,
            LastSeen = DateTimeOffset.UnixEpoch,
            Online = random.Next(4) == 0,
            RemovedAt = random.Next(20) == 0 ? DateTimeOffset.UnixEpoch : null,
        };
    }

    private static ClientRecord Mutate(Random random, ClientRecord old) => random.Next(6) switch
    {
        0 => old with { DisplayName = Words[random.Next(Words.Length)] + "-renamed-" + random.Next(1000) }, // moves in the order
        1 => old with { Tags = TagPool.Where(_ => random.Next(3) == 0).ToArray() },
        2 => old with { Purpose = random.Next(3) == 0 ? null : "changed " + Words[random.Next(Words.Length)] },
        3 => old with { Online = !old.Online },
        4 => old with { RemovedAt = old.RemovedAt is null ? DateTimeOffset.UnixEpoch : null },
        _ => old with { Capabilities = CapabilityPool.Where(_ => random.Next(2) == 0).ToArray(), Hostname = "moved-" + random.Next(100) },
    };

    private static ClientRecord Client(string name, bool online = false) => new()
    {
        Uuid = Guid.NewGuid().ToString(),
        DisplayName = name,
        FirstSeen = DateTimeOffset.UnixEpoch,
        LastSeen = DateTimeOffset.UnixEpoch,
        Online = online,
        TunnelPort = online ? 40000 : null,
        SessionId = online ? 1 : null,
    };

    private static string Describe(IEnumerable<ClientRecord> clients) =>
        string.Join("\n", clients.Select(c => $"{c.DisplayName}|{c.Uuid}|{c.Online}|{string.Join(",", c.Tags)}|{c.Purpose}"));
}
