using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;

using EtPhoneHome.Core;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Webhooks;
using EtPhoneHome.Core.Operations;
namespace EtPhoneHome.Hub;

/// <summary>
/// The hub's view of whether the registry takes writes. A full disk is not a session failure: the hub keeps its
/// sessions and control channels, says so in one line (repeated at most every <see cref="RepeatEvery"/>, with the count
/// of writes lost since), refuses new admissions, and says when writes succeed again.
/// </summary>
public sealed class RegistryWriteWatch(string dataDirectory, IEphLog log, TimeProvider? time = null)
{
    private readonly IEphLog _log = log ?? throw new ArgumentNullException(nameof(log));

    /// <summary>Least time between two "disk full" lines while the disk stays full.</summary>
    public static readonly TimeSpan RepeatEvery = TimeSpan.FromMinutes(10);

    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly object _sync = new();
    private volatile bool _unwritable;
    private DateTimeOffset _lastLine;
    private long _lost;

    /// <summary>True from a failed write until the next write that succeeds.</summary>
    public bool Unwritable => _unwritable;

    /// <summary>True when the last fault was a registry database out of reach (not a full disk).</summary>
    public bool Unreachable => _unreachable;

    private volatile bool _unreachable;

    /// <summary>
    /// Records a failed write: true (and logged, rate-limited) when it is a full disk or an I/O error of the registry;
    /// false for any other fault, which the caller handles as before.
    /// </summary>
    public bool Failed(Exception ex)
    {
        if (!RegistryFaults.IsUnwritable(ex))
        {
            return false;
        }

        _unreachable = RegistryFaults.Unwritable(ex) == RegistryFaults.Unreachable;
        string? line = null;
        lock (_sync)
        {
            _lost++;
            var now = _time.GetUtcNow();
            if (!_unwritable || now - _lastLine >= RepeatEvery)
            {
                line = $"{RegistryFaults.Describe(ex, dataDirectory)}; heartbeats and events are not being recorded; sessions are kept; new sessions are refused"
                       + (_unwritable ? $" (still; {_lost} write(s) lost so far)" : "");
                _lastLine = now;
            }

            _unwritable = true;
        }

        if (line is not null)
        {
            _log.Error(HubServer.LogSource, line);
        }

        return true;
    }

    /// <summary>Records a write that succeeded; the first after a failure says the registry is writable again.</summary>
    public void Succeeded()
    {
        if (!_unwritable)
        {
            return;
        }

        long lost;
        lock (_sync)
        {
            if (!_unwritable)
            {
                return;
            }

            _unwritable = false;
            lost = _lost;
            _lost = 0;
        }

        _log.Information(HubServer.LogSource, $"registry: writable again at {dataDirectory} ({lost} write(s) were lost while it was not)");
    }
}
