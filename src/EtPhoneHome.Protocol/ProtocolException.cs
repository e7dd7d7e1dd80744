namespace EtPhoneHome.Protocol;

/// <summary>Why a frame or handshake was rejected.</summary>
public enum ProtocolError
{
    /// <summary>A frame exceeded the size limit.</summary>
    FrameTooLarge,
    /// <summary>The peer closed the connection in the middle of a frame.</summary>
    Truncated,
    /// <summary>A frame was not the JSON that was expected.</summary>
    Malformed,
    /// <summary>The peers speak different protocol versions.</summary>
    VersionMismatch,
    /// <summary>The peer could not prove knowledge of the session secret.</summary>
    AuthenticationFailed,
    /// <summary>The peer did not answer in time.</summary>
    Timeout,
}

/// <summary>A violation of the wire protocol. Messages never contain secrets.</summary>
public sealed class ProtocolException : Exception
{
    public ProtocolException(ProtocolError error, string message, Exception? inner = null)
        : base(message, inner)
    {
        Error = error;
    }

    public ProtocolError Error { get; }
}
