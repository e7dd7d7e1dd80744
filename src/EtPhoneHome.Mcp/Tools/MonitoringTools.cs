using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Net.Sockets;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>How clients are doing: rate-limit counters (registry) and resource metrics (asked of the agent).</summary>
[McpServerToolType]
public sealed class MonitoringTools(McpFleet fleet, McpSession session)
{
    /// <summary>Longest wait for an agent's metrics answer, tunnel included (the CPU sample alone takes about 200 ms).</summary>
    public static readonly TimeSpan MetricsTimeout = new FleetMetricsOptions().Timeout;

    [McpServerTool(Name = "get_rate_limit_stats", Title = "Rate-limit statistics", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = false, UseStructuredContent = true)]
    [Description("A client's rate-limit counters, shared by every surface (MCP, PowerShell, CLI): requests in the last 60 s, requests in flight, its limits, how many requests went over them, and the mode (warn: over-limit requests run and are counted; enforce: they are refused with RATE_LIMITED). Change the limits with configure_client.")]
    public async Task<RateLimitAnswer> GetRateLimitStats(
        [Description("Uuid or display name of the client; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? uuid = null,
        CancellationToken cancellationToken = default)
    {
        ClientRecord client;
        RateLimitStats? stats;
        if (fleet.Remote is { } server)
        {
            // The same counters through the server (the registry there is shared by every surface).
            client = await RemoteOnly.ResolveAsync(server, session, uuid, cancellationToken, "uuid").ConfigureAwait(false);
            var op = await server.GetAsync(cancellationToken).ConfigureAwait(false);
            stats = (await op.RateLimitStatsAsync([client.Uuid], cancellationToken).ConfigureAwait(false)).SingleOrDefault();
        }
        else
        {
            client = ClientResolver.Resolve(fleet.Registry.Clients, session, uuid, "uuid");
            stats = fleet.Registry.RateLimits.GetRateLimitStats([client.Uuid], fleet.Guard.RateLimits).SingleOrDefault();
        }

        stats = stats
            ?? throw new ToolFailure(ToolErrorCodes.ClientNotFound, $"{ClientResolver.Describe(client)} was removed",
                "Call list_clients for the clients that exist.");
        return new RateLimitAnswer(
            client.Uuid,
            Views.Text(client.DisplayName),
            new RateLimitCounters(stats.RequestsPerMinute, stats.CurrentConcurrent, stats.RpmLimit, stats.ConcurrentLimit, stats.RpmWarnings, stats.ConcurrentWarnings),
            stats.Mode);
    }

    [McpServerTool(Name = "get_client_metrics", Title = "Client metrics", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Ask one online client for its resource use. summary=true: cpu_percent, memory_percent, disk_max_percent, load_1, uptime_s (cheap; use it to check many clients). Otherwise everything the platform measures: load averages, memory and swap bytes, every local disk, process count, network byte counters, hostname and platform. Values a platform cannot measure are left out.")]
    public async Task<ClientMetrics> GetClientMetrics(
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        [Description("true for the five summary figures only; false (default) for the full set.")] bool summary = false,
        CancellationToken cancellationToken = default)
    {
        if (fleet.Remote is { } server)
        {
            return await RemoteMetricsAsync(server, client_id, summary, cancellationToken).ConfigureAwait(false);
        }

        var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        limit.CancelAfter(MetricsTimeout);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        MetricsResult metrics;
        try
        {
            // WaitAsync keeps the timeout even for a source that ignores its token.
            metrics = await fleet.Metrics.GetAsync(target, summary, limit.Token).WaitAsync(limit.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new ToolFailure(ToolErrorCodes.Timeout, $"{target.Describe()} gave no metrics within {MetricsTimeout.TotalSeconds:0} s",
                "Check that the client is still online (list_clients) and try again; summary=true is quicker.");
        }
        catch (RateLimitExceededException refused)
        {
            throw new ToolFailure(ToolErrorCodes.RateLimited, refused.Message, "Wait a minute or raise the limit with configure_client.");
        }
        catch (RpcException rpc) when (rpc.Code is RpcErrorCodes.RateLimited or RpcErrorCodes.Busy)
        {
            throw new ToolFailure(ToolErrorCodes.RateLimited, rpc.Message, "The agent is at its limit; try again shortly.");
        }
        catch (Exception ex) when (ex is RpcException or ProtocolException or SocketException or IOException or TimeoutException)
        {
            fleet.Logger.LogWarning("{Target}: metrics request failed: {Message}", target.Describe(), HealthText.Describe(ex));
            throw new ToolFailure(ToolErrorCodes.ClientUnreachable, $"{target.Describe()} could not be asked for its metrics through its tunnel",
                "The client may be reconnecting or run an agent without metrics; check list_clients and try again in a few seconds.");
        }

        return new ClientMetrics(
            new ClientRef(target.Uuid, target.DisplayName),
            summary,
            clock.ElapsedMilliseconds,
            // Reported by the agent on every call (never validated at admission): escaped like every claim.
            metrics with { Hostname = Views.Text(metrics.Hostname), Platform = Views.Text(metrics.Platform) });
    }

    /// <summary>get_client_metrics through the server: a metrics fan-out of one, answered as locally.</summary>
    private async Task<ClientMetrics> RemoteMetricsAsync(Core.Remote.RemoteServer server, string? clientId, bool summary, CancellationToken ct)
    {
        var target = RemoteOnly.Online(await RemoteOnly.ResolveAsync(server, session, clientId, ct).ConfigureAwait(false));
        var remote = await server.GetAsync(ct).ConfigureAwait(false);
        ClientMetricsResult? result = null;
        await foreach (var r in remote.CollectMetricsAsync(new Core.Remote.CollectMetricsArgs
        {
            Targets = new TargetSelection { Clients = [target.Uuid] },
            Summary = summary,
            ThrottleLimit = 1,
            TimeoutSeconds = MetricsTimeout.TotalSeconds,
        }, null, ct).ConfigureAwait(false))
        {
            result ??= r;
        }

        if (result is { Status: MetricsStatus.Succeeded, Metrics: { } metrics })
        {
            return new ClientMetrics(new ClientRef(result.Uuid, result.DisplayName), summary, result.DurationMs,
                metrics with { Hostname = Views.Text(metrics.Hostname), Platform = Views.Text(metrics.Platform) });
        }

        var error = result?.Error ?? "no answer";
        throw result?.Status switch
        {
            MetricsStatus.Offline => new ToolFailure(ToolErrorCodes.ClientOffline, $"{target.Describe()} is offline: {error}",
                "Wait for it to reconnect, or pick an online client (find_client with online_only: true)."),
            MetricsStatus.TimedOut => new ToolFailure(ToolErrorCodes.Timeout, $"{target.Describe()} gave no metrics within {MetricsTimeout.TotalSeconds:0} s",
                "Check that the client is still online (list_clients) and try again; summary=true is quicker."),
            MetricsStatus.Denied => new ToolFailure(ToolErrorCodes.KeyMismatch, $"{target.Describe()}: {error}", "Check the client's key (list_pending_keys)."),
            _ => new ToolFailure(ToolErrorCodes.ClientUnreachable, $"{target.Describe()} could not be asked for its metrics: {error}",
                "The client (or the connection to the server) may be reconnecting; check list_clients and try again in a few seconds."),
        };
    }
}

/// <summary>get_rate_limit_stats: a client's counters and the mode (warn or enforce).</summary>
public sealed record RateLimitAnswer(string Uuid, string DisplayName, RateLimitCounters Stats, RateLimitMode Mode);

/// <summary>Rate-limit counters of one client.</summary>
public sealed record RateLimitCounters(
    int RequestsPerMinute, int CurrentConcurrent, int RpmLimit, int ConcurrentLimit, long RpmWarnings, long ConcurrentWarnings);

/// <summary>get_client_metrics: what the agent measured, and how long asking took.</summary>
public sealed record ClientMetrics(ClientRef Client, bool Summary, long DurationMs, MetricsResult Metrics);
