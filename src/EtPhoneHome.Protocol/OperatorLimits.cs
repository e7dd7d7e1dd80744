namespace EtPhoneHome.Protocol;

/// <summary>
/// What one operator connection may have in flight at once. The service refuses a call past any of them with BUSY (its
/// defence against a client that does not count); the operator's own client counts the same bounds and holds a call
/// back until it fits, so its callers wait for a place instead of failing.
/// </summary>
public static class OperatorLimits
{
    /// <summary>Requests one connection may have in flight.</summary>
    public const int MaxInFlight = 64;

    /// <summary>Transfers (uploads and downloads) one connection may have in flight; each holds buffers of a few MiB on the hub.</summary>
    public const int MaxTransfersInFlight = 8;

    /// <summary>
    /// Bytes of call messages (frame payloads) one connection may have in flight: two of the largest, so one call of
    /// any size always fits once the others ended. Each call keeps its arguments on the hub until it ends.
    /// </summary>
    public const long MaxArgumentBytesInFlight = 2L * OperatorFrames.MaxMessageBytes;
}
