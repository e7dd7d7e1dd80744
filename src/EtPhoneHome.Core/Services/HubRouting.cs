using System.Runtime.CompilerServices;
using System.Threading.Channels;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Services;

/// <summary>
/// Runs a fan-out's part on the clients another hub holds, through that hub (hub to hub, over SSH). Every method
/// yields exactly one result per target it was given, also when the other hub cannot be reached or goes away half way
/// (those targets get an error saying so); it never throws for a fault of the other hub or the link.
/// </summary>
public interface IFleetRelay
{
    IAsyncEnumerable<FleetCommandResult> RunCommandsAsync(string hubId, IReadOnlyList<FleetTarget> targets, CommandRequest request, FleetOptions options,
        OperatorContext who, CancellationToken ct);

    IAsyncEnumerable<ClientMetricsResult> CollectMetricsAsync(string hubId, IReadOnlyList<FleetTarget> targets, bool summary, FleetMetricsOptions options,
        OperatorContext who, CancellationToken ct);

    /// <summary>A file operation: <paramref name="op"/> is <see cref="OperatorOperations.ReadFiles"/>, write or list; <paramref name="args"/> its request.</summary>
    IAsyncEnumerable<FleetFileOutcome<T>> FilesAsync<T>(string hubId, string op, IReadOnlyList<FleetTarget> targets, FileOperationArgs args,
        OperatorContext who, CancellationToken ct)
        where T : class;
}

/// <summary>
/// Where a fan-out's targets are served when several hubs share the registry: a target whose session another hub holds
/// is relayed to that hub (<see cref="Relay"/>), or — on a call that is itself a relay, or without a relay — answered
/// with an error naming the hub that holds it, without contacting the client. A tunnel port is only meaningful on the
/// host of the hub that holds the session.
/// </summary>
/// <param name="LocalHubId">The hub this process is (or runs beside).</param>
/// <param name="Relay">How to reach the others; null relays nothing (a relayed call is never relayed again).</param>
public sealed record HubRouting(string LocalHubId, IFleetRelay? Relay)
{
    /// <summary>Set on a call another hub relayed: the targets of other hubs are not relayed again.</summary>
    public bool IsRelayedCall { get; init; }

    /// <summary>
    /// Set for a front end on a server host (local verbs, cmdlets, MCP without --server): the host whose tunnel ports
    /// it reaches. A target held by a hub on another host is answered with an error saying how to reach it.
    /// </summary>
    public string? FrontEndHost { get; init; }

    /// <summary>
    /// The routing of a front end on this host over <paramref name="registry"/>: none for SQLite (every hub of a SQLite
    /// registry runs on its host); for a shared PostgreSQL registry, the clients of hubs on other hosts are refused
    /// (their tunnel ports are on those hosts) instead of failing as a connection error.
    /// </summary>
    public static HubRouting? ForFrontEnd(Registry.RegistryStores registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        return registry.Sessions is Registry.SqliteRegistry { Engine: "postgresql" } ? new HubRouting("", null) { FrontEndHost = Environment.MachineName } : null;
    }

    /// <summary>The hub that holds <paramref name="target"/>'s session when this process cannot reach it itself; null for one it reaches or an offline client.</summary>
    public string? OtherHolder(FleetTarget target)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (!target.IsOnline || target.Session!.HubId is not { } hub)
        {
            return null;
        }

        return FrontEndHost is { } host
            ? string.Equals(target.Session.Host, host, StringComparison.OrdinalIgnoreCase) ? null : hub
            : string.Equals(hub, LocalHubId, StringComparison.Ordinal) ? null : hub;
    }

    /// <summary>The selection naming exactly <paramref name="targets"/> by uuid (a literal uuid names that client only).</summary>
    public static TargetSelection Selection(IReadOnlyList<FleetTarget> targets)
    {
        ArgumentNullException.ThrowIfNull(targets);
        return new TargetSelection { Clients = targets.Select(t => t.Uuid).ToArray() };
    }

    /// <summary>Why a target held by <paramref name="hub"/> was not contacted from here.</summary>
    public string NotRelayed(FleetTarget target, string hub)
    {
        ArgumentNullException.ThrowIfNull(target);
        if (FrontEndHost is { } host)
        {
            return $"{target.Describe()} is connected to hub {hub} on host {UntrustedText.ForTerminal(target.Session?.Host ?? "?")}, whose tunnels are not reachable from {host}; "
                   + "run this through a hub's operator service (--server, Connect-EphServer) to reach every hub's clients";
        }

        return IsRelayedCall
            ? $"{target.Describe()} is connected to hub {hub}, not to hub {LocalHubId}; a request relayed by a hub is not relayed again"
            : $"{target.Describe()} is connected to hub {hub}; hub {LocalHubId} relays to other hubs only when both were started with --relay-address";
    }

    /// <summary>
    /// Runs a fan-out over hubs: this hub's targets through <paramref name="local"/>, each other hub's through
    /// <paramref name="remote"/> (or <paramref name="notRelayed"/> without a relay), all at once, results as they come.
    /// </summary>
    public IAsyncEnumerable<T> RunAsync<T>(IReadOnlyList<FleetTarget> targets,
        Func<IReadOnlyList<FleetTarget>, IAsyncEnumerable<T>> local,
        Func<string, IReadOnlyList<FleetTarget>, IAsyncEnumerable<T>> remote,
        Func<FleetTarget, string, T> notRelayed,
        CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(targets);
        var mine = new List<FleetTarget>();
        var others = new Dictionary<string, List<FleetTarget>>(StringComparer.Ordinal);
        foreach (var target in targets)
        {
            if (OtherHolder(target) is { } hub)
            {
                (others.TryGetValue(hub, out var list) ? list : others[hub] = []).Add(target);
            }
            else
            {
                mine.Add(target);
            }
        }

        if (others.Count == 0)
        {
            return local(targets);
        }

        var streams = new List<IAsyncEnumerable<T>>();
        if (mine.Count > 0)
        {
            streams.Add(local(mine));
        }

        foreach (var (hub, list) in others)
        {
            streams.Add(Relay is null ? Answered(list.Select(t => notRelayed(t, hub))) : remote(hub, list));
        }

        return Merge(streams, ct);
    }

    private static async IAsyncEnumerable<T> Answered<T>(IEnumerable<T> results)
    {
        foreach (var result in results)
        {
            yield return result;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <summary>Every item of every stream, as each comes; a stream's fault ends the merge with that fault once the others are stopped.</summary>
    internal static async IAsyncEnumerable<T> Merge<T>(IReadOnlyList<IAsyncEnumerable<T>> streams, [EnumeratorCancellation] CancellationToken ct)
    {
        var channel = Channel.CreateUnbounded<T>(new UnboundedChannelOptions { SingleReader = true });
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct);
        var pumps = streams.Select(stream => Task.Run(async () =>
        {
            await foreach (var item in stream.WithCancellation(stop.Token).ConfigureAwait(false))
            {
                await channel.Writer.WriteAsync(item, CancellationToken.None).ConfigureAwait(false);
            }
        }, CancellationToken.None)).ToArray();
        var all = Task.WhenAll(pumps).ContinueWith(t => channel.Writer.TryComplete(t.Exception?.GetBaseException()), TaskScheduler.Default);
        try
        {
            // Each stream answers every target of its own, also when cancelled: read to the end.
            await foreach (var item in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
            {
                yield return item;
            }
        }
        finally
        {
            await stop.CancelAsync().ConfigureAwait(false);
            await all.ConfigureAwait(false);
        }
    }
}
