using System.Net;
using System.Net.Sockets;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Operations;

/// <summary>The default transport against a fake agent on 127.0.0.1 speaking the real handshake.</summary>
public sealed class TunnelCommandTransportTests : IAsyncLifetime
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly CancellationTokenSource _stop = new();
    private Task? _agent;

    public TunnelCommandTransportTests() => _listener.Start();

    private int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>Serves one connection: handshake, then answers requests with <paramref name="answer"/>.</summary>
    private void ServeOne(Func<RpcRequest, RpcResponse?> answer)
    {
        _agent = Task.Run(async () =>
        {
            using var tcp = await _listener.AcceptTcpClientAsync(_stop.Token);
            var stream = tcp.GetStream();
            try
            {
                await TunnelHandshake.AcceptAsync(stream, _secret, "u-1", "test", _stop.Token);
            }
            catch (ProtocolException)
            {
                return; // refused: the connection closes before any request is read
            }

            while (await Wire.ReadAsync(stream, ProtocolJson.Default.RpcRequest, Framing.MaxFrameBytes, _stop.Token) is { } request)
            {
                if (answer(request) is not { } response)
                {
                    await Task.Delay(Timeout.Infinite, _stop.Token);
                }
                else
                {
                    await Wire.WriteAsync(stream, response, ProtocolJson.Default.RpcResponse, _stop.Token);
                }
            }
        });
    }

    private FleetTarget Target(byte[]? secret = null) =>
        new("u-1", "web-01", FakeFleet.Session("u-1", Port, secret ?? _secret));

    [Fact]
    public async Task RunCommand_ReturnsTheAgentsAnswer()
    {
        RunCommandParams? seen = null;
        ServeOne(request =>
        {
            Assert.Equal(RpcMethods.RunCommand, request.Method);
            seen = Wire.FromElement(request.Params, ProtocolJson.Default.RunCommandParams);
            return new RpcResponse { Id = request.Id, Result = Wire.ToElement(FakeTransport.Exit(3, "hello"), ProtocolJson.Default.RunCommandResult) };
        });

        var answer = await new TunnelCommandTransport().RunAsync(Target(), new RunCommandParams { Cmd = "echo hello", TimeoutS = 5 }, CancellationToken.None).WaitAsync(Patience);

        Assert.Equal(3, answer.ExitCode);
        Assert.Equal("hello", answer.Stdout);
        Assert.Equal("echo hello", seen?.Cmd);
        Assert.Equal(5, seen?.TimeoutS);
    }

    [Fact]
    public async Task Guard_RecordsEachCommandInTheHistory_WithActorSurfaceAndOutcome()
    {
        ServeOne(request => new RpcResponse { Id = request.Id, Result = Wire.ToElement(FakeTransport.Exit(2, "no"), ProtocolJson.Default.RunCommandResult) });
        using var data = new EtPhoneHome.Tests.Unit.Registry.TempData();
        using var registry = EtPhoneHome.Core.Registry.SqliteRegistry.Open(data.Dir);
        var transport = new TunnelCommandTransport { Guard = new OperationGuard(registry, new OperatorContext("alice", Surfaces.Cli)) };

        await transport.RunAsync(Target(), new RunCommandParams { Cmd = "false --really", TimeoutS = 5 }, CancellationToken.None).WaitAsync(Patience);

        var entry = Assert.Single(registry.ListAudit("u-1"));
        Assert.Equal("run_command", entry.Operation);
        Assert.Equal("alice", entry.Actor);
        Assert.Equal(Surfaces.Cli, entry.Surface);
        Assert.Equal("failed", entry.Status);
        Assert.Contains("false --really", entry.Detail, StringComparison.Ordinal);
        Assert.Contains("exit 2", entry.Detail, StringComparison.Ordinal);
        Assert.NotNull(entry.DurationMs);
    }

    [Fact]
    public async Task RpcError_IsThrownWithItsCode_AndMapsToDenied()
    {
        ServeOne(request => new RpcResponse { Id = request.Id, Error = new RpcError { Code = RpcErrorCodes.PathDenied, Message = "cwd /etc is outside the allowed paths" } });
        var results = new List<FleetCommandResult>();

        await foreach (var r in new FleetExecutor(new TunnelCommandTransport()).RunAsync([Target()], new RunCommandParams { Cmd = "ls", Cwd = "/etc" }))
        {
            results.Add(r);
        }

        Assert.Equal(CommandStatus.Denied, Assert.Single(results).Status);
    }

    [Fact]
    public async Task WrongSecret_FailsFast_AsErrorNotHang()
    {
        ServeOne(request => throw new InvalidOperationException("no request may be read after a failed handshake"));
        var results = new List<FleetCommandResult>();

        await foreach (var r in new FleetExecutor(new TunnelCommandTransport()).RunAsync([Target(TunnelHandshake.NewSecret())], new RunCommandParams { Cmd = "id" }).WithCancellation(CancellationToken.None))
        {
            results.Add(r);
        }

        var result = Assert.Single(results);
        Assert.Equal(CommandStatus.Error, result.Status);
        Assert.StartsWith("tunnel:", result.Error);
    }

    [Fact]
    public async Task SilentAgent_GivesTimedOut_AfterCommandTimeoutPlusGrace()
    {
        ServeOne(_ => null);
        var transport = new TunnelCommandTransport { Grace = TimeSpan.FromMilliseconds(200) };

        var ex = await Assert.ThrowsAsync<TimeoutException>(() =>
            transport.RunAsync(Target(), new RunCommandParams { Cmd = "sleep 99", TimeoutS = 1 }, CancellationToken.None).WaitAsync(Patience));

        Assert.Contains("command timeout 1 s", ex.Message);
    }

    [Fact]
    public async Task SilentAgent_IsNotCutBeforeTheCommandsOwnTimeout()
    {
        ServeOne(_ => null);
        var transport = new TunnelCommandTransport { Grace = TimeSpan.Zero };
        var clock = System.Diagnostics.Stopwatch.StartNew();

        await Assert.ThrowsAsync<TimeoutException>(() =>
            transport.RunAsync(Target(), new RunCommandParams { Cmd = "sleep 99", TimeoutS = 1 }, CancellationToken.None).WaitAsync(Patience));

        Assert.True(clock.Elapsed >= TimeSpan.FromMilliseconds(950), $"gave up after {clock.Elapsed}");
    }

    [Fact]
    public async Task ClosedPort_IsAnError()
    {
        _listener.Stop();
        var ex = await Record.ExceptionAsync(() => new TunnelCommandTransport().RunAsync(Target(), new RunCommandParams { Cmd = "id" }, CancellationToken.None).WaitAsync(Patience));
        var result = FleetCommandResult.FromException(Target(), ex!, 1);
        Assert.Equal(CommandStatus.Error, result.Status);
    }

    [Fact]
    public async Task Cancellation_EndsTheWait()
    {
        ServeOne(_ => null);
        using var cts = new CancellationTokenSource();
        var run = new TunnelCommandTransport().RunAsync(Target(), new RunCommandParams { Cmd = "sleep 99" }, cts.Token);
        cts.CancelAfter(100);

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => run.WaitAsync(Patience));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    // xUnit 2 disposes a test class through IAsyncLifetime (IAsyncDisposable alone is never called).
    public async Task DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        if (_agent is not null)
        {
            try
            {
                await _agent;
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ProtocolException)
            {
            }
        }

        _stop.Dispose();
    }
}
