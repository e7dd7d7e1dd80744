using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Sandbox;
using Xunit;

namespace EtPhoneHome.Tests.Integration;

/// <summary>
/// Webhooks end to end: a real hub (eph-server run) with real agents, delivering to an HTTP receiver on
/// 127.0.0.1. Each test has its own sandbox, since the hub is started with the receiver's URL.
/// </summary>
public sealed class WebhookIntegrationTests
{
    private const string Secret = "integration-webhook-secret";
    private static readonly TimeSpan Patience = SandboxFixture.Patience;

    private static async Task<SandboxEnvironment> StartAsync(Receiver receiver)
    {
        var env = await SandboxEnvironment.CreateAsync(new SandboxOptions
        {
            HeartbeatSeconds = 2,
            ReconnectInitialSeconds = 0.5,
            ReconnectMaxSeconds = 2,
            HubEnvironment = new Dictionary<string, string>
            {
                [WebhookConfiguration.UrlEnvironmentVariable] = receiver.Url,
                [WebhookConfiguration.SecretEnvironmentVariable] = Secret,
                [WebhookOptions.BackoffVariable] = "0.3",
                [WebhookOptions.MaxBackoffVariable] = "1",
                [WebhookOptions.MaxAttemptsVariable] = "100",
                [WebhookOptions.TimeoutVariable] = "5",
            },
        });
        await env.StartSshdAsync();
        await env.StartHubAsync();
        return env;
    }

    private static async Task<(SandboxAgent Agent, ClientRecord Client)> AddOnlineAgentAsync(SandboxEnvironment env, string name)
    {
        var agent = await env.AddAgentAsync(name);
        using (var registry = env.OpenRegistry())
        {
            var key = await SandboxEnvironment.WaitUntilAsync(
                () => registry.ListKeys(KeyStatus.Pending).FirstOrDefault(k => k.ClaimedDisplayName == name), Patience, $"a pending key from {name}");
            registry.ApproveKey(key.Fingerprint, "test");
        }

        var online = await env.WaitOnlineAsync([name], Patience);
        return (agent, online[0]);
    }

    /// <summary>Waits until every outbox event is delivered, then checks the receiver saw each of them, signed, in order.</summary>
    private static async Task<IReadOnlyList<Received>> AssertAllDeliveredInOrderAsync(SandboxEnvironment env, Receiver receiver, params string[] mustInclude)
    {
        using var registry = env.OpenRegistry();
        var events = await SandboxEnvironment.WaitUntilAsync(() =>
        {
            var all = registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Limit = 1000 }).OrderBy(d => d.Id).ToList();
            return all.All(d => d.Status == WebhookDeliveryStatus.Delivered) && mustInclude.All(m => all.Any(d => d.Event == m)) ? all : null;
        }, Patience, $"every event delivered, including {string.Join(", ", mustInclude)}");

        // At least once: the receiver may hold a duplicate, never a gap; first arrivals follow the outbox order.
        var accepted = receiver.Accepted;
        var firstArrivals = accepted.Select(r => r.DeliveryId).Distinct().ToList();
        Assert.Equal(events.Select(e => e.DeliveryId), firstArrivals);
        foreach (var r in accepted)
        {
            Assert.True(WebhookSignature.Verify(Secret, r.Timestamp, r.Body, r.Signature, DateTimeOffset.UtcNow, TimeSpan.FromMinutes(5)),
                $"bad signature on {r.Event} {r.DeliveryId}");
            Assert.Equal(r.Event, JsonDocument.Parse(r.Body).RootElement.GetProperty("event").GetString());
        }

        return accepted;
    }

    [Fact]
    public async Task ConnectAndDisconnect_ReachTheReceiverSignedAndInOrder_EvenAfterItAnswered500ForAWhile()
    {
        await using var receiver = new Receiver { Status = HttpStatusCode.InternalServerError };
        var env = await StartAsync(receiver);
        try
        {
            var (agent, client) = await AddOnlineAgentAsync(env, "hook-1");
            await SandboxEnvironment.WaitUntilAsync(() => receiver.All.Count >= 3 ? "" : null, Patience, "three refused attempts");
            Assert.Empty(receiver.Accepted);

            receiver.Status = HttpStatusCode.OK;
            await agent.StopAsync();
            await env.WaitOfflineAsync("hook-1", Patience);

            var accepted = await AssertAllDeliveredInOrderAsync(env, receiver, "client.pending", "client.connected", "client.disconnected");
            var ofClient = accepted.Where(r => r.ClientUuid == client.Uuid).Select(r => r.Event).Distinct().ToList();
            Assert.Equal(["client.connected", "client.disconnected"], ofClient);
            var connected = accepted.First(r => r.Event == "client.connected");
            var body = JsonDocument.Parse(connected.Body).RootElement;
            Assert.Equal("hook-1", body.GetProperty("client").GetProperty("display_name").GetString());
            Assert.True(body.GetProperty("data").GetProperty("tunnel_port").GetInt32() > 0);

            using var registry = env.OpenRegistry();
            var first = registry.ListWebhookDeliveries(new WebhookDeliveryQuery { Events = ["client.pending"] }).Single();
            var attempts = registry.ListWebhookAttempts([first.Id]);
            Assert.True(attempts.Count >= 3);
            Assert.Equal(500, attempts[0].StatusCode);
            Assert.Equal(200, attempts[^1].StatusCode);
        }
        finally
        {
            await env.DisposeAsync();
        }
    }

    [Fact]
    public async Task HubStoppedAndRestarted_LosesNothing()
    {
        await using var receiver = new Receiver();
        var env = await StartAsync(receiver);
        try
        {
            var (_, client) = await AddOnlineAgentAsync(env, "hook-2");
            await AssertAllDeliveredInOrderAsync(env, receiver, "client.pending", "client.connected");

            await env.StopHubAsync();
            using (var registry = env.OpenRegistry())
            {
                // Another process writes an event while no hub runs.
                registry.RecordEvent(WebhookEvents.ClientUnhealthy, client.Uuid, new System.Text.Json.Nodes.JsonObject { ["reason"] = "written while the hub was down" });
            }

            var before = receiver.Accepted.Count;
            await env.StartHubAsync();

            // The event written while no hub ran is delivered after the restart, in order with the rest. (Whether the
            // agent's session survived the restart depends on its heartbeat allowance: RestartTests cover that.)
            var accepted = await AssertAllDeliveredInOrderAsync(env, receiver, "client.unhealthy");
            var after = accepted.Skip(before).Select(r => r.Event).ToList();
            Assert.Contains("client.unhealthy", after);
        }
        finally
        {
            await env.DisposeAsync();
        }
    }

    /// <summary>A webhook receiver on 127.0.0.1 that records every request and answers with <see cref="Status"/>.</summary>
    private sealed class Receiver : IAsyncDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly List<Received> _all = [];
        private readonly Task _loop;

        public Receiver()
        {
            var port = FreePort();
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _loop = Task.Run(ServeAsync);
        }

        public string Url { get; }

        public volatile HttpStatusCode Status = HttpStatusCode.OK;

        public IReadOnlyList<Received> All
        {
            get
            {
                lock (_all)
                {
                    return _all.ToList();
                }
            }
        }

        public IReadOnlyList<Received> Accepted => All.Where(r => r.Answered is >= 200 and < 300).ToList();

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                using var reader = new StreamReader(context.Request.InputStream, Encoding.UTF8);
                var body = await reader.ReadToEndAsync();
                var status = Status;
                var h = context.Request.Headers;
                string? uuid = null;
                try
                {
                    var client = JsonDocument.Parse(body).RootElement.GetProperty("client");
                    uuid = client.GetProperty("uuid").ValueKind == JsonValueKind.String ? client.GetProperty("uuid").GetString() : null;
                }
                catch (JsonException)
                {
                }

                lock (_all)
                {
                    _all.Add(new Received(h[WebhookSignature.EventHeader] ?? "", h[WebhookSignature.DeliveryHeader] ?? "",
                        h[WebhookSignature.TimestampHeader] ?? "", h[WebhookSignature.SignatureHeader] ?? "", body, uuid, (int)status));
                }

                context.Response.StatusCode = (int)status;
                context.Response.Close();
            }
        }

        private static int FreePort()
        {
            using var probe = new TcpListener(IPAddress.Loopback, 0);
            probe.Start();
            return ((IPEndPoint)probe.LocalEndpoint).Port;
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            _listener.Close();
            await _loop;
        }
    }

    private sealed record Received(string Event, string DeliveryId, string Timestamp, string Signature, string Body, string? ClientUuid, int Answered);
}
