using System.Diagnostics;
using System.Globalization;

namespace EtPhoneHome.Hub;

/// <summary>
/// Where one admission's time went, from the gate's connection to the session online, for its log line: the agent's
/// hello and the key checks (hello), waiting for an admission slot (queued), the registry writes and the welcome
/// (registry), the tunnel check through sshd's forward (tunnel check), recording the session online (online). A slow
/// step in a reconnect storm is then visible in the log. Timestamps are <see cref="Stopwatch.GetTimestamp"/> values.
/// </summary>
internal sealed class AdmissionSteps
{
    private readonly long _connected;
    private readonly long _waiting;
    private long _queued;
    private long _registered;
    private long _checked;

    /// <param name="connected">When the gate connected.</param>
    /// <param name="waiting">When the admission started waiting for its slot (now, by default).</param>
    public AdmissionSteps(long connected, long? waiting = null)
    {
        _connected = connected;
        _waiting = waiting ?? Stopwatch.GetTimestamp();
    }

    public void Queued(long? at = null) => _queued = at ?? Stopwatch.GetTimestamp();

    public void Registered(long? at = null) => _registered = at ?? Stopwatch.GetTimestamp();

    public void TunnelChecked(long? at = null) => _checked = at ?? Stopwatch.GetTimestamp();

    /// <summary>"admitted in T ms: hello A, queued B, registry C, tunnel check D, online E".</summary>
    public string Describe(long? at = null)
    {
        var end = at ?? Stopwatch.GetTimestamp();
        return string.Create(CultureInfo.InvariantCulture,
            $"admitted in {Ms(_connected, end):0} ms: hello {Ms(_connected, _waiting):0}, queued {Ms(_waiting, _queued):0}, registry {Ms(_queued, _registered):0}, tunnel check {Ms(_registered, _checked):0}, online {Ms(_checked, end):0}");
    }

    private static double Ms(long from, long to) => from > 0 && to >= from ? Stopwatch.GetElapsedTime(from, to).TotalMilliseconds : 0;
}
