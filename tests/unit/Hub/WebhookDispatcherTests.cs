using EtPhoneHome.Core.Logging;
using EtPhoneHome.Hub;
using System.Net;
using System.Text.Json.Nodes;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Webhooks;

public sealed class WebhookSignatureTests
{
    // The vector documented in docs/webhooks.md; computed independently with Python's hmac module.
    private const string Secret = "whsec_etphonehome_test";
    private const long Timestamp = 1700000000;
    private const string Body = """{"event":"webhook.test","delivery_id":"00000000-0000-0000-0000-000000000001"}""";
    private const string Expected = "sha256=aa9f660f778f898bcf8eb188888f37436b0ed5441bcefcb14023fcd802597528";

    [Fact]
    public void Sign_MatchesTheDocumentedVector()
        => Assert.Equal(Expected, WebhookSignature.Sign(Secret, Timestamp, Body));

    [Fact]
    public void Verify_AcceptsTheVector_AndRejectsTamperingReplaysAndWrongSecrets()
    {
        var now = DateTimeOffset.FromUnixTimeSeconds(Timestamp + 30);
        var tolerance = TimeSpan.FromMinutes(5);
        Assert.True(WebhookSignature.Verify(Secret, "1700000000", Body, Expected, now, tolerance));
        Assert.True(WebhookSignature.Verify(Secret, "1700000000", Body, Expected.ToUpperInvariant().Replace("SHA256=", "sha256=", StringComparison.Ordinal), now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, "1700000000", Body + " ", Expected, now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, "1700000001", Body, Expected, now, tolerance));
        Assert.False(WebhookSignature.Verify("other", "1700000000", Body, Expected, now, tolerance));
        Assert.False(WebhookSignature.Verify(Secret, "1700000000", Body, Expected, now.AddMinutes(10), tolerance));
        Assert.False(WebhookSignature.Verify(Secret, "not-a-number", Body, Expected, now, tolerance));
    }

    [Fact]
    public void RetrySchedule_DoublesFromFiveSeconds_CapsAtTenMinutes_AndEndsAfterTheLastAttempt()
    {
        var options = new WebhookOptions();
        var waits = Enumerable.Range(1, 10).Select(n => options.RetryDelay(n)?.TotalSeconds).ToArray();
        Assert.Equal(new double?[] { 5, 10, 20, 40, 80, 160, 320, 600, 600, null }, waits);
    }

    [Fact]
    public void Options_FromEnvironment_ReadsOverrides_AndNamesABadVariable()
    {
        var env = new Dictionary<string, string> { [WebhookOptions.MaxAttemptsVariable] = "3", [WebhookOptions.BackoffVariable] = "0.2" };
        var options = WebhookOptions.FromEnvironment(k => env.GetValueOrDefault(k));
        Assert.Equal(3, options.MaxAttempts);
        Assert.Equal(TimeSpan.FromMilliseconds(200), options.InitialBackoff);

        env[WebhookOptions.MaxAttemptsVariable] = "0";
        var ex = Assert.Throws<ArgumentException>(() => WebhookOptions.FromEnvironment(k => env.GetValueOrDefault(k)));
        Assert.Contains(WebhookOptions.MaxAttemptsVariable, ex.Message);
        Assert.Contains("between 1 and 100", ex.Message);
    }

    [Theory]
    [InlineData("https://user:pw@hooks.example/in?token=abc", "https://hooks.example/in?…")]
    [InlineData("http://127.0.0.1:8080/hook", "http://127.0.0.1:8080/hook")]
    public void Redact_RemovesUserInfoAndQuery(string url, string expected)
        => Assert.Equal(expected, WebhookConfiguration.Redact(url));

    [Theory]
    [InlineData("ftp://hooks.example/in")]
    [InlineData("file:///etc/passwd")]
    [InlineData("hooks.example/in")]
    [InlineData("")]
    public void OnlyHttpAndHttpsUrls_AreDestinations(string url)
        => Assert.False(WebhookConfiguration.IsValidUrl(url, out _));
}

public sealed class WebhookDispatcherTests : IDisposable
{
    private const string Secret = "s3cret-for-tests";
    private const string GlobalUrl = "http://receiver.test/global";
    private readonly TempData _data = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 6, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly SqliteRegistry _registry;
    private readonly FakeReceiver _receiver = new();
    private readonly Dictionary<string, string> _env = new() { [WebhookConfiguration.UrlEnvironmentVariable] = GlobalUrl, [WebhookConfiguration.SecretEnvironmentVariable] = Secret };
    private readonly List<string> _log = [];

    public WebhookDispatcherTests()
    {
        _registry = SqliteRegistry.Open(_data.Dir, _time);
    }

    private WebhookDispatcher Dispatcher(WebhookOptions? options = null, SqliteRegistry? registry = null) =>
        new(registry ?? _registry, options ?? new WebhookOptions { MaxAttempts = 3 }, new DelegateLog(e => { lock (_log) { _log.Add(e.Message); } }), _time, k => _env.GetValueOrDefault(k), _receiver);

    private ClientRecord Client(string fp = Keys.A, string host = "web-01") => Keys.Admit(_registry, fp, Keys.Identity(host, name: host));

    [Fact]
    public void RecordEvent_StoresTheFullBody_WithTheClientSnapshot()
    {
        var client = Client();
        var row = _registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid, new JsonObject { ["reason"] = "3 failed checks" });

        var body = JsonNode.Parse(row.Payload)!.AsObject();
        Assert.Equal("client.unhealthy", (string?)body["event"]);
        Assert.Equal("2025-06-01T12:00:00Z", (string?)body["timestamp"]);
        Assert.Equal(row.DeliveryId, (string?)body["delivery_id"]);
        Assert.True(Guid.TryParse(row.DeliveryId, out _));
        Assert.Equal(client.Uuid, (string?)body["client"]!["uuid"]);
        Assert.Equal("web-01", (string?)body["client"]!["display_name"]);
        Assert.Equal("web-01", (string?)body["client"]!["hostname"]);
        Assert.Equal("3 failed checks", (string?)body["data"]!["reason"]);
        Assert.Equal(WebhookDeliveryStatus.Pending, row.Status);
    }

    [Fact]
    public void RegistryEvents_CarryTheEnvelope_ConnectedWithPlatform()
    {
        var client = Client();
        var session = _registry.OpenSession(client.Uuid, Keys.A, "gw", 40001, new byte[32], null, null);
        _registry.MarkSessionOnline(session.Id);

        var connected = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["client.connected"] }).Single();
        var body = JsonNode.Parse(connected.Payload)!;
        Assert.Equal("linux-x64", (string?)body["data"]!["platform"]);
        Assert.Equal(40001, (int?)body["data"]!["tunnel_port"]);
        Assert.Equal("web-01", (string?)body["client"]!["hostname"]);
        var pending = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["client.pend*"] }).Single();
        Assert.Equal("client.pending", pending.Event);
    }

    [Fact]
    public async Task Dispatcher_DeliversSignedEvents_InOrder_WithTheHeaders()
    {
        var client = Client();
        for (var i = 0; i < 3; i++)
        {
            _registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid, new JsonObject { ["n"] = i });
        }

        await using var dispatcher = Dispatcher();
        while ((await dispatcher.RunOnceAsync()).Sent > 0)
        {
        }

        var received = _receiver.Requests;
        Assert.Equal(["client.pending", "client.unhealthy", "client.unhealthy", "client.unhealthy"], received.Select(r => r.Event));
        Assert.Equal([0, 1, 2], received.Skip(1).Select(r => r.Json.GetProperty("data").GetProperty("n").GetInt32()));
        foreach (var r in received)
        {
            Assert.Equal("POST", r.Method);
            Assert.Equal(GlobalUrl, r.Url);
            Assert.Equal("application/json", r.ContentType);
            Assert.Equal(r.Event, r.Header(WebhookSignature.EventHeader));
            Assert.Equal(r.Json.GetProperty("delivery_id").GetString(), r.Header(WebhookSignature.DeliveryHeader));
            Assert.Equal(_time.GetUtcNow().ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), r.Header(WebhookSignature.TimestampHeader));
            Assert.True(WebhookSignature.Verify(Secret, r.Header(WebhookSignature.TimestampHeader), r.Body, r.Header(WebhookSignature.SignatureHeader), _time.GetUtcNow(), TimeSpan.FromMinutes(5)));
        }

        Assert.All(_registry.ListWebhookDeliveries(new WebhookDeliveryQuery()), d => Assert.Equal(WebhookDeliveryStatus.Delivered, d.Status));
    }

    [Fact]
    public async Task FailingReceiver_IsRetriedOnTheBackoffSchedule_LaterEventsWait_ThenFailed_AndResendDelivers()
    {
        var client = Client();
        var second = _registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid);
        _receiver.Answer = _ => HttpStatusCode.InternalServerError;
        await using var dispatcher = Dispatcher(new WebhookOptions { MaxAttempts = 3, InitialBackoff = TimeSpan.FromSeconds(5) });
        var first = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["client.pending"] }).Single();

        var pass = await dispatcher.RunOnceAsync();            // attempt 1 of the first event
        Assert.Equal((0, TimeSpan.FromSeconds(5)), (pass.Sent, pass.NextDueIn));   // the loop wakes for the retry
        _time.Advance(TimeSpan.FromSeconds(4.9));
        await dispatcher.RunOnceAsync();                       // not due yet: nothing sent
        Assert.Single(_receiver.Requests);
        var waiting = _registry.GetWebhookDelivery(first.Id.ToString(System.Globalization.CultureInfo.InvariantCulture))!;
        Assert.Equal((WebhookDeliveryStatus.Pending, 1, 500), (waiting.Status, waiting.Attempts, waiting.LastStatusCode));
        Assert.Equal(_time.GetUtcNow().AddSeconds(0.1), waiting.NextAttemptAt);

        _time.Advance(TimeSpan.FromSeconds(0.1));
        await dispatcher.RunOnceAsync();                       // attempt 2, next in 10 s
        _time.Advance(TimeSpan.FromSeconds(9.9));
        await dispatcher.RunOnceAsync();
        Assert.Equal(2, _receiver.Requests.Count);
        _time.Advance(TimeSpan.FromSeconds(0.1));
        await dispatcher.RunOnceAsync();                       // attempt 3: the last → failed

        // The later event of the same destination waited behind the failing one the whole time.
        Assert.All(_receiver.Requests, r => Assert.Equal("client.pending", r.Event));
        var failed = _registry.GetWebhookDelivery(first.DeliveryId)!;
        Assert.Equal((WebhookDeliveryStatus.Failed, 3), (failed.Status, failed.Attempts));
        Assert.Equal("HTTP 500 Internal Server Error", failed.LastError);
        var log = _registry.ListWebhookAttempts([first.Id]);
        Assert.Equal([1, 2, 3], log.Select(a => a.Attempt));
        Assert.All(log, a => Assert.Equal((500, GlobalUrl), (a.StatusCode!.Value, a.Url)));
        Assert.DoesNotContain(log, a => a.Error!.Contains("receiver-private-body", StringComparison.Ordinal));
        Assert.Contains(_log, l => l.Contains("marked failed", StringComparison.Ordinal));
        Assert.DoesNotContain(_log, l => l.Contains(Secret, StringComparison.Ordinal));

        // Once the first failed, the second goes ahead.
        _receiver.Answer = _ => HttpStatusCode.NoContent;
        await dispatcher.RunOnceAsync();
        Assert.Equal(WebhookDeliveryStatus.Delivered, _registry.GetWebhookDelivery(second.DeliveryId)!.Status);

        var requeued = _registry.ResendWebhookDelivery(first.DeliveryId, "tester");
        Assert.Equal((WebhookDeliveryStatus.Pending, 0), (requeued.Status, requeued.Attempts));
        await dispatcher.RunOnceAsync();
        var delivered = _registry.GetWebhookDelivery(first.DeliveryId)!;
        Assert.Equal(WebhookDeliveryStatus.Delivered, delivered.Status);
        Assert.Equal(first.DeliveryId, _receiver.Requests[^1].Header(WebhookSignature.DeliveryHeader));
        Assert.Equal(4, _registry.ListWebhookAttempts([first.Id]).Count);
        Assert.Contains(_registry.ListAudit(), a => a.Operation == "resend_webhook" && a.Actor == "tester");
    }

    [Fact]
    public void Resend_OfAQueuedEvent_IsRefused_AndAnUnknownIdIsNotFound()
    {
        var row = _registry.RecordEvent(WebhookEvents.ClientUnhealthy, null);
        Assert.Throws<InvalidOperationException>(() => _registry.ResendWebhookDelivery(row.DeliveryId, "t"));
        Assert.Throws<RegistryNotFoundException>(() => _registry.ResendWebhookDelivery("999999", "t"));
    }

    [Fact]
    public async Task ClientUrl_OverridesTheGlobalOne_AndClearingItFallsBack()
    {
        var client = Client();
        _registry.UpdateClient(client.Uuid, new ClientUpdate { WebhookUrl = "http://receiver.test/own?token=x" }, "tester");
        _registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid, new JsonObject { ["n"] = 1 });
        await using var dispatcher = Dispatcher();
        while ((await dispatcher.RunOnceAsync()).Sent > 0)
        {
        }

        _registry.UpdateClient(client.Uuid, new ClientUpdate { WebhookUrl = "" }, "tester");
        _registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid, new JsonObject { ["n"] = 2 });
        while ((await dispatcher.RunOnceAsync()).Sent > 0)
        {
        }

        var unhealthy = _receiver.Requests.Where(r => r.Event == "client.unhealthy").ToList();
        Assert.Equal(["http://receiver.test/own?token=x", GlobalUrl], unhealthy.Select(r => r.Url));
        // The log keeps the destination without its query string.
        var own = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["client.unhealthy"] }).Last();
        Assert.Equal("http://receiver.test/own?…", own.Url);
    }

    [Fact]
    public async Task WithoutAnyUrl_EventsAreMarkedNoDestination_AndKept()
    {
        _env.Remove(WebhookConfiguration.UrlEnvironmentVariable);
        Client();
        await using var dispatcher = Dispatcher();
        var pass = await dispatcher.RunOnceAsync();

        Assert.Equal(1, pass.NoDestination);
        Assert.Empty(_receiver.Requests);
        var row = Assert.Single(_registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Status = WebhookDeliveryStatus.NoDestination }));
        Assert.Equal("client.pending", row.Event);

        // Configured later, the kept event can be sent again.
        _registry.SetSetting(WebhookConfiguration.UrlSetting, "http://receiver.test/from-setting");
        _registry.ResendWebhookDelivery(row.DeliveryId, "tester");
        await dispatcher.RunOnceAsync();
        Assert.Equal("http://receiver.test/from-setting", Assert.Single(_receiver.Requests).Url);
    }

    [Fact]
    public async Task WithoutASecret_NothingIsSentUnsigned_AndEventsStayPending()
    {
        _env.Remove(WebhookConfiguration.SecretEnvironmentVariable);
        Client();
        await using var dispatcher = Dispatcher();
        await dispatcher.RunOnceAsync();
        await dispatcher.RunOnceAsync();

        Assert.Empty(_receiver.Requests);
        Assert.Equal(WebhookDeliveryStatus.Pending, Assert.Single(_registry.ListWebhookDeliveries(new WebhookDeliveryQuery())).Status);
        Assert.Single(_log, l => l.Contains("no webhook secret", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TwoDispatchers_OnOneRegistry_OnlyOneSends_UntilItStops()
    {
        Client();
        using var other = SqliteRegistry.Open(_data.Dir, _time);
        var a = Dispatcher();
        await using var b = Dispatcher(registry: other);

        Assert.True((await a.RunOnceAsync()).IsLeader);
        Assert.False((await b.RunOnceAsync()).IsLeader);
        Assert.Single(_receiver.Requests);

        await a.DisposeAsync();                 // releases the lease
        _registry.RecordEvent(WebhookEvents.ClientUnhealthy, null);
        Assert.True((await b.RunOnceAsync()).IsLeader);
        Assert.Equal(2, _receiver.Requests.Count);
    }

    [Fact]
    public async Task ExpiredLease_IsTakenOver()
    {
        using var other = SqliteRegistry.Open(_data.Dir, _time);
        Assert.True(_registry.TryAcquireWebhookLease("hub-a", TimeSpan.FromSeconds(15)));
        Assert.False(other.TryAcquireWebhookLease("hub-b", TimeSpan.FromSeconds(15)));
        _time.Advance(TimeSpan.FromSeconds(15));
        Assert.True(other.TryAcquireWebhookLease("hub-b", TimeSpan.FromSeconds(15)));
        Assert.False(_registry.TryAcquireWebhookLease("hub-a", TimeSpan.FromSeconds(15)));
        await Task.CompletedTask;
    }

    [Fact]
    public async Task TestDelivery_IsSigned_AndReportsStatus_ButIsNotQueued()
    {
        var client = Client();
        var result = await WebhookAdministration.TestAsync(_registry, null, _registry.GetClient(client.Uuid), "tester",
            environment: k => _env.GetValueOrDefault(k), handler: _receiver);

        Assert.True(result.Success);
        Assert.Equal(200, result.StatusCode);
        var request = Assert.Single(_receiver.Requests);
        Assert.Equal("webhook.test", request.Event);
        Assert.Equal(client.Uuid, request.Json.GetProperty("client").GetProperty("uuid").GetString());
        Assert.True(WebhookSignature.Verify(Secret, request.Header(WebhookSignature.TimestampHeader), request.Body, request.Header(WebhookSignature.SignatureHeader), DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)));
        Assert.DoesNotContain(_registry.ListWebhookDeliveries(new WebhookDeliveryQuery()), d => d.Event == "webhook.test");
    }

    [Fact]
    public async Task TestDelivery_WithoutUrlOrSecret_SaysWhatToConfigure()
    {
        var none = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            WebhookAdministration.TestAsync(_registry, null, null, "t", environment: _ => null, handler: _receiver));
        Assert.Contains(WebhookConfiguration.UrlEnvironmentVariable, none.Message);
        var noSecret = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            WebhookAdministration.TestAsync(_registry, "http://receiver.test/x", null, "t", environment: _ => null, handler: _receiver));
        Assert.Contains(WebhookConfiguration.SecretEnvironmentVariable, noSecret.Message);
        await Assert.ThrowsAsync<ArgumentException>(() =>
            WebhookAdministration.TestAsync(_registry, "ftp://receiver.test/x", null, "t", environment: k => _env.GetValueOrDefault(k), handler: _receiver));
        Assert.Empty(_receiver.Requests);
    }

    [Fact]
    public void OperationLease_WritesCommandExecuted_AndFileAccessed_WithTheHistoryEntry()
    {
        var client = Client();
        var guard = new OperationGuard(_registry, new OperatorContext("alice", Surfaces.PowerShell));
        using (var lease = guard.Begin(client.Uuid, "run_command", "systemctl restart app"))
        {
            lease.Complete(OperationStatus.Failed, "exit 3", exitCode: 3);
        }

        using (var lease = guard.Begin(client.Uuid, "read_file", "/etc/app.conf"))
        {
            lease.Complete(OperationStatus.Succeeded, "120 bytes");
        }

        using (var lease = guard.Begin(client.Uuid, "update_client", "tags"))
        {
            lease.Complete(OperationStatus.Succeeded);
        }

        var events = _registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Uuids = [client.Uuid], Events = ["command_executed", "file_accessed"] });
        var command = JsonNode.Parse(events.Single(e => e.Event == "command_executed").Payload)!["data"]!;
        Assert.Equal(("systemctl restart app", "failed", 3, "alice", "pwsh"),
            ((string?)command["cmd"], (string?)command["status"], (int?)command["exit_code"], (string?)command["actor"], (string?)command["surface"]));
        Assert.NotNull(command["duration_ms"]);
        var file = JsonNode.Parse(events.Single(e => e.Event == "file_accessed").Payload)!["data"]!;
        Assert.Equal(("read_file", "/etc/app.conf", "succeeded"), ((string?)file["operation"], (string?)file["path"], (string?)file["status"]));
        Assert.Equal(2, events.Count);
        Assert.Equal(3, _registry.ListAudit(client.Uuid).Count);
    }

    public void Dispose()
    {
        _registry.Dispose();
        _receiver.Dispose();
        _data.Dispose();
    }
}
