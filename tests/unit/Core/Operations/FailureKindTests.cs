using System.Net.Sockets;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>One classification of failures, from codes and fault types — whatever the message says.</summary>
public sealed class FailureKindTests
{
    private static readonly FleetTarget Target = new("3f2a9c1e-1111-2222", "web-01", null);

    [Theory]
    [InlineData(RpcErrorCodes.NotFound, FailureKind.NotFound, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.PathDenied, FailureKind.Denied, CommandStatus.Denied)]
    [InlineData(RpcErrorCodes.TooLarge, FailureKind.TooLarge, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.Timeout, FailureKind.TimedOut, CommandStatus.TimedOut)]
    [InlineData(RpcErrorCodes.RateLimited, FailureKind.RateLimited, CommandStatus.RateLimited)]
    [InlineData(RpcErrorCodes.Busy, FailureKind.Unreachable, CommandStatus.Error)]
    [InlineData(FileLimits.ChecksumMismatch, FailureKind.ChecksumMismatch, CommandStatus.Error)]
    [InlineData(ExchangeErrorCodes.ChecksumMismatch, FailureKind.ChecksumMismatch, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.InvalidParams, FailureKind.Invalid, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.MethodNotFound, FailureKind.Invalid, CommandStatus.Error)]
    [InlineData(RpcErrorCodes.Internal, FailureKind.Internal, CommandStatus.Error)]
    [InlineData(4242, FailureKind.Internal, CommandStatus.Error)]
    public void AnAgentsCode_DecidesTheKind_NotItsMessage(int code, FailureKind kind, CommandStatus status)
    {
        // A message that starts like another code's name must not change the verdict.
        var result = FleetCommandResult.FromException(Target, new RpcException(code, "NOT_FOUND: PATH_DENIED: misleading text"), 5);
        Assert.Equal(kind, result.Failure);
        Assert.Equal(status, result.Status);
    }

    [Fact]
    public void FaultTypes_HaveTheirKinds()
    {
        Assert.Equal(FailureKind.Unreachable, FailureKinds.Of(new SocketException((int)SocketError.ConnectionRefused)));
        Assert.Equal(FailureKind.Unreachable, FailureKinds.Of(new IOException("closed")));
        Assert.Equal(FailureKind.Unreachable, FailureKinds.Of(new ProtocolException(ProtocolError.FrameTooLarge, "bad frame")));
        Assert.Equal(FailureKind.TimedOut, FailureKinds.Of(new TimeoutException()));
        Assert.Equal(FailureKind.Cancelled, FailureKinds.Of(new OperationCanceledException()));
        Assert.Equal(FailureKind.Internal, FailureKinds.Of(new InvalidOperationException("?")));
    }

    [Fact]
    public void UnstartedTargets_AndAnswers_CarryTheirKinds()
    {
        Assert.Equal(FailureKind.Offline, FleetCommandResult.Unstarted(Target, CommandStatus.Offline, "down").Failure);
        Assert.Equal(FailureKind.Denied, FleetCommandResult.Unstarted(Target, CommandStatus.Denied, "revoked").Failure);
        Assert.Equal(FailureKind.None, FleetCommandResult.Unstarted(Target, CommandStatus.Skipped, "limit").Failure);
        Assert.Equal(FailureKind.None, FleetCommandResult.FromAnswer(Target, new RunCommandResult { ExitCode = 3, Stdout = "", Stderr = "", DurationMs = 1, TimedOut = false, Truncated = false }, 1).Failure);
        Assert.Equal(FailureKind.TimedOut, FleetCommandResult.FromAnswer(Target, new RunCommandResult { ExitCode = -1, TimedOut = true, Stdout = "", Stderr = "", DurationMs = 1, Truncated = false }, 1).Failure);
    }

    [Fact]
    public void TheWireSpelling_IsSnakeCase()
    {
        Assert.Equal("checksum_mismatch", FailureKinds.Wire(FailureKind.ChecksumMismatch));
        Assert.Equal("not_found", FailureKinds.Wire(FailureKind.NotFound));
        Assert.Equal("timed_out", FailureKinds.Wire(FailureKind.TimedOut));
    }
}
