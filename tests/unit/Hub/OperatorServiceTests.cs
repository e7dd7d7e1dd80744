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
        (_clientSide, _serverSide) = await UnixSocketPair.ConnectAsync(_dir);
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
    public async Task AReader_SearchingClients_GetsNeitherWebhookCredentialsNorTunnelPorts()
    {
        _fleet.Clients[0] = _fleet.Clients[0] with { WebhookUrl = "https://hook:s3cret@hooks.example/in?token=t0ken" };
        _role = OperatorRole.Reader;
        await using var remote = await ConnectAsync();
        var found = await remote.SearchAsync(new ClientQuery(), CancellationToken.None);
        var web01 = found.Clients.Single(c => c.DisplayName == "web-01");
        Assert.Equal("https://hooks.example/in?…", web01.WebhookUrl);
        Assert.All(found.Clients, c => Assert.Null(c.TunnelPort));
        Assert.All(found.Clients, c => Assert.Null(c.SessionId));
        Assert.True(web01.Online);
    }

    [Theory]
    [InlineData("rate")]
    [InlineData("paths")]
    [InlineData("clear-paths")]
    [InlineData("webhook")]
    public async Task AnOperator_CannotWidenItsOwnBounds_OrRedirectEvents_ThroughAClientEdit(string field)
    {
        await using var remote = await ConnectAsync();
        var update = field switch
        {
            "rate" => new ClientUpdate { RateLimitRpm = 100000 },
            "paths" => new ClientUpdate { AllowedPaths = ["/"] },
            "clear-paths" => new ClientUpdate { ClearAllowedPaths = true },
            _ => new ClientUpdate { WebhookUrl = "https://attacker.example/collect" },
        };
        var before = _fleet.Clients.Single(c => c.DisplayName == "web-01");
        var refused = await Assert.ThrowsAsync<OperatorRemoteException>(() => remote.UpdateClientAsync("web-01", update with { Purpose = "x" }, CancellationToken.None));
        Assert.Equal(OperatorErrorCodes.Forbidden, refused.Code);
        Assert.Equal("admin", refused.Error.Needs);
        Assert.Contains("nothing was changed", refused.Message, StringComparison.Ordinal);
        Assert.Equal(before, _fleet.Clients.Single(c => c.DisplayName == "web-01"));

        // The operator still edits names, purposes and tags; an admin changes the bounds too.
        var renamed = await remote.UpdateClientAsync("web-01", new ClientUpdate { Purpose = "frontend", AddTags = ["blue"] }, CancellationToken.None);
        Assert.Equal("frontend", renamed.Purpose);
        Assert.Null(renamed.TunnelPort);
        _role = OperatorRole.Admin;
        var bounded = await remote.UpdateClientAsync("web-01", new ClientUpdate { RateLimitRpm = 5 }, CancellationToken.None);
        Assert.Equal(5, bounded.RateLimitRpm);
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

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ARemovalOrDemotion_StopsWhatIsInFlight_EvenWithoutANewRequest(bool removed)
    {
        // A removed (or demoted) operator who sends nothing more keeps neither its connection nor its running fan-out.
        var role = OperatorRole.Operator;
        var gone = false;
        var service = new OperatorService(() => _fleet.Stores(), fp => gone ? null : new OperatorIdentity("bob", fp, role, null))
        {
            CommandTransport = _ => _transport,
            RoleCheckInterval = TimeSpan.FromMilliseconds(100),
        };
        var never = new TaskCompletionSource();
        _transport.Hold("web-01", never.Task);
        var started = 0;
        _transport.Started += _ => Interlocked.Increment(ref started);
        var path = Path.Combine(_dir, "bob");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var serving = service.ServeAsync(new NetworkStream(await listener.AcceptAsync(), ownsSocket: true), new OperatorIdentity("bob", "SHA256:bob", role, null), CancellationToken.None);
        var stream = new NetworkStream(client, ownsSocket: false);
        await using var remote = await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), Surfaces.Cli, CancellationToken.None);
        var results = new List<FleetCommandResult>();
        var run = Task.Run(async () =>
        {
            await foreach (var r in remote.RunCommandsAsync(Run("sleep 86400", "web-01"), null, CancellationToken.None))
            {
                results.Add(r);
            }
        });
        await WaitUntil(() => Volatile.Read(ref started) == 1);
        if (removed)
        {
            gone = true;
        }
        else
        {
            role = OperatorRole.Reader;
        }

        await run.WaitAsync(TimeSpan.FromSeconds(10));
        var result = Assert.Single(results);
        Assert.Equal(CommandStatus.Error, result.Status);
        Assert.Contains("cancelled", result.Error, StringComparison.Ordinal);
        if (removed)
        {
            await serving.WaitAsync(TimeSpan.FromSeconds(20));
            Assert.False(remote.IsOpen);
        }
        else
        {
            // A demoted reader keeps its connection, for what a reader may do.
            Assert.Equal(3, (await remote.SearchAsync(new ClientQuery(), CancellationToken.None)).Clients.Count);
        }
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

    [Fact]
    public async Task OneOperatorKey_HoldsABoundedNumberOfConnections_TheNextIsToldWhyAndClosed()
    {
        var service = new OperatorService(() => _fleet.Stores(), fp => new OperatorIdentity("mallory", fp, OperatorRole.Reader, null)) { CommandTransport = _ => _transport };
        var who = new OperatorIdentity("mallory", "SHA256:mallory", OperatorRole.Reader, "10.0.0.9");
        var held = new List<(Socket Client, Task Serving, RemoteOperator Remote)>();
        using var stop = new CancellationTokenSource();
        async Task<(Socket, Task, OperatorChannel)> OpenAsync(int n)
        {
            var path = Path.Combine(_dir, "m" + n);
            using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            listener.Bind(new UnixDomainSocketEndPoint(path));
            listener.Listen(1);
            var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await client.ConnectAsync(new UnixDomainSocketEndPoint(path));
            var server = await listener.AcceptAsync();
            var serving = service.ServeAsync(new NetworkStream(server, ownsSocket: true), who, stop.Token);
            var stream = new NetworkStream(client, ownsSocket: false);
            return (client, serving, new OperatorChannel(stream, stream));
        }

        try
        {
            for (var i = 0; i < OperatorService.MaxConnectionsPerOperator; i++)
            {
                var (client, serving, channel) = await OpenAsync(i);
                held.Add((client, serving, await RemoteOperator.OpenAsync(channel, Surfaces.Cli, CancellationToken.None)));
            }

            var (extra, extraServing, extraChannel) = await OpenAsync(100);
            var refused = await Assert.ThrowsAsync<OperatorConnectionLostException>(() => RemoteOperator.OpenAsync(extraChannel, Surfaces.Cli, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Contains($"already holds {OperatorService.MaxConnectionsPerOperator} connections", refused.Message, StringComparison.Ordinal);
            await extraServing.WaitAsync(TimeSpan.FromSeconds(10));
            extra.Dispose();

            // A closed connection frees its place.
            await held[0].Remote.DisposeAsync();
            held[0].Client.Dispose();
            await held[0].Serving.WaitAsync(TimeSpan.FromSeconds(20));
            var (again, againServing, againChannel) = await OpenAsync(101);
            await using (var remote = await RemoteOperator.OpenAsync(againChannel, Surfaces.Cli, CancellationToken.None))
            {
                Assert.Equal("mallory", remote.Identity.Operator);
            }

            again.Dispose();
        }
        finally
        {
            await stop.CancelAsync();
            foreach (var (client, serving, remote) in held.Skip(1))
            {
                await remote.DisposeAsync();
                client.Dispose();
            }
        }
    }

    [Fact]
    public async Task AServerThatSendsMoreBytesThanTheFileHas_IsRefusedBeforeTheyReachTheDisk()
    {
        using var a = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        var path = Path.Combine(_dir, "evil-download");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        listener.Listen(1);
        await a.ConnectAsync(new UnixDomainSocketEndPoint(path));
        using var evil = await listener.AcceptAsync();
        var evilStream = new NetworkStream(evil, ownsSocket: false);
        var server = Task.Run(async () =>
        {
            var hello = (await OperatorFrames.ReadAsync(evilStream))!.Value.Message!;
            await OperatorFrames.WriteMessageAsync(evilStream, new OperatorMessage
            {
                Type = OperatorMessageTypes.Result,
                Id = hello.Id,
                Body = OperatorOperations.ToElement(new HelloResult { Protocol = 1, ServerVersion = "9", Operator = "alice", Role = OperatorRole.Operator, Host = "evil" }),
            });
            var download = (await OperatorFrames.ReadAsync(evilStream))!.Value.Message!;
            await OperatorFrames.WriteMessageAsync(evilStream, new OperatorMessage
            {
                Type = OperatorMessageTypes.Item,
                Id = download.Id,
                Body = OperatorOperations.ToElement(new TransferReady { Offset = 0, Size = 10, RemotePath = "/etc/hostname", Uuid = "u", DisplayName = "web-01" }),
            });
            var chunk = new byte[OperatorFrames.MaxDataBytes];
            using var sha = System.Security.Cryptography.IncrementalHash.CreateHash(System.Security.Cryptography.HashAlgorithmName.SHA256);
            try
            {
                for (var i = 0; i < 3; i++)
                {
                    await OperatorFrames.WriteDataAsync(evilStream, download.Id, chunk);
                    sha.AppendData(chunk);
                }

                await OperatorFrames.WriteMessageAsync(evilStream, new OperatorMessage
                {
                    Type = OperatorMessageTypes.Result,
                    Id = download.Id,
                    Body = OperatorOperations.ToElement(new TransferDone { Size = 3 * chunk.Length, Sha256 = Convert.ToHexString(sha.GetHashAndReset()).ToLowerInvariant(), RemotePath = "/etc/hostname" }),
                });
            }
            catch (IOException)
            {
            }
        });
        var clientStream = new NetworkStream(a, ownsSocket: false);
        await using var remote = await RemoteOperator.OpenAsync(new OperatorChannel(clientStream, clientStream), Surfaces.Cli, CancellationToken.None);
        var local = Path.Combine(_dir, "hostname");
        var refused = await Assert.ThrowsAsync<ProtocolException>(() => remote.DownloadAsync("web-01", "/etc/hostname", local, null, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.Contains("more bytes than", refused.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(local));
        Assert.All(Directory.GetFiles(_dir), f => Assert.True(new FileInfo(f).Length <= 10, f));
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
