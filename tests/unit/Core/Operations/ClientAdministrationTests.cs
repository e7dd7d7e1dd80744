using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>Search semantics of Get-EphClient, edits, removal and history lookups over the SQLite registry.</summary>
public sealed class ClientAdministrationTests : IDisposable
{
    private readonly TempData _temp = new();
    private readonly SqliteRegistry _r;
    private readonly Dictionary<string, ClientRecord> _c = [];

    public ClientAdministrationTests()
    {
        _r = SqliteRegistry.Open(_temp.Dir);
        _r.SetSetting(SqliteRegistry.HeartbeatSetting, "3600");
        Add(Keys.A, "web-01", "Frontend in Frankfurt", ["prod", "eu-west"], ["docker", "git"], online: true);
        Add(Keys.B, "web-02", "Frontend in Virginia", ["prod", "us-east"], ["docker"], online: false);
        Add(Keys.C, "db-01", "Billing database", ["staging", "eu-west"], ["git", "nvidia-gpu"], online: true);
    }

    public void Dispose()
    {
        _r.Dispose();
        _temp.Dispose();
    }

    private void Add(string fingerprint, string name, string purpose, string[] tags, string[] caps, bool online)
    {
        var client = Keys.Admit(_r, fingerprint, Keys.Identity(name: name, host: name + ".lan", tags: tags, caps: caps) with { Purpose = purpose });
        if (online)
        {
            var s = _r.OpenSession(client.Uuid, fingerprint, "gw", 40000 + _c.Count, new byte[32], 900 + _c.Count, 1);
            _r.MarkSessionOnline(s.Id);
        }

        _c[name] = client;
    }

    private static readonly OperatorContext Alice = new("alice", Surfaces.PowerShell);

    public static TheoryData<string, ClientQuery, string[], string[]> SearchTable => new()
    {
        // description, query, expected names (sorted), expected NotFound
        { "no filter lists all", new ClientQuery(), ["db-01", "web-01", "web-02"], [] },
        { "wildcard name", new ClientQuery { Names = ["web-*"] }, ["web-01", "web-02"], [] },
        { "wildcard matching nothing is silent", new ClientQuery { Names = ["nope-*"] }, [], [] },
        { "literal name matching nothing is NotFound", new ClientQuery { Names = ["nope", "web-01"] }, ["web-01"], ["nope"] },
        { "name is case-insensitive", new ClientQuery { Names = ["WEB-02"] }, ["web-02"], [] },
        { "id matching nothing is NotFound", new ClientQuery { Ids = ["00000000-0000-0000-0000-00000000dead"] }, [], ["00000000-0000-0000-0000-00000000dead"] },
        { "query in purpose, case-insensitive", new ClientQuery { Query = "FRANKFURT" }, ["web-01"], [] },
        { "query in hostname", new ClientQuery { Query = "db-01.lan" }, ["db-01"], [] },
        { "query in tags", new ClientQuery { Query = "us-EAST" }, ["web-02"], [] },
        { "query in display name", new ClientQuery { Query = "eb-0" }, ["web-01", "web-02"], [] },
        { "purpose filter", new ClientQuery { Purpose = "frontend" }, ["web-01", "web-02"], [] },
        { "one tag", new ClientQuery { Tags = ["eu-west"] }, ["db-01", "web-01"], [] },
        { "tags: ALL must match", new ClientQuery { Tags = ["prod", "EU-WEST"] }, ["web-01"], [] },
        { "tags matching nothing", new ClientQuery { Tags = ["prod", "staging"] }, [], [] },
        { "capabilities: ALL must match", new ClientQuery { Capabilities = ["docker", "git"] }, ["web-01"], [] },
        { "capability", new ClientQuery { Capabilities = ["nvidia-gpu"] }, ["db-01"], [] },
        { "online only", new ClientQuery { OnlineOnly = true }, ["db-01", "web-01"], [] },
        { "filters intersect", new ClientQuery { Tags = ["prod"], Capabilities = ["docker"], OnlineOnly = true, Query = "front" }, ["web-01"], [] },
        { "name and filter intersect", new ClientQuery { Names = ["web-*"], Tags = ["us-east"] }, ["web-02"], [] },
        { "existing literal filtered out is not NotFound", new ClientQuery { Names = ["web-02"], OnlineOnly = true }, [], [] },
        { "unknown literal with a filter is NotFound", new ClientQuery { Names = ["ghost"], Tags = ["prod"] }, [], ["ghost"] },
    };

    [Theory]
    [MemberData(nameof(SearchTable))]
    public void Search_Semantics(string description, ClientQuery query, string[] expected, string[] notFound)
    {
        var lookup = ClientQueries.Search(_r, query);

        Assert.True(expected.SequenceEqual(lookup.Clients.Select(c => c.DisplayName)), $"{description}: got [{string.Join(", ", lookup.Clients.Select(c => c.DisplayName))}]");
        Assert.Equal(notFound, lookup.NotFound);
    }

    [Fact]
    public void Search_ById_FindsExactUuid_AndHidesRemoved()
    {
        var id = _c["db-01"].Uuid;
        Assert.Equal(["db-01"], ClientQueries.Search(_r, new ClientQuery { Ids = [id] }).Clients.Select(c => c.DisplayName));

        ClientAdministration.Remove(_r, id, Alice, _ => true);

        var lookup = ClientQueries.Search(_r, new ClientQuery { Ids = [id] });
        Assert.Empty(lookup.Clients);
        Assert.Equal([id], lookup.NotFound);
    }

    [Fact]
    public void Set_RecordsTheOperatorAndSurface()
    {
        var updated = ClientAdministration.Set(_r, _c["web-02"].Uuid, new ClientUpdate { AddTags = ["eu-west"], RateLimitRpm = 120 }, Alice);

        Assert.Equal(["prod", "us-east", "eu-west"], updated.Tags);
        Assert.Equal(120, updated.RateLimitRpm);
        var entry = _r.QueryHistory(new HistoryQuery { Operations = ["update_client"] })[0];
        Assert.Equal(("alice", "pwsh", "succeeded"), (entry.Actor, entry.Surface, entry.Status));
    }

    [Fact]
    public void Remove_SignalsTheGateOfTheOnlineSession_AndDescribesIt()
    {
        var web = _c["web-01"];
        var signalled = new List<int>();

        var report = ClientAdministration.Remove(_r, web.Uuid, new OperatorContext("bob", Surfaces.Cli), pid => { signalled.Add(pid); return true; });

        Assert.Equal([900], signalled);
        Assert.Equal([900], report.SignalledGatePids);
        Assert.Equal([Keys.A], report.Outcome.RevokedFingerprints);
        Assert.StartsWith("Removed client 'web-01'", ClientAdministration.Describe(report));
        Assert.Contains("disconnected 1 session(s)", ClientAdministration.Describe(report));
        Assert.DoesNotContain(web.Uuid, ClientQueries.Search(_r, new ClientQuery()).Clients.Select(c => c.Uuid));
        Assert.Equal(("remove_client", "bob", "cli"), _r.QueryHistory(new HistoryQuery { Uuids = [web.Uuid] }).Select(h => (h.Operation, h.Actor, h.Surface)).First());

        var again = ClientAdministration.Remove(_r, web.Uuid, Alice, _ => throw new InvalidOperationException("nothing to signal"));
        Assert.EndsWith("was already removed.", ClientAdministration.Describe(again));
    }

    [Fact]
    public void Approve_WithoutMismatch_AnswersHadNoKeyMismatch()
    {
        var id = _c["web-01"].Uuid;

        var outcome = KeyAdministration.Approve(_r, id, Alice);

        Assert.True(outcome.AlreadyApproved);
        Assert.Equal($"Client {id} had no key mismatch: its key {Keys.A} is already approved; nothing changed.", KeyAdministration.Describe(outcome, id));
        Assert.Equal($"Key {Keys.A} was already approved; nothing changed.", KeyAdministration.Describe(KeyAdministration.Approve(_r, Keys.A, Alice), Keys.A));
        Assert.Equal(("accept_key", "unchanged", "pwsh"), _r.QueryHistory(new HistoryQuery()).Select(h => (h.Operation, h.Status, h.Surface)).First());
    }

    [Fact]
    public void Approve_Mismatch_NeedsTheFingerprint_ThenRepinsAndSaysWhichKeyIsTrusted()
    {
        const string newKey = "SHA256:DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD";
        var id = _c["web-02"].Uuid;
        _r.RecordPendingKey(newKey, null, Keys.Identity(claimed: id));
        Assert.True(KeyAdministration.IsClaimed(_r, id));

        var ex = Assert.Throws<KeyDecisionException>(() => KeyAdministration.Approve(_r, id, Alice));
        Assert.Contains(Keys.B, ex.Message);
        Assert.Contains(newKey, ex.Message);

        var outcome = KeyAdministration.Approve(_r, newKey, Alice);

        Assert.True(outcome.ResolvedMismatch);
        Assert.Equal(Keys.B, outcome.ReplacedFingerprint);
        Assert.Contains("is now pinned to it", KeyAdministration.Describe(outcome, newKey));
        Assert.Equal(KeyStatus.Revoked, _r.GetKey(Keys.B)!.Status);
        Assert.False(KeyAdministration.IsClaimed(_r, id));
    }

    [Fact]
    public async Task AGatePid_IsSignalledOnlyWhileItIsStillThatSessionsGate()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // A stand-in gate: `sleep` copied under eph-gate's name, so the process table shows an eph-gate.
        var dir = Directory.CreateTempSubdirectory("eph-gatepid-").FullName;
        var fakeGate = Path.Combine(dir, "eph-gate");
        File.Copy("/bin/sleep", fakeGate);
        File.SetUnixFileMode(fakeGate, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        using var gate = System.Diagnostics.Process.Start(fakeGate, "30");
        using var other = System.Diagnostics.Process.Start("/bin/sleep", "30");
        try
        {
            SessionRecord Session(int pid, DateTimeOffset connectedAt, string? host = null) => new()
            {
                Id = 1, Uuid = "u", Fingerprint = Keys.A, Host = host ?? Environment.MachineName, TunnelPort = 1, Secret = new byte[32],
                GatePid = pid, ConnectedAt = connectedAt, LastHeartbeat = connectedAt,
            };

            var later = DateTimeOffset.UtcNow.AddSeconds(1);
            Assert.True(KeyAdministration.IsGateOf(Session(gate.Id, later), gate.Id));
            // The pid now belongs to something else (not a gate), or to a gate started after the session: a reused pid.
            Assert.False(KeyAdministration.IsGateOf(Session(other.Id, later), other.Id));
            Assert.False(KeyAdministration.IsGateOf(Session(gate.Id, DateTimeOffset.UtcNow.AddMinutes(-10)), gate.Id));
            // Another server host's pid means nothing here.
            Assert.False(KeyAdministration.IsGateOf(Session(gate.Id, later, host: "hub-b.example"), gate.Id));

            // Revoke-time signalling with the real process table leaves the impostor alive.
            Assert.Empty(KeyAdministration.SignalGates([Session(other.Id, later)]));
            Assert.False(other.HasExited);
            Assert.Equal([gate.Id], KeyAdministration.SignalGates([Session(gate.Id, later)]));
            Assert.True(gate.WaitForExit(10_000));
        }
        finally
        {
            foreach (var p in new[] { gate, other })
            {
                if (!p.HasExited)
                {
                    p.Kill();
                }
            }

            await Task.Yield();
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void Revoke_WithContext_RecordsSurface_AndSignalsGate()
    {
        var signalled = new List<int>();
        var report = KeyAdministration.Revoke(_r, _c["db-01"].Uuid, new OperatorContext("carol", Surfaces.Mcp), pid => { signalled.Add(pid); return true; });

        Assert.Equal(Keys.C, report.Outcome.Fingerprint);
        Assert.Equal([902], signalled);
        Assert.Equal(("revoke_key", "carol", "mcp"), _r.QueryHistory(new HistoryQuery()).Select(h => (h.Operation, h.Actor, h.Surface)).First());
    }

    [Fact]
    public void Single_ByUuidOrUniqueName_RefusesAmbiguousAndUnknown()
    {
        Assert.Equal("db-01", ClientQueries.Single(_r, _c["db-01"].Uuid).DisplayName);
        Assert.Equal("web-02", ClientQueries.Single(_r, "WEB-02").DisplayName);
        var ambiguous = Assert.Throws<InvalidOperationException>(() => ClientQueries.Single(_r, "web-*"));
        Assert.Contains("matches 2 clients", ambiguous.Message);
        Assert.Throws<RegistryNotFoundException>(() => ClientQueries.Single(_r, "ghost"));
    }

    [Fact]
    public void History_ResolvesNamesAndRemovedClients_KeepsUnknownUuids()
    {
        var db = _c["db-01"].Uuid;
        ClientAdministration.Remove(_r, db, Alice, _ => true);
        const string gone = "5f0e1d2c-0000-4000-8000-000000000001";

        var resolved = ClientHistory.ResolveClients(_r, ["db-01", "web-*", gone, "ghost"]);

        Assert.Equal(new[] { db, _c["web-01"].Uuid, _c["web-02"].Uuid, gone }.Order(), resolved.Uuids.Order());
        Assert.Equal(["ghost"], resolved.NotFound);
        Assert.Equal("db-01", ClientHistory.DisplayNames(_r, [db, null, gone])[db]);
    }

    [Theory]
    [InlineData("90m", -90 * 60)]
    [InlineData("12h", -12 * 3600)]
    [InlineData("7d", -7 * 86400)]
    [InlineData("30s", -30)]
    public void ParseTime_Ages(string text, int seconds)
    {
        var now = new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(now.AddSeconds(seconds), ClientHistory.ParseTime(text, now));
    }

    [Fact]
    public void ParseTime_IsoWithoutOffsetIsUtc_AndGarbageIsAFormatError()
    {
        Assert.Equal(new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero), ClientHistory.ParseTime("2025-03-04T05:06:07", DateTimeOffset.UnixEpoch));
        Assert.Equal(new DateTimeOffset(2025, 3, 4, 3, 6, 7, TimeSpan.Zero), ClientHistory.ParseTime("2025-03-04T05:06:07+02:00", DateTimeOffset.UnixEpoch));
        var ex = Assert.Throws<FormatException>(() => ClientHistory.ParseTime("yesterday", DateTimeOffset.UnixEpoch));
        Assert.Contains("90m", ex.Message);
        Assert.Throws<FormatException>(() => ClientHistory.ParseTime("5w", DateTimeOffset.UnixEpoch));
    }
}
