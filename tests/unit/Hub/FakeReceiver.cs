using System.Net;

namespace EtPhoneHome.Tests.Unit.Webhooks;

/// <summary>An in-process HTTP receiver: records every request and answers with the status <see cref="Answer"/> picks.</summary>
internal sealed class FakeReceiver : HttpMessageHandler
{
    private readonly object _lock = new();
    private readonly List<ReceivedRequest> _requests = [];

    public Func<ReceivedRequest, HttpStatusCode> Answer { get; set; } = _ => HttpStatusCode.OK;

    public IReadOnlyList<ReceivedRequest> Requests
    {
        get
        {
            lock (_lock)
            {
                return _requests.ToList();
            }
        }
    }

    protected override async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var body = request.Content is null ? "" : await request.Content.ReadAsStringAsync(cancellationToken);
        var received = new ReceivedRequest(
            request.RequestUri!.ToString(),
            request.Method.Method,
            request.Headers.ToDictionary(h => h.Key, h => string.Join(",", h.Value), StringComparer.OrdinalIgnoreCase),
            request.Content?.Headers.ContentType?.MediaType,
            body);
        lock (_lock)
        {
            _requests.Add(received);
        }

        return new HttpResponseMessage(Answer(received)) { Content = new StringContent("receiver-private-body") };
    }
}

internal sealed record ReceivedRequest(string Url, string Method, IReadOnlyDictionary<string, string> Headers, string? ContentType, string Body)
{
    public string Header(string name) => Headers.TryGetValue(name, out var v) ? v : throw new KeyNotFoundException($"no header {name}");

    public System.Text.Json.JsonElement Json => System.Text.Json.JsonDocument.Parse(Body).RootElement;

    public string Event => Json.GetProperty("event").GetString()!;
}
