using System.Net.Sockets;
using EtPhoneHome.Core.Logging;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Registry;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// The hub and operator keys: sshd is told to run eph-gate operator for an active operator's key, with every kind of
/// forwarding off; a removed operator's key gets nothing; other keys are answered as before. An operator connection
/// reaches the operator service only for an active operator.
/// </summary>
public sealed class HubOperatorTests : IAsyncLifetime
{
    private readonly TempData _temp = new();
    private SqliteRegistry _registry = null!;
    private HubServer _hub = null!;
    private readonly List<string> _log = [];

    public async Task InitializeAsync()
    {
        _registry = SqliteRegistry.Open(_temp.Dir);
        _hub = new HubServer(_registry, new HubOptions
        {
            DataDirectory = _temp.Dir,
            GatePath = "/opt/eph/eph-gate",
            Log = new DelegateLog(e => { lock (_log) { _log.Add(e.Message); } }),
        });
        await _hub.StartAsync();
    }

    public async Task DisposeAsync()
    {
        await _hub.DisposeAsync();
        _registry.Dispose();
        _temp.Dispose();
    }

    private string[] LogLines()
    {
        lock (_log)
        {
            return [.. _log];
        }
    }

    private async Task<NetworkStream> ConnectGateAsync(GateRequest request)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(_hub.SocketPath));
        var stream = new NetworkStream(socket, ownsSocket: true);
        await Wire.WriteAsync(stream, request, ProtocolJson.Default.GateRequest);
        return stream;
    }

    private async Task<string[]> AskKeysAsync(string fingerprint, string keyType, string blob)
    {
        await using var stream = await ConnectGateAsync(new GateRequest { Op = "keys", Fingerprint = fingerprint, User = "eph", KeyType = keyType, Key = blob });
        return (await Wire.ReadAsync(stream, ProtocolJson.Default.GateKeysResponse))!.Lines;
    }

    [Fact]
    public async Task AnActiveOperatorsKey_GetsExactlyTheForcedOperatorCommand_WithNoForwardingAtAll()
    {
        var key = TestSshKeys.Ed25519();
        _registry.AddOperator("alice", key.Line, OperatorRole.Admin, "root");

        var lines = await AskKeysAsync(key.Fingerprint, "ssh-ed25519", key.Blob);

        Assert.Equal(
            [$"restrict,command=\"/opt/eph/eph-gate operator --socket {_hub.SocketPath} --fingerprint {key.Fingerprint}\" ssh-ed25519 {key.Blob}"],
            lines);
        Assert.Null(_registry.GetKey(key.Fingerprint)); // never recorded as a client key
    }

    [Fact]
    public async Task ARemovedOperatorsKey_GetsNothing_AndIsNotRecordedAsAClient()
    {
        var key = TestSshKeys.Ed25519();
        _registry.AddOperator("bob", key.Line, OperatorRole.Reader, "root");
        _registry.RemoveOperator("bob", "root");

        Assert.Empty(await AskKeysAsync(key.Fingerprint, "ssh-ed25519", key.Blob));
        Assert.Null(_registry.GetKey(key.Fingerprint));
    }

    [Fact]
    public async Task AnOperatorsFingerprint_OfferedWithAnotherBlob_GetsNothing()
    {
        var key = TestSshKeys.Ed25519();
        var other = TestSshKeys.Ed25519();
        _registry.AddOperator("alice", key.Line, OperatorRole.Admin, "root");

        Assert.Empty(await AskKeysAsync(key.Fingerprint, "ssh-ed25519", other.Blob));
        Assert.Empty(await AskKeysAsync(key.Fingerprint, "ssh-rsa", key.Blob));
    }

    [Fact]
    public async Task AKeyThatIsNoOperators_IsAnsweredAsBefore()
    {
        _registry.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");
        var key = TestSshKeys.Ed25519();

        var line = Assert.Single(await AskKeysAsync(key.Fingerprint, "ssh-ed25519", key.Blob));

        Assert.Equal($"restrict,command=\"/opt/eph/eph-gate session --socket {_hub.SocketPath} --fingerprint {key.Fingerprint}\" ssh-ed25519 {key.Blob}", line);
    }

    [Fact]
    public async Task AnOperatorConnection_OfAnActiveOperator_IsHandedToTheOperatorService_WithItsSource()
    {
        var key = TestSshKeys.Ed25519();
        _registry.AddOperator("alice", key.Line, OperatorRole.Operator, "root");
        var served = new TaskCompletionSource<(OperatorRecord Op, string? Source)>(TaskCreationOptions.RunContinuationsAsynchronously);
        _hub.OperatorSessionHandler = async (stream, op, source, ct) =>
        {
            served.TrySetResult((op, source));
            await stream.WriteAsync("hello operator"u8.ToArray(), ct);
        };

        await using var stream = await ConnectGateAsync(new GateRequest
        {
            Op = "operator", Fingerprint = key.Fingerprint, GatePid = Environment.ProcessId, SshConnection = "192.0.2.7 50000 127.0.0.1 22", User = "eph",
        });
        var (op, source) = await served.Task.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(("alice", OperatorRole.Operator, "192.0.2.7 50000 127.0.0.1 22"), (op.Name, op.Role, source));
        using var reader = new StreamReader(stream);
        Assert.Equal("hello operator", await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task AnOperatorConnection_OfARemovedOrUnknownKey_IsClosedWithoutReachingTheService()
    {
        var key = TestSshKeys.Ed25519();
        _registry.AddOperator("alice", TestSshKeys.Ed25519().Line, OperatorRole.Admin, "root");
        _registry.AddOperator("bob", key.Line, OperatorRole.Reader, "root");
        _registry.RemoveOperator("bob", "root");
        var calls = 0;
        _hub.OperatorSessionHandler = (_, _, _, _) => { Interlocked.Increment(ref calls); return Task.CompletedTask; };

        foreach (var fingerprint in new[] { key.Fingerprint, Keys.A, "alice" })
        {
            await using var stream = await ConnectGateAsync(new GateRequest { Op = "operator", Fingerprint = fingerprint, GatePid = 1234 });
            Assert.Equal(0, await stream.ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(0, calls);
        Assert.Contains(LogLines(), l => l.Contains(key.Fingerprint, StringComparison.Ordinal) && l.Contains("no active operator", StringComparison.Ordinal));
    }

    [Fact]
    public async Task AnOperatorConnection_IsServedByTheOperatorService_AsTheOperatorTheRegistryNames()
    {
        var key = TestSshKeys.Ed25519();
        _registry.AddOperator("alice", key.Line, OperatorRole.Admin, "root");

        await using var stream = await ConnectGateAsync(new GateRequest
        {
            Op = "operator",
            Fingerprint = key.Fingerprint,
            GatePid = 1234,
            SshConnection = "192.0.2.7 50000 127.0.0.1 22",
        });
        await OperatorFrames.WriteMessageAsync(stream, new OperatorMessage
        {
            Type = OperatorMessageTypes.Call,
            Id = 1,
            Op = EtPhoneHome.Core.Remote.OperatorOperations.Hello,
        });
        var answer = (await OperatorFrames.ReadAsync(stream).WaitAsync(TimeSpan.FromSeconds(10)))!.Value.Message!;

        Assert.Equal(OperatorMessageTypes.Result, answer.Type);
        var hello = EtPhoneHome.Core.Remote.OperatorOperations.FromElement<EtPhoneHome.Core.Remote.HelloResult>(answer.Body);
        Assert.Equal("alice", hello.Operator);
        Assert.Equal(OperatorRole.Admin, hello.Role);
        Assert.Equal("192.0.2.7", hello.Source);
    }
}
