using System.Net.Sockets;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Operations;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// One connection's bounds (<see cref="OperatorLimits"/>) seen from both ends: the operator's client holds calls past
/// them back until a place frees (cancellable, leaving nothing behind), and the service still refuses BUSY what a
/// client that does not count sends past them.
/// </summary>
public sealed class OperatorCallBoundsTests : IAsyncLifetime
{
    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-bounds-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly CancellationTokenSource _stop = new();
    private Socket? _clientSide;
    private Task? _serving;

    public OperatorCallBoundsTests()
    {
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
    }

    public async Task InitializeAsync()
    {
        Socket serverSide;
        (_clientSide, serverSide) = await UnixSocketPair.ConnectAsync(_dir);
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, OperatorRole.Operator, "10.0.0.5"))
        {
            CommandTransport = _ => _transport,
        };
        _serving = service.ServeAsync(new NetworkStream(serverSide, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, "10.0.0.5"), _stop.Token);
    }

    public async Task DisposeAsync()
    {
        await _stop.CancelAsync();
        _clientSide?.Dispose();
        if (_serving is not null)
        {
            await _serving.WaitAsync(TimeSpan.FromSeconds(20));
        }

        Directory.Delete(_dir, recursive: true);
    }

    private async Task<RemoteOperator> ConnectAsync()
    {
        var stream = new NetworkStream(_clientSide!, ownsSocket: false);
        return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.PowerShell, CancellationToken.None);
    }

    private static RunCommandsArgs Run(string command, params string[] clients) =>
        new() { Targets = new TargetSelection { Clients = clients }, Request = new CommandRequest { Command = command } };

    /// <summary>Fills every in-flight place of <paramref name="remote"/> with a call to web-01 (held by the transport).</summary>
    private async Task<Task<List<FleetCommandResult>>[]> TakeEveryPlaceAsync(RemoteOperator remote)
    {
        var held = Enumerable.Range(0, OperatorLimits.MaxInFlight)
            .Select(_ => Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-01"), null, CancellationToken.None)))).ToArray();
        await WaitUntil(() => _transport.Calls == OperatorLimits.MaxInFlight);
        return held;
    }

    private static async Task<List<FleetCommandResult>> CollectAsync(IAsyncEnumerable<FleetCommandResult> results)
    {
        var list = new List<FleetCommandResult>();
        await foreach (var r in results)
        {
            list.Add(r);
        }

        return list;
    }

    [Fact]
    public async Task ManyMoreCallsThanTheServiceTakes_OverOneConnection_AllSucceed_ThePastOnesWaitingForAPlace()
    {
        // 100 fan-outs at once on one connection (a hub's relay link, a parallel pipeline through one session): the service
        // takes 64; the rest wait for a place and run as the first ones end, none is refused BUSY.
        const int calls = OperatorLimits.MaxInFlight + 36;
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var runs = Enumerable.Range(0, calls).Select(_ => Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-01"), null, CancellationToken.None)))).ToArray();

        await WaitUntil(() => _transport.Calls == OperatorLimits.MaxInFlight && remote.Channel.Waiting == calls - OperatorLimits.MaxInFlight);
        Assert.Equal(OperatorLimits.MaxInFlight, remote.Channel.InFlight);
        Assert.All(runs, r => Assert.False(r.IsCompleted));

        release.SetResult();
        var results = await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(60));
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, Assert.Single(r).Status));
        Assert.Equal(calls, _transport.Calls);
        await WaitUntil(() => remote.Channel.InFlight == 0);
        Assert.Equal(0, remote.Channel.Waiting);
        Assert.Equal(0, remote.Channel.BytesInFlight);
    }

    [Fact]
    public async Task CallsThatEndOneAfterAnother_NeverFindTheServiceStillCountingTheEndedOnes()
    {
        // The client frees a place as an end arrives and sends its next call at once: the service must have freed it
        // before it wrote the end. Many short calls through a full connection show a race as a BUSY.
        const int calls = 600;
        _transport.Answer("web-01", FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var runs = Enumerable.Range(0, calls).Select(_ => Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("true", "web-01"), null, CancellationToken.None)))).ToArray();
        var results = await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(120));
        Assert.All(results, r => Assert.Equal(CommandStatus.Succeeded, Assert.Single(r).Status));
    }

    [Fact]
    public async Task AnEndedCall_IsNoLongerCounted_ByTheTimeItsEndReachesTheClient()
    {
        // The client frees a place as an end arrives and sends its next call at once. Here the service's writes return
        // late (a slow flush after the bytes went out): a service that freed the place only after its write returned
        // would still count the ended call and refuse the next one BUSY.
        var (client, server) = await UnixSocketPair.ConnectAsync(Path.Combine(_dir, "slow"));
        using var clientSocket = client;
        var slow = new SlowFlushStream(new NetworkStream(server, ownsSocket: true));
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("alice", fp, OperatorRole.Operator, null)) { CommandTransport = _ => _transport };
        using var stop = new CancellationTokenSource();
        var serving = service.ServeAsync(slow, new OperatorIdentity("alice", "SHA256:alice", OperatorRole.Operator, null), stop.Token);
        var held = new TaskCompletionSource();
        var first = new TaskCompletionSource();
        _transport.Hold("web-01", held.Task, FakeTransport.Exit(0, "ok"));
        _transport.Hold("web-02", first.Task, FakeTransport.Exit(0, "ok"));
        var stream = new NetworkStream(client, ownsSocket: false);
        await using (var remote = await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.PowerShell, CancellationToken.None))
        {
            var runs = Enumerable.Range(0, OperatorLimits.MaxInFlight - 1)
                .Select(_ => Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-01"), null, CancellationToken.None))))
                .Append(Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-02"), null, CancellationToken.None)))).ToArray();
            await WaitUntil(() => _transport.Calls == OperatorLimits.MaxInFlight);
            var next = Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-02"), null, CancellationToken.None)));
            await WaitUntil(() => remote.Channel.Waiting == 1);

            slow.Slow = true;
            first.SetResult(); // the web-02 fan-out ends; its place goes to the waiting call
            Assert.Equal(CommandStatus.Succeeded, Assert.Single(await next.WaitAsync(TimeSpan.FromSeconds(20))).Status);
            slow.Slow = false;
            held.SetResult();
            await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(30));
        }

        await stop.CancelAsync();
        await serving.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task AWaitingCall_CanBeCancelled_AndLeavesNothingBehind()
    {
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var held = await TakeEveryPlaceAsync(remote);

        using var ctrlC = new CancellationTokenSource();
        var waiting = Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-02"), null, ctrlC.Token)));
        var alsoWaiting = Task.Run(() => CollectAsync(remote.RunCommandsAsync(Run("deploy", "web-02"), null, CancellationToken.None)));
        await WaitUntil(() => remote.Channel.Waiting == 2);
        await ctrlC.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));

        // The cancelled call left the queue and was never sent; the one behind it keeps waiting, then runs.
        Assert.Equal(1, remote.Channel.Waiting);
        Assert.Equal(OperatorLimits.MaxInFlight, remote.Channel.InFlight);
        release.SetResult();
        Assert.All(await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(30)), r => Assert.Equal(CommandStatus.Succeeded, Assert.Single(r).Status));
        Assert.Equal(CommandStatus.Succeeded, Assert.Single(await alsoWaiting.WaitAsync(TimeSpan.FromSeconds(30))).Status);
        Assert.Equal(["web-02"], _transport.Called.Where(n => n == "web-02"));
        await WaitUntil(() => remote.Channel.InFlight == 0);
        Assert.Equal(0, remote.Channel.Waiting);
        Assert.Equal(0, remote.Channel.BytesInFlight);
    }

    [Fact]
    public async Task ACallerTimeout_EndsTheWaitWithoutSendingTheCall()
    {
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var held = await TakeEveryPlaceAsync(remote);

        using var timeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => remote.SearchAsync(new ClientQuery(), timeout.Token));
        Assert.Equal(0, remote.Channel.Waiting);
        release.SetResult();
        await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, (await remote.SearchAsync(new ClientQuery(), CancellationToken.None)).Clients.Count);
    }

    [Fact]
    public async Task WaitingCalls_FailWithTheConnection_NeverHang()
    {
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var held = await TakeEveryPlaceAsync(remote);
        var waiting = Task.Run(() => remote.SearchAsync(new ClientQuery(), CancellationToken.None));
        await WaitUntil(() => remote.Channel.Waiting == 1);

        _clientSide!.Shutdown(SocketShutdown.Both); // the ssh connection drops
        await Assert.ThrowsAsync<OperatorConnectionLostException>(() => waiting.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.All(await Task.WhenAll(held).WaitAsync(TimeSpan.FromSeconds(10)), r => Assert.Equal(RemoteOperator.ConnectionLostMessage, Assert.Single(r).Error));
        release.SetResult();
    }

    [Fact]
    public async Task ANinthTransfer_WaitsForAPlace_WhileOtherCallsStillPass()
    {
        // A client whose tunnel accepts and never answers: each upload to it waits in the tunnel handshake.
        using var silent = new TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        _fleet.AddClient("5a5a5a5a-0009", "silent-01", true, ((System.Net.IPEndPoint)silent.LocalEndpoint).Port);
        await using var remote = await ConnectAsync();
        var args = OperatorOperations.ToElement(new TransferArgs { Client = "silent-01", RemotePath = "/tmp/x", Size = 1 });
        var transfers = new List<OperatorCall>();
        for (var i = 0; i < OperatorLimits.MaxTransfersInFlight; i++)
        {
            transfers.Add(await remote.Channel.StartAsync(OperatorOperations.Upload, args, CancellationToken.None));
        }

        var ninth = remote.Channel.StartAsync(OperatorOperations.Upload, args, CancellationToken.None);
        await WaitUntil(() => remote.Channel.Waiting == 1);

        // A search is no transfer: it passes the waiting one and is answered.
        Assert.Equal(3, (await remote.SearchAsync(new ClientQuery(), CancellationToken.None)).Clients.Count);
        Assert.False(ninth.IsCompleted);

        // One transfer ends (cancelled): the ninth gets its place once the service said so.
        await transfers[0].DisposeAsync();
        await using var started = await ninth.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(OperatorLimits.MaxTransfersInFlight, remote.Channel.InFlight);
        foreach (var call in transfers.Skip(1))
        {
            await call.DisposeAsync();
        }
    }

    [Fact]
    public async Task CallsHoldingLargeArguments_WaitForBytesToFree_ThenRun()
    {
        // 8 calls of 4 MB of stdin: 6 fit in the service's 24 MiB of arguments in flight, the other 2 wait (never BUSY).
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        await using var remote = await ConnectAsync();
        var stdin = new string('a', 4_000_000);
        var args = new RunCommandsArgs { Targets = new TargetSelection { Clients = ["web-01"] }, Request = new CommandRequest { Command = "cat", Stdin = stdin } };
        var runs = Enumerable.Range(0, 8).Select(_ => Task.Run(() => CollectAsync(remote.RunCommandsAsync(args, null, CancellationToken.None)))).ToArray();
        await WaitUntil(() => _transport.Calls == 6 && remote.Channel.Waiting == 2);
        Assert.InRange(remote.Channel.BytesInFlight, 6 * 4_000_000, OperatorLimits.MaxArgumentBytesInFlight);

        release.SetResult();
        Assert.All(await Task.WhenAll(runs).WaitAsync(TimeSpan.FromSeconds(60)), r => Assert.Equal(CommandStatus.Succeeded, Assert.Single(r).Status));
        Assert.Equal(8, _transport.Calls);
    }

    [Fact]
    public async Task AClientThatDoesNotCount_IsStillRefusedBusy_PastTheBound()
    {
        // The service's own bound stays the defence: raw frames, sent without waiting, past 64 in flight.
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        var stream = new NetworkStream(_clientSide!, ownsSocket: false);
        var body = OperatorOperations.ToElement(Run("deploy", "web-01"));
        for (var id = 1; id <= OperatorLimits.MaxInFlight + 1; id++)
        {
            await OperatorFrames.WriteMessageAsync(stream, new OperatorMessage { Type = OperatorMessageTypes.Call, Id = id, Op = OperatorOperations.RunCommands, Body = body });
        }

        var refused = await ReadUntilEndOfAsync(stream, OperatorLimits.MaxInFlight + 1);
        Assert.Equal(OperatorMessageTypes.Error, refused.Type);
        Assert.Equal(OperatorErrorCodes.Busy, refused.Error!.Code);
        await WaitUntil(() => _transport.Calls == OperatorLimits.MaxInFlight);
        release.SetResult();
        await ReadUntilEndOfAsync(stream, 1);
        Assert.Equal(OperatorLimits.MaxInFlight, _transport.Calls);
    }

    [Fact]
    public async Task AClientThatDoesNotCount_IsStillRefusedBusy_PastTheTransferBound()
    {
        using var silent = new TcpListener(System.Net.IPAddress.Loopback, 0);
        silent.Start();
        _fleet.AddClient("5a5a5a5a-0009", "silent-01", true, ((System.Net.IPEndPoint)silent.LocalEndpoint).Port);
        var stream = new NetworkStream(_clientSide!, ownsSocket: false);
        var body = OperatorOperations.ToElement(new TransferArgs { Client = "silent-01", RemotePath = "/tmp/x", Size = 1 });
        for (var id = 1; id <= OperatorLimits.MaxTransfersInFlight + 1; id++)
        {
            await OperatorFrames.WriteMessageAsync(stream, new OperatorMessage { Type = OperatorMessageTypes.Call, Id = id, Op = OperatorOperations.Upload, Body = body });
        }

        var refused = await ReadUntilEndOfAsync(stream, OperatorLimits.MaxTransfersInFlight + 1);
        Assert.Equal(OperatorErrorCodes.Busy, refused.Error!.Code);
        Assert.Contains("transfers", refused.Error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task AClientThatDoesNotCount_IsStillRefusedBusy_PastTheArgumentBytes()
    {
        var release = new TaskCompletionSource();
        _transport.Hold("web-01", release.Task, FakeTransport.Exit(0, "ok"));
        var stream = new NetworkStream(_clientSide!, ownsSocket: false);
        var body = OperatorOperations.ToElement(new RunCommandsArgs
        {
            Targets = new TargetSelection { Clients = ["web-01"] },
            Request = new CommandRequest { Command = "cat", Stdin = new string('a', 4_000_000) },
        });
        for (var id = 1; id <= 7; id++)
        {
            await OperatorFrames.WriteMessageAsync(stream, new OperatorMessage { Type = OperatorMessageTypes.Call, Id = id, Op = OperatorOperations.RunCommands, Body = body });
        }

        var refused = await ReadUntilEndOfAsync(stream, 7);
        Assert.Equal(OperatorErrorCodes.Busy, refused.Error!.Code);
        Assert.Contains("MiB of arguments", refused.Error.Message, StringComparison.Ordinal);
        release.SetResult();
    }

    /// <summary>Reads the service's frames until the end (result or error) of request <paramref name="id"/>.</summary>
    private static async Task<OperatorMessage> ReadUntilEndOfAsync(Stream stream, long id)
    {
        using var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (true)
        {
            var frame = await OperatorFrames.ReadAsync(stream, OperatorFrames.MaxFrameBytes, bound.Token) ?? throw new InvalidOperationException("the service closed the connection");
            if (frame.Id == id && frame.Message is { Type: OperatorMessageTypes.Result or OperatorMessageTypes.Error } end)
            {
                return end;
            }
        }
    }

    /// <summary>A stream whose flushes return late while <see cref="Slow"/> is set (the bytes are written already).</summary>
    private sealed class SlowFlushStream(Stream inner) : Stream
    {
        public volatile bool Slow;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async Task FlushAsync(CancellationToken cancellationToken)
        {
            await inner.FlushAsync(cancellationToken);
            if (Slow)
            {
                await Task.Delay(300, CancellationToken.None);
            }
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => inner.WriteAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting");
            await Task.Delay(20);
        }
    }
}
