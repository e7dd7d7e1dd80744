using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Xunit;

namespace EtPhoneHome.Tests.Unit.Agent;

public sealed class RpcServerTests : IAsyncLifetime
{
    private const string Uuid = "5b0e0f52-8a3a-4c1e-9d55-6f1d3c2e7a10";
    private static readonly TimeSpan Handshake = TimeSpan.FromSeconds(10);
    private readonly string _dir = Directory.CreateTempSubdirectory("eph-agent-rpc-").FullName;
    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly RpcServer _server = new();

    public Task InitializeAsync()
    {
        _server.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private string Marker => Path.Combine(_dir, "marker");

    private RunCommandParams TouchMarker => new() { Cmd = $"touch '{Marker}'; echo ran", TimeoutS = 30 };

    [Fact]
    public async Task Connect_BeforeWelcomeIsRead_WaitsForTheSession()
    {
        // The hub connects right after sending the welcome; the agent may read the welcome a moment later.
        var connecting = TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        await Task.Delay(300);
        Assert.False(connecting.IsCompleted);
        _server.SetSession(_secret, Uuid, null);
        await using var client = await connecting;
        Assert.Equal(Uuid, client.Agent.Uuid);
    }

    [Fact]
    public async Task Connect_WithoutSession_IsClosedBeforeAnyFrame()
    {
        await using var server = new RpcServer(handshakeTimeout: TimeSpan.FromSeconds(1));
        server.Start();
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", server.Port);
        var stream = tcp.GetStream();
        var buffer = new byte[16];
        var read = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(0, read);
    }

    [Fact]
    public async Task Connect_WithWrongSecret_RunsNoCommand()
    {
        _server.SetSession(_secret, Uuid, null);
        var ex = await Assert.ThrowsAsync<ProtocolException>(() =>
            TunnelClient.ConnectAsync("127.0.0.1", _server.Port, TunnelHandshake.NewSecret(), Handshake, CancellationToken.None));
        Assert.Equal(ProtocolError.AuthenticationFailed, ex.Error);
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public async Task Connect_WithoutHandshake_RequestIsNeverRead()
    {
        _server.SetSession(_secret, Uuid, null);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();

        // Skip the handshake: send a request where the proof belongs.
        var request = new RpcRequest { Id = 1, Method = RpcMethods.RunCommand, Params = Wire.ToElement(TouchMarker, ProtocolJson.Default.RunCommandParams) };
        var challenge = await Wire.ReadAsync(stream, ProtocolJson.Default.HandshakeChallenge, 4096);
        Assert.NotNull(challenge);
        await Wire.WriteAsync(stream, request, ProtocolJson.Default.RpcRequest);
        await Wire.WriteAsync(stream, request, ProtocolJson.Default.RpcRequest);

        Assert.True(await ReadsToEndAsync(stream), "the agent should close the connection");
        Assert.False(File.Exists(Marker));
    }

    [Fact]
    public async Task FirstFrame_TellsAnUnauthenticatedPeerNothingButANonce()
    {
        // Any local user can connect to a tunnel port; the uuid it read here let a throw-away key claim the client.
        _server.SetSession(_secret, Uuid, null);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();
        var header = new byte[4];
        await stream.ReadExactlyAsync(header);
        var body = new byte[System.Buffers.Binary.BinaryPrimitives.ReadInt32BigEndian(header)];
        await stream.ReadExactlyAsync(body);
        var text = System.Text.Encoding.UTF8.GetString(body);

        using var frame = System.Text.Json.JsonDocument.Parse(text);
        Assert.Equal(["agent_nonce"], frame.RootElement.EnumerateObject().Select(p => p.Name));
        Assert.DoesNotContain(Uuid, text, StringComparison.Ordinal);
        Assert.DoesNotContain(ProtocolInfo.ProductVersion, text, StringComparison.Ordinal);
    }

    [Fact]
    public async Task TheAgentsIdentity_ReachesOnlyAPeerThatProvedTheSecret()
    {
        _server.SetSession(_secret, Uuid, null);
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        Assert.Equal(Uuid, client.Agent.Uuid);
        Assert.Equal(ProtocolInfo.ProductVersion, client.Agent.AgentVersion);

        var wrong = TunnelHandshake.NewSecret();
        var ex = await Assert.ThrowsAsync<ProtocolException>(() =>
            TunnelClient.ConnectAsync("127.0.0.1", _server.Port, wrong, Handshake, CancellationToken.None));
        Assert.DoesNotContain(Uuid, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Connect_AfterSessionCleared_IsRefused()
    {
        _server.SetSession(_secret, Uuid, null);
        _server.ClearSession();
        await Assert.ThrowsAsync<ProtocolException>(() =>
            TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None));
        Assert.False(_server.HasSession);
    }

    [Fact]
    public async Task RunCommand_WithRightSecret_ReturnsResult()
    {
        _server.SetSession(_secret, Uuid, null);
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        Assert.Equal(Uuid, client.Agent.Uuid);

        var result = await client.InvokeAsync(RpcMethods.RunCommand, TouchMarker,
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.Equal(0, result.ExitCode);
        Assert.Equal("ran\n", result.Stdout);
        Assert.True(File.Exists(Marker));

        var second = await client.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "exit 3" },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.Equal(3, second.ExitCode);
    }

    [Fact]
    public async Task Heartbeat_ReturnsUuidAndVersion()
    {
        _server.SetSession(_secret, Uuid, null);
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        var result = await client.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, CancellationToken.None);
        Assert.Equal(Uuid, result.Uuid);
        Assert.Equal(ProtocolInfo.ProductVersion, result.AgentVersion);
    }

    [Fact]
    public async Task UnknownMethod_IsMethodNotFound()
    {
        _server.SetSession(_secret, Uuid, null);
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        var ex = await Assert.ThrowsAsync<RpcException>(() => client.InvokeAsync("format_disk", null, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.MethodNotFound, ex.Code);

        // The connection stays usable after an error answer.
        var hb = await client.InvokeAsync(RpcMethods.Heartbeat, ProtocolJson.Default.HeartbeatResult, CancellationToken.None);
        Assert.Equal(Uuid, hb.Uuid);
    }

    [Theory]
    [InlineData("{}", "cmd")]
    [InlineData("{\"cmd\":\"\"}", "cmd")]
    [InlineData("{\"cmd\":\"true\",\"timeout_s\":0}", "timeout_s")]
    [InlineData("{\"cmd\":\"true\",\"timeout_s\":3601}", "3600")]
    [InlineData("{\"cmd\":\"true\",\"timeout_s\":\"soon\"}", "timeout_s")]
    public async Task RunCommand_InvalidParams_NamesTheField(string json, string expectedInMessage)
    {
        _server.SetSession(_secret, Uuid, null);
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        using var doc = JsonDocument.Parse(json);
        var ex = await Assert.ThrowsAsync<RpcException>(() => client.InvokeAsync(RpcMethods.RunCommand, doc.RootElement.Clone(), CancellationToken.None));
        Assert.Equal(RpcErrorCodes.InvalidParams, ex.Code);
        Assert.Contains(expectedInMessage, ex.Message);
    }

    [Fact]
    public async Task RunCommand_CwdOutsideAllowedPaths_IsPathDenied()
    {
        _server.SetSession(_secret, Uuid, new SessionSettings { AllowedPaths = [_dir] });
        await using var client = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        var ex = await Assert.ThrowsAsync<RpcException>(() => client.InvokeAsync(RpcMethods.RunCommand,
            new RunCommandParams { Cmd = $"touch '{Marker}'", Cwd = "/" }, ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None));
        Assert.Equal(RpcErrorCodes.PathDenied, ex.Code);
        Assert.False(File.Exists(Marker));

        var inside = await client.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = "pwd", Cwd = Path.Combine(_dir, ".") },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.Equal(0, inside.ExitCode);
    }

    [Fact]
    public async Task OversizedFrame_ClosesTheConnection()
    {
        _server.SetSession(_secret, Uuid, null);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();
        await TunnelHandshake.ConnectAsync(stream, _secret, CancellationToken.None);

        var header = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(header, Framing.MaxFrameBytes + 1);
        await stream.WriteAsync(header);
        await stream.FlushAsync();
        Assert.True(await ReadsToEndAsync(stream));
    }

    [Fact]
    public async Task MalformedJson_AnswersParseErrorThenCloses()
    {
        _server.SetSession(_secret, Uuid, null);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();
        await TunnelHandshake.ConnectAsync(stream, _secret, CancellationToken.None);

        await Framing.WriteFrameAsync(stream, Encoding.UTF8.GetBytes("{not json"));
        var response = await Wire.ReadAsync(stream, ProtocolJson.Default.RpcResponse);
        Assert.Equal(RpcErrorCodes.ParseError, response!.Error!.Code);
        Assert.True(await ReadsToEndAsync(stream));
    }

    [Fact]
    public async Task JsonThatIsNotARequest_AnswersInvalidRequest()
    {
        _server.SetSession(_secret, Uuid, null);
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", _server.Port);
        var stream = tcp.GetStream();
        await TunnelHandshake.ConnectAsync(stream, _secret, CancellationToken.None);

        await Framing.WriteFrameAsync(stream, Encoding.UTF8.GetBytes("{\"id\":7,\"params\":{}}"));
        var response = await Wire.ReadAsync(stream, ProtocolJson.Default.RpcResponse);
        Assert.Equal(7, response!.Id);
        Assert.Equal(RpcErrorCodes.InvalidRequest, response.Error!.Code);
    }

    [Fact]
    public async Task LongCommand_DoesNotBlockAnotherConnection()
    {
        _server.SetSession(_secret, Uuid, null);
        await using var slow = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        await using var fast = await TunnelClient.ConnectAsync("127.0.0.1", _server.Port, _secret, Handshake, CancellationToken.None);
        var slowRun = slow.InvokeAsync(RpcMethods.RunCommand, new RunCommandParams { Cmd = $"while [ ! -f '{Marker}' ]; do sleep 0.05; done; echo released", TimeoutS = 60 },
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        var fastResult = await fast.InvokeAsync(RpcMethods.RunCommand, TouchMarker,
            ProtocolJson.Default.RunCommandParams, ProtocolJson.Default.RunCommandResult, CancellationToken.None);
        Assert.Equal("ran\n", fastResult.Stdout);
        Assert.Equal("released\n", (await slowRun.WaitAsync(TimeSpan.FromSeconds(30))).Stdout);
    }

    private static async Task<bool> ReadsToEndAsync(NetworkStream stream)
    {
        var buffer = new byte[4096];
        try
        {
            while (true)
            {
                var n = await stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
                if (n == 0)
                {
                    return true;
                }
            }
        }
        catch (IOException)
        {
            return true; // reset by the agent
        }
        catch (TimeoutException)
        {
            return false;
        }
    }
}
