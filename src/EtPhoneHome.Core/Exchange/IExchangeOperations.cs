using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// The exchange as an operator surface uses it (the <c>eph-server exchange</c> verbs, the MCP exchange tools): on the
/// server host with the bucket's credentials (<see cref="LocalExchangeOperations"/>), or from a workstation through
/// the server's operator service (<c>Core.Remote.RemoteExchange</c>). Client names are resolved by the side that holds the
/// registry; an unknown name refuses the whole operation before anything is sent.
/// </summary>
public interface IExchangeOperations
{
    /// <summary>The clients <paramref name="names"/> match (uuids, display names, wildcards; who, not how to reach them); none unknown, or an <see cref="UnknownClientsException"/>.</summary>
    Task<IReadOnlyList<FleetTarget>> ResolveClientsAsync(IReadOnlyList<string> names, CancellationToken ct);

    /// <summary>Uploads a local file; <paramref name="destClient"/> (a name or uuid) is recorded as its addressee.</summary>
    Task<ExchangeUploadResult> UploadAsync(string path, string? destClient, int expiresHours, IProgress<ExchangeProgress>? progress, CancellationToken ct);

    /// <summary>Downloads a transfer or a URL into a local file, verified.</summary>
    Task<ExchangeDownloadResult> DownloadAsync(string? transferId, Uri? url, string destination, bool allowAnyHost, string? expectedSha256, IProgress<ExchangeProgress>? progress, CancellationToken ct);

    Task<IReadOnlyList<ExchangeObject>> ListAsync(string? sourceClient, string? destClient, CancellationToken ct);

    Task<ExchangeDeleteResult> DeleteAsync(string transferId, string sourceClient, CancellationToken ct);

    Task<ExchangeUploadUrl> CreateUploadUrlAsync(string sourceClient, string fileName, int expiresHours, CancellationToken ct);

    /// <summary>Tells each client's agent to fetch a transfer into <paramref name="remotePath"/>; one result per client as each finishes.</summary>
    IAsyncEnumerable<ExchangeDeliveryResult> DeliverAsync(IReadOnlyList<string> clients, string transferId, string remotePath, int throttleLimit, CancellationToken ct);

    /// <summary>Has one client's agent upload a file, then downloads it into <paramref name="destination"/>, verified against the agent's hash.</summary>
    Task<ExchangeDeliveryResult> CollectAsync(string client, string remotePath, string destination, CancellationToken ct);

    /// <summary>The bucket's lifecycle rules, installing the transfers' rule first when <paramref name="apply"/>.</summary>
    Task<IReadOnlyList<ExchangeLifecycleRule>> LifecycleAsync(bool apply, CancellationToken ct);
}

/// <summary>The exchange on the server host: the bucket's credentials here, names resolved in the registry.</summary>
public sealed class LocalExchangeOperations(RegistryStores registry, ExchangeClient exchange) : IExchangeOperations
{
    public Task<IReadOnlyList<FleetTarget>> ResolveClientsAsync(IReadOnlyList<string> names, CancellationToken ct)
    {
        var lookup = ClientQueries.Find(registry.Clients, names: names, ids: null, onlineOnly: false);
        if (lookup.NotFound.Count > 0)
        {
            throw new UnknownClientsException(lookup.NotFound);
        }

        return Task.FromResult<IReadOnlyList<FleetTarget>>([.. lookup.Clients.Select(c => new FleetTarget(c.Uuid, c.DisplayName, null))]);
    }

    public Task<ExchangeUploadResult> UploadAsync(string path, string? destClient, int expiresHours, IProgress<ExchangeProgress>? progress, CancellationToken ct) =>
        exchange.UploadAsync(path, destClient is null ? null : ExchangeParticipants.Resolve(registry.Clients, destClient, "dest_client"), expiresHours, ExchangeLimits.ServerSource, progress, ct);

    public Task<ExchangeDownloadResult> DownloadAsync(string? transferId, Uri? url, string destination, bool allowAnyHost, string? expectedSha256, IProgress<ExchangeProgress>? progress, CancellationToken ct) =>
        url is not null
            ? exchange.DownloadUrlAsync(url, destination, allowAnyHost, expectedSha256, progress, ct)
            : exchange.DownloadAsync(transferId ?? throw new ArgumentException("a download names a transfer id or a URL"), destination, expectedSha256, progress, ct);

    public Task<IReadOnlyList<ExchangeObject>> ListAsync(string? sourceClient, string? destClient, CancellationToken ct) =>
        exchange.ListAsync(
            sourceClient is null ? null : ExchangeParticipants.Resolve(registry.Clients, sourceClient, "source_client"),
            destClient is null ? null : ExchangeParticipants.Resolve(registry.Clients, destClient, "dest_client"),
            includeMetadata: true, ct);

    public Task<ExchangeDeleteResult> DeleteAsync(string transferId, string sourceClient, CancellationToken ct) =>
        exchange.DeleteAsync(transferId, ExchangeParticipants.Resolve(registry.Clients, sourceClient, "source_client"), ct);

    public Task<ExchangeUploadUrl> CreateUploadUrlAsync(string sourceClient, string fileName, int expiresHours, CancellationToken ct) =>
        Task.FromResult(exchange.CreateUploadUrl(ExchangeParticipants.Resolve(registry.Clients, sourceClient, "source_client"), fileName, expiresHours));

    public IAsyncEnumerable<ExchangeDeliveryResult> DeliverAsync(IReadOnlyList<string> clients, string transferId, string remotePath, int throttleLimit, CancellationToken ct) =>
        new ExchangeDelivery(exchange).DeliverAsync(Targets(clients), transferId, remotePath, throttleLimit, ct);

    public Task<ExchangeDeliveryResult> CollectAsync(string client, string remotePath, string destination, CancellationToken ct) =>
        new ExchangeDelivery(exchange).CollectAsync(Targets([client]) switch
        {
            [var one] => one,
            var many => throw new ArgumentException($"'{client}' names {many.Count} clients; name one"),
        }, remotePath, destination, ct);

    public async Task<IReadOnlyList<ExchangeLifecycleRule>> LifecycleAsync(bool apply, CancellationToken ct) =>
        apply ? await exchange.InitializeAsync(ct).ConfigureAwait(false) : await exchange.GetLifecycleAsync(ct).ConfigureAwait(false);

    private IReadOnlyList<FleetTarget> Targets(IReadOnlyList<string> names)
    {
        var lookup = ClientQueries.Find(registry.Clients, names: names, ids: null, onlineOnly: false);
        if (lookup.NotFound.Count > 0)
        {
            throw new UnknownClientsException(lookup.NotFound);
        }

        return FleetTargets.FromClients(registry, lookup.Clients);
    }
}
