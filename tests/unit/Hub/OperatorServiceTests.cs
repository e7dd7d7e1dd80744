using System.Buffers.Binary;
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
/// The hub's operator service driven through a real socket pair with the operator's own client (<see cref="RemoteOperator"/>):
/// roles, streaming fan-out, cancellation, a dropped connection, multiplexing and hostile frames.
/// </summary>
public sealed class OperatorServiceTests : IAsyncLifetime
{
    private readonly FakeFleet _fleet = new();
    private readonly FakeTransport _transport = new();
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "eph-ops-" + Guid.NewGuid().ToString("N")[..8]);
    private OperatorRole _role = OperatorRole.Operator;
    private bool _removed;
    private Socket? _serverSide;
    private Socket? _clientSide;
    private Task? _serving;
    private readonly CancellationTokenSource _stop = new();

    public OperatorServiceTests()
    {
        _fleet.AddClient("3f2a9c1e-0001", "web-01", true, 40001, "web");
        _fleet.AddClient("3f2a9c1e-0002", "web-02", true, 40002, "web");
        _fleet.AddClient("9b1c0000-0003", "db-01", false, 0, "db");
    }

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(_dir);
        var path = Path.Combine(_dir, "s");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        _clientSide = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await _clientSide.ConnectAsync(new UnixDomainSocketEndPoint(path));
        _serverSide = await listener.AcceptAsync();
        var service = new OperatorService(() => _fleet.Stores(), fp => _removed ? null : new OperatorIdentity("alice", fp, _role, "10.0.0.5"))
        {
            CommandTransport = _ => _transport,
            HostName = "hub-test",
        };
        _serving = service.ServeAsync(new NetworkStream(_serverSide, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", _role, "10.0.0.5"), _stop.Token);
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

    [Fact]
    public async Task Hello_SaysWhoTheServerThinksWeAre()
    {
        await using var remote = await ConnectAsync();
        Assert.Equal("alice", remote.Identity.Operator);
        Assert.Equal(OperatorRole.Operator, remote.Identity.Role);
        Assert.Equal("hub-test", remote.Identity.Host);
        Assert.Equal("10.0.0.5", remote.Identity.Source);
    }

    [Fact]
    public async Task FanOut_StreamsOneResultPerTarget_AndRecordsTheOperator()
    {
        await using var remote = await ConnectAsync();
        _transport.Answer("web-01", FakeTransport.Exit(0, "one"));
        _transport.Answer("web-02", FakeTransport.Exit(3, "two"));
        IReadOnlyList<RemoteTarget>? targets = null;
        var results = new List<FleetCommandResult>();
        await foreach (var r in remote.RunCommandsAsync(Run("uptime", "web-*", "db-01"), t => targets = t, CancellationToken.None))
        {
            results.Add(r);
        }

        Assert.Equal(3, targets!.Count);
        Assert.Equal(3, results.Count);
        Assert.Equal(CommandStatus.Succeeded, results.Single(r => r.DisplayName == "web-01").Status);
        Assert.Equal("one", results.Single(r => r.DisplayName == "web-01").Stdout);
        Assert.Equal(3, results.Single(r => r.DisplayName == "web-02").ExitCode);
        Assert.Equal(CommandStatus.Offline, results.Single(r => r.DisplayName == "db-01").Status);
    }

    [Fact]
    public async Task AReader_IsRefusedCommands_ToldTheRoleItNeeds_AndNothingRuns()
    {
        _role = OperatorRole.Reader;
        await using var remote = await ConnectAsync();
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in remote.RunCommandsAsync(Run("rm -rf /", "web-01"), null, CancellationToken.None))
            {
            }
        });
        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal("operator", refused.Error.Needs);
        Assert.Contains("needs the operator role", refused.Message, StringComparison.Ordinal);
        Assert.Equal(0, _transport.Calls);

        // A reader still searches.
        var found = await remote.SearchAsync(new ClientQuery { Tags = ["web"] }, CancellationToken.None);
        Assert.Equal(2, found.Clients.Count);
    }

    [Fact]
    public async Task AnOperator_CannotApproveKeys_OnlyAnAdminCan()
    {
        await using var remote = await ConnectAsync();
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.ApproveKeyAsync("SHA256:whatever", CancellationToken.None));
        Assert.Equal("admin", refused.Error.Needs);
    }

    [Fact]
    public async Task ADemotion_AppliesToTheNextRequest_AndARemovalEndsTheConnection()
    {
        await using var remote = await ConnectAsync();
        _role = OperatorRole.Reader;
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in remote.RunCommandsAsync(Run("true", "web-01"), null, CancellationToken.None))
            {
            }
        });
        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);

        _removed = true;
        var removed = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.SearchAsync(new ClientQuery(), CancellationToken.None));
        Assert.Contains("was removed", removed.Message, StringComparison.Ordinal);
        await _serving!.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task AnOperator_EditsNamesAndTags_ButNotTheRulesItWorksUnder()
    {
        await using var remote = await ConnectAsync();
        var tagged = await remote.UpdateClientAsync("web-01", new ClientUpdate { AddTags = ["blue"] }, CancellationToken.None);
        Assert.Contains("blue", tagged.Tags);

        foreach (var policy in new[]
        {
            new ClientUpdate { ClearAllowedPaths = true },
            new ClientUpdate { AllowedPaths = ["/"] },
            new ClientUpdate { RateLimitRpm = 100000 },
            new ClientUpdate { WebhookUrl = "https://attacker.example/hook" },
        })
        {
            var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.UpdateClientAsync("web-01", policy with { AddTags = ["red"] }, CancellationToken.None));
            Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
            Assert.Equal("admin", refused.Error.Needs);
        }

        var after = (await remote.SearchAsync(new ClientQuery { Names = ["web-01"] }, CancellationToken.None)).Clients.Single();
        Assert.DoesNotContain("red", after.Tags);
        Assert.Null(after.WebhookUrl);
    }

    [Fact]
    public async Task UnknownNames_RefuseTheWholeFanOut_NamingThem()
    {
        await using var remote = await ConnectAsync();
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in remote.RunCommandsAsync(Run("true", "web-01", "wbe-02"), null, CancellationToken.None))
            {
            }
        });
        Assert.Equal(OperatorErrorCodes.NotFound, refused.Code);
        Assert.Equal(["wbe-02"], refused.Error.Names!);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task Cancelling_StopsTheRemoteCommands_AndEveryTargetStillGetsAResult()
    {
        var never = new TaskCompletionSource();
        _transport.Hold("web-01", never.Task);
        _transport.Hold("web-02", never.Task);
        var started = 0;
        _transport.Started += _ => Interlocked.Increment(ref started);
        await using var remote = await ConnectAsync();
        using var ctrlC = new CancellationTokenSource();
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in remote.RunCommandsAsync(Run("sleep 600", "web-01", "web-02"), null, ctrlC.Token))
            {
                results.Add(r);
            }
        });
        await WaitUntil(() => Volatile.Read(ref started) == 2);
        await ctrlC.CancelAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(2, results.Count);
        Assert.All(results, r => Assert.Equal(CommandStatus.Error, r.Status));
        Assert.All(results, r => Assert.Contains("cancelled", r.Error, StringComparison.Ordinal));
    }

    [Fact]
    public async Task ADroppedConnection_MidFanOut_GivesEveryTargetAResult_NeverAHang()
    {
        var never = new TaskCompletionSource();
        _transport.Answer("web-01", FakeTransport.Exit(0, "done"));
        _transport.Hold("web-02", never.Task);
        var started = 0;
        _transport.Started += _ => Interlocked.Increment(ref started);
        await using var remote = await ConnectAsync();
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in remote.RunCommandsAsync(Run("deploy", "web-01", "web-02"), null, CancellationToken.None))
            {
                results.Add(r);
                if (r.DisplayName == "web-01")
                {
                    _clientSide!.Shutdown(SocketShutdown.Both); // the ssh connection drops
                }
            }
        });
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(["web-01", "web-02"], results.Select(r => r.DisplayName).Order());
        var lost = results.Single(r => r.DisplayName == "web-02");
        Assert.Equal(CommandStatus.Error, lost.Status);
        Assert.Equal(RemoteOperator.ConnectionLostMessage, lost.Error);
        Assert.False(remote.IsOpen);
        await Assert.ThrowsAsync<OperatorConnectionLostException>(() => remote.SearchAsync(new ClientQuery(), CancellationToken.None));
    }

    [Fact]
    public async Task ManyRequests_InFlightAtOnce_EachGetsItsOwnAnswer()
    {
        var gate = new TaskCompletionSource();
        _transport.Hold("web-02", gate.Task, FakeTransport.Exit(0, "slow"));
        await using var remote = await ConnectAsync();
        var slow = Task.Run(async () =>
        {
            var list = new List<FleetCommandResult>();
            await foreach (var r in remote.RunCommandsAsync(Run("slow", "web-02"), null, CancellationToken.None))
            {
                list.Add(r);
            }

            return list;
        });
        // While the fan-out waits, searches on the same connection are answered.
        for (var i = 0; i < 20; i++)
        {
            Assert.Equal(3, (await remote.SearchAsync(new ClientQuery(), CancellationToken.None)).Clients.Count);
        }

        Assert.False(slow.IsCompleted);
        gate.SetResult();
        Assert.Equal("slow", Assert.Single(await slow.WaitAsync(TimeSpan.FromSeconds(10))).Stdout);
    }

    [Fact]
    public async Task AnInvalidRequest_IsRefusedBeforeAnyClientIsContacted()
    {
        await using var remote = await ConnectAsync();
        var args = new RunCommandsArgs { Targets = new TargetSelection { Clients = ["web-01"] }, Request = new CommandRequest { Command = "ls", WorkingDirectory = "relative/dir" } };
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(async () =>
        {
            await foreach (var _ in remote.RunCommandsAsync(args, null, CancellationToken.None))
            {
            }
        });
        Assert.Equal(OperatorErrorCodes.InvalidArgument, refused.Code);
        Assert.Equal(0, _transport.Calls);
    }

    [Fact]
    public async Task AnUnknownOperation_IsRefused_AndTheConnectionStaysUp()
    {
        await using var remote = await ConnectAsync();
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.InvokeAsync("registry.drop-everything", null, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.UnknownOperation, refused.Code);
        Assert.Equal(3, (await remote.SearchAsync(new ClientQuery(), CancellationToken.None)).Clients.Count);
    }

    [Theory]
    [InlineData("garbage-json")]
    [InlineData("unknown-kind")]
    [InlineData("unasked-data")]
    [InlineData("oversized")]
    public async Task AFrameThatBreaksTheProtocol_IsRefusedWithAClearError_AndTheServiceEndsTheConnectionCleanly(string kind)
    {
        var stream = new NetworkStream(_clientSide!, ownsSocket: false);
        byte[] frame = kind switch
        {
            "garbage-json" => Frame([OperatorFrames.Message, .. "{not json"u8.ToArray()]),
            "unknown-kind" => Frame([9, 1, 2, 3]),
            "unasked-data" => Frame([OperatorFrames.Data, 0, 0, 0, 7, 1, 2, 3]),
            _ => Header(OperatorFrames.MaxFrameBytes + 1),
        };
        await stream.WriteAsync(frame);
        var answer = await OperatorFrames.ReadAsync(stream);
        Assert.NotNull(answer);
        Assert.Equal(OperatorMessageTypes.Error, answer.Value.Message!.Type);
        Assert.Equal(OperatorErrorCodes.ProtocolViolation, answer.Value.Message.Error!.Code);
        Assert.Contains("closed", answer.Value.Message.Error.Message, StringComparison.Ordinal);
        await _serving!.WaitAsync(TimeSpan.FromSeconds(10)); // ended, did not throw
        Assert.Null(await OperatorFrames.ReadAsync(stream));
    }

    private static byte[] Frame(byte[] payload)
    {
        var frame = new byte[4 + payload.Length];
        BinaryPrimitives.WriteInt32BigEndian(frame, payload.Length);
        payload.CopyTo(frame, 4);
        return frame;
    }

    private static byte[] Header(int length)
    {
        var header = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, length);
        return header;
    }

    [Fact]
    public async Task AServerThatBreaksTheProtocol_EndsTheClientsRequestsWithAClearError()
    {
        // The operator's side is as strict: a hostile or broken server cannot make it hang or crash.
        using var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var path = Path.Combine(_dir, "evil");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        await a.ConnectAsync(new UnixDomainSocketEndPoint(path));
        using var evil = await listener.AcceptAsync();
        var clientStream = new NetworkStream(a, ownsSocket: false);
        await using var channel = new OperatorChannel(clientStream, clientStream);
        var pending = channel.InvokeAsync(OperatorOperations.Hello, null, CancellationToken.None);
        await evil.SendAsync(Header(int.MaxValue));
        var lost = await Assert.ThrowsAsync<OperatorConnectionLostException>(() => pending.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Contains("breaks the protocol", lost.Message, StringComparison.Ordinal);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "timed out waiting");
            await Task.Delay(20);
        }
    }
}
