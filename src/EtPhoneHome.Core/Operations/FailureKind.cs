using System.Net.Sockets;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Core.Operations;

/// <summary>
/// Why an operation on one target did not succeed, the same on every surface: the cmdlets choose their error id and
/// category from it, the CLI and MCP their codes. Decided once, from the RPC error code or the fault's type — never from
/// the text of a message.
/// </summary>
public enum FailureKind
{
    /// <summary>Nothing failed (a command that ran and exited non-zero did not fail to run: its exit code is its answer).</summary>
    None,
    /// <summary>The file, directory or object does not exist.</summary>
    NotFound,
    /// <summary>The client has no online session; nothing was sent.</summary>
    Offline,
    /// <summary>Refused by policy: outside the allowed paths, or a key that is not approved.</summary>
    Denied,
    /// <summary>Over a size cap.</summary>
    TooLarge,
    /// <summary>The SHA-256 of a transfer differs between sender and receiver.</summary>
    ChecksumMismatch,
    /// <summary>The operation, or the wait for its answer, ran out of time.</summary>
    TimedOut,
    /// <summary>Refused by an enforced rate limit.</summary>
    RateLimited,
    /// <summary>The tunnel could not be reached or broke (connection refused, closed, protocol fault, agent busy).</summary>
    Unreachable,
    /// <summary>The request was refused as invalid (bad parameters, unknown method).</summary>
    Invalid,
    /// <summary>An unexpected fault on either side.</summary>
    Internal,
    /// <summary>The caller cancelled it.</summary>
    Cancelled,
}

/// <summary>Where a <see cref="FailureKind"/> comes from, and how it is spelled.</summary>
public static class FailureKinds
{
    /// <summary>The kind of an agent's RPC error code.</summary>
    public static FailureKind FromCode(int code) => code switch
    {
        RpcErrorCodes.NotFound => FailureKind.NotFound,
        RpcErrorCodes.PathDenied => FailureKind.Denied,
        RpcErrorCodes.TooLarge => FailureKind.TooLarge,
        RpcErrorCodes.Timeout => FailureKind.TimedOut,
        RpcErrorCodes.RateLimited => FailureKind.RateLimited,
        RpcErrorCodes.Busy or ExchangeErrorCodes.TransferFailed => FailureKind.Unreachable,
        FileLimits.ChecksumMismatch or ExchangeErrorCodes.ChecksumMismatch => FailureKind.ChecksumMismatch,
        RpcErrorCodes.InvalidParams or RpcErrorCodes.InvalidRequest or RpcErrorCodes.MethodNotFound => FailureKind.Invalid,
        _ => FailureKind.Internal,
    };

    /// <summary>The kind of a fault raised while working on one target.</summary>
    public static FailureKind Of(Exception exception) => exception switch
    {
        RpcException rpc => FromCode(rpc.Code),
        RateLimitExceededException => FailureKind.RateLimited,
        TimeoutException => FailureKind.TimedOut,
        ProtocolException or SocketException or IOException => FailureKind.Unreachable,
        OperationCanceledException => FailureKind.Cancelled,
        _ => FailureKind.Internal,
    };

    /// <summary>The kind a status implies for a target that was never contacted or gave no code.</summary>
    public static FailureKind Of(CommandStatus status) => status switch
    {
        CommandStatus.Offline => FailureKind.Offline,
        CommandStatus.Denied => FailureKind.Denied,
        CommandStatus.TimedOut => FailureKind.TimedOut,
        CommandStatus.RateLimited => FailureKind.RateLimited,
        CommandStatus.Error => FailureKind.Internal,
        _ => FailureKind.None,
    };

    /// <summary>The wire spelling (JSON, MCP): snake_case, e.g. <c>checksum_mismatch</c>.</summary>
    public static string Wire(FailureKind kind) => OperationNames.WireName(kind);
}
