using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Health;

/// <summary>Asks one online client for its metrics. Faults are thrown; <see cref="FleetMetrics"/> classifies them.</summary>
public interface IMetricsSource
{
    Task<MetricsResult> GetAsync(FleetTarget target, bool summary, CancellationToken ct);
}

/// <summary>
/// <c>get_metrics</c> through the client's tunnel: one connection per request, the mutual handshake, then the
/// call, recorded through <see cref="OperationGuard"/> as operation OperationNames.GetClientMetrics.
/// </summary>
public sealed class MetricsClient : IMetricsSource
{
    /// <summary>How long the handshake may take.</summary>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where tunnel ports listen (the gateway's loopback).</summary>
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Records each request in the history; null runs unrecorded (tests).</summary>
    public OperationGuard? Guard { get; init; }

    public async Task<MetricsResult> GetAsync(FleetTarget target, bool summary, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(target);
        var session = target.Session ?? throw new InvalidOperationException($"{target.Describe()} has no online session");
        using var lease = Guard is null ? null : await Guard.BeginAsync(target.Uuid, OperationNames.GetClientMetrics, summary ? "summary" : "full").ConfigureAwait(false);
        try
        {
            await using var tunnel = await TunnelClient.ConnectAsync(Host, session.TunnelPort, session.Secret, HandshakeTimeout, ct, target.Policy).ConfigureAwait(false);
            var result = await tunnel.InvokeAsync(MetricsMethods.GetMetrics, new GetMetricsParams { Summary = summary },
                MetricsJson.Default.GetMetricsParams, MetricsJson.Default.MetricsResult, ct).ConfigureAwait(false);
            await lease.RecordAsync(OperationStatus.Succeeded).ConfigureAwait(false);
            return result;
        }
        catch (RpcException ex)
        {
            await lease.RecordAsync(OperationStatus.Error, ex.CodeName).ConfigureAwait(false);
            throw;
        }
        catch (OperationCanceledException)
        {
            await lease.RecordAsync(ct.IsCancellationRequested ? OperationStatus.TimedOut : OperationStatus.Cancelled, "no answer").ConfigureAwait(false);
            throw;
        }
        catch (Exception ex) when (ex is ProtocolException or IOException or System.Net.Sockets.SocketException)
        {
            await lease.RecordAsync(OperationStatus.Error, "unreachable").ConfigureAwait(false);
            throw;
        }
    }
}
