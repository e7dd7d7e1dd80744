using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Hub;
using EtPhoneHome.Tests.Unit.Registry;
using EtPhoneHome.Tests.Unit.Webhooks;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// What several hubs share through one registry (two registry instances on one database, as two hub hosts on one
/// PostgreSQL): one webhook sender at a time, the lease moving to another hub when its holder dies, every event
/// delivered once; and rate limits counted across hubs (window, requests in flight, warning counters).
/// </summary>
public abstract class SharedRegistryHubTests(TestEngine engine) : IAsyncLifetime
{
    private const string Secret = "s3cret-for-tests";
    private readonly TempData _data = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2026, 6, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly FakeReceiver _receiver = new();
    private readonly List<IAsyncDisposable> _owned = [];
    private readonly List<SqliteRegistry> _registries = [];

    public Task InitializeAsync() => Task.CompletedTask;

    // xUnit 2 disposes a test class through IAsyncLifetime (IAsyncDisposable alone is never called).
    public async Task DisposeAsync()
    {
        foreach (var d in _owned)
        {
            await d.DisposeAsync();
        }

        foreach (var r in _registries)
        {
            r.Dispose();
        }

        _data.Dispose();
    }

    private SqliteRegistry Hub()
    {
        var r = TestRegistries.Open(engine, _data.Dir, _time);
        _registries.Add(r);
        return r;
    }

    private WebhookDispatcher Dispatcher(SqliteRegistry registry)
    {
        var env = new Dictionary<string, string>
        {
            [WebhookConfiguration.UrlEnvironmentVariable] = "http://receiver.test/hook",
            [WebhookConfiguration.SecretEnvironmentVariable] = Secret,
        };
        var d = new WebhookDispatcher(registry, new WebhookOptions { MaxAttempts = 3 }, NullLog.Instance, _time, k => env.GetValueOrDefault(k), _receiver);
        _owned.Add(d);
        return d;
    }

    private static AuditEntry Refusal(string uuid) => new() { Operation = "run_command", Uuid = uuid, Actor = "tester", Surface = "cli", Status = "rate_limited" };

    private static AuditEntry Done(string uuid) => new() { Operation = "run_command", Uuid = uuid, Actor = "tester", Surface = "cli", Status = "succeeded" };

    [Fact]
    public async Task OneDispatcherDelivers_TheLeaseMovesWhenItsHolderDies_EveryEventOnce()
    {
        var hubA = Hub();
        var hubB = Hub();
        Keys.Admit(hubA, Keys.A, Keys.Identity("web-01", name: "web-01"));
        var a = Dispatcher(hubA);
        var b = Dispatcher(hubB);

        Assert.True((await a.RunOnceAsync()).IsLeader);
        Assert.False((await b.RunOnceAsync()).IsLeader);
        var afterA = _receiver.Requests.Count;
        Assert.True(afterA > 0);

        // Hub A dies holding the lease (no release): its events keep coming from other writers, nobody sends them
        // until the lease runs out; then hub B takes it and sends each of them once.
        hubB.RecordEvent(WebhookEvents.ClientUnhealthy, null);
        hubA.RecordEvent(WebhookEvents.ClientUnhealthy, null);
        Assert.False((await b.RunOnceAsync()).IsLeader);
        Assert.Equal(afterA, _receiver.Requests.Count);

        _time.Advance(new WebhookOptions().LeaseDuration);
        DispatchPass pass;
        do
        {
            pass = await b.RunOnceAsync();
            Assert.True(pass.IsLeader);
        }
        while (pass.Sent > 0);

        var ids = _receiver.Requests.Select(r => r.Header(WebhookSignature.DeliveryHeader)).ToList();
        Assert.Equal(afterA + 2, ids.Count);
        Assert.Equal(ids.Count, ids.Distinct().Count());
        Assert.False((await a.RunOnceAsync()).IsLeader);
    }

    [Fact]
    public void RequestsThroughTwoHubs_CountInOneWindow_AndRefusalsInOneCounter()
    {
        var hubA = Hub();
        var hubB = Hub();
        var client = Keys.Admit(hubA, Keys.A, Keys.Identity());
        var policy = new RateLimitPolicy { Rpm = 4, Concurrent = 100, FallbackMode = RateLimitMode.Enforce };

        var answers = Enumerable.Range(0, 7).Select(i =>
        {
            var hub = i % 2 == 0 ? hubA : hubB;
            var admission = hub.BeginRequest(client.Uuid, policy, Refusal(client.Uuid));
            if (admission.Allowed)
            {
                hub.CompleteRequest(admission.InflightId, Done(client.Uuid));
            }

            return admission;
        }).ToList();

        Assert.Equal([true, true, true, true, false, false, false], answers.Select(x => x.Allowed));
        var stats = hubB.GetRateLimitStats([client.Uuid], policy).Single();
        Assert.Equal(4, stats.RequestsPerMinute);
        Assert.Equal(3, stats.RpmWarnings);
        Assert.Equal(stats, hubA.GetRateLimitStats([client.Uuid], policy).Single());

        _time.Advance(RateLimitPolicy.Window);
        Assert.True(hubB.BeginRequest(client.Uuid, policy, Refusal(client.Uuid)).Allowed);
    }

    [Fact]
    public void RequestsInFlightOnOneHub_CountOnTheOther()
    {
        var hubA = Hub();
        var hubB = Hub();
        var client = Keys.Admit(hubA, Keys.A, Keys.Identity());
        var policy = new RateLimitPolicy { Rpm = 1000, Concurrent = 2, FallbackMode = RateLimitMode.Enforce };

        var first = hubA.BeginRequest(client.Uuid, policy, Refusal(client.Uuid));
        var second = hubA.BeginRequest(client.Uuid, policy, Refusal(client.Uuid));
        var third = hubB.BeginRequest(client.Uuid, policy, Refusal(client.Uuid));
        Assert.True(first.Allowed && second.Allowed);
        Assert.False(third.Allowed);
        Assert.True(third.OverConcurrent);

        hubA.CompleteRequest(first.InflightId, Done(client.Uuid));
        var fourth = hubB.BeginRequest(client.Uuid, policy, Refusal(client.Uuid));
        Assert.True(fourth.Allowed);
        Assert.Equal(2, fourth.Stats.CurrentConcurrent);
        Assert.Equal(1, hubA.GetRateLimitStats([client.Uuid], policy).Single().ConcurrentWarnings);
    }
}

public sealed class SharedRegistryHubTestsOnSqlite() : SharedRegistryHubTests(TestEngine.Sqlite);

public sealed class SharedRegistryHubTestsOnPostgres() : SharedRegistryHubTests(TestEngine.Postgres);
