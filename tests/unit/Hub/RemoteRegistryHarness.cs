using System.Net.Sockets;
using EtPhoneHome.Agent;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;
using EtPhoneHome.Hub;
using EtPhoneHome.Protocol;
using EtPhoneHome.Tests.Unit.Health;
using EtPhoneHome.Tests.Unit.Registry;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>
/// The hub's operator service over a real registry and a real in-process agent (one client, "web-01", whose allowed
/// paths are <see cref="RemoteDir"/>), reached through socket pairs: what files, webhooks, operators and the history do
/// through the service, as the cmdlets, the CLI and MCP see it. Each connection is a new socket pair and a new service
/// connection, as ssh gives one per session.
/// </summary>
internal sealed class RemoteRegistryHarness : IAsyncDisposable
{
    public static readonly EtPhoneHome.Core.Remote.HostKey Pinned = EtPhoneHome.Core.Remote.HostKey.Parse("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIL0mDcHDHricFye1yCfh6FHxzgWXPzt9ep9ORfxdi83x");

    /// <summary>A valid operator key line (an ed25519 public key).</summary>
    public const string OperatorKeyLine = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMTPVXin3yReBUrMsx3e6r5tVwi0q6O18ap4D3rqJxPX carol@laptop";

    private readonly byte[] _secret = TunnelHandshake.NewSecret();
    private readonly RpcServer _agent;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<Task> _serving = [];
    private readonly List<Socket> _sockets = [];

    public RemoteRegistryHarness()
    {
        RemoteDir = Directory.CreateDirectory(Path.Combine(Data.Root, "remote")).FullName;
        LocalDir = Directory.CreateDirectory(Path.Combine(Data.Root, "local")).FullName;
        _agent = new RpcServer(agentAllowedPaths: [RemoteDir]);
    }

    public TempData Data { get; } = new();

    public SqliteRegistry Registry { get; private set; } = null!;

    public ClientRecord Client { get; private set; } = null!;

    /// <summary>The agent's allowed directory.</summary>
    public string RemoteDir { get; }

    /// <summary>A directory for the operator's own files.</summary>
    public string LocalDir { get; }

    /// <summary>The role the registry gives the operator now (read on every request).</summary>
    public OperatorRole Role { get; set; } = OperatorRole.Operator;

    public ScriptedMetrics Metrics { get; } = new();

    public async Task StartAsync()
    {
        Registry = SqliteRegistry.Open(Data.Dir);
        Client = Keys.Admit(Registry, Keys.A, Keys.Identity(name: "web-01"));
        _agent.Start();
        _agent.SetSession(_secret, Client.Uuid, null);
        var session = Registry.OpenSession(Client.Uuid, Keys.A, "gw", _agent.Port, _secret, Environment.ProcessId, Environment.ProcessId);
        Registry.MarkSessionOnline(session.Id);
        await Task.CompletedTask;
    }

    /// <summary>A new operator connection as "alice" from 10.0.0.5, greeted with <paramref name="surface"/>.</summary>
    public async Task<RemoteOperator> ConnectAsync(string surface, CancellationToken ct)
    {
        var (client, server) = await UnixSocketPair.ConnectAsync(Data.Root, "s" + _sockets.Count, ct);
        _sockets.Add(client);
        var service = new OperatorService(() => RegistryStores.Borrow(Registry), fp => new OperatorIdentity("alice", fp, Role, "10.0.0.5"))
        {
            MetricsSource = _ => Metrics,
            HostName = "hub-test",
        };
        _serving.Add(service.ServeAsync(new NetworkStream(server, ownsSocket: true), new OperatorIdentity("alice", "SHA256:alice", Role, "10.0.0.5"), _stop.Token));
        var stream = new NetworkStream(client, ownsSocket: false);
        return await RemoteOperator.OpenAsync(new OperatorChannel(stream, stream), surface, ct);
    }

    /// <summary>A reconnecting server connection as the CLI, MCP and the cmdlets hold one.</summary>
    public RemoteServer Server(string surface) =>
        new(ServerAddress.Parse("ops@hub"), Pinned, ct => ConnectAsync(surface, ct));

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        try
        {
            await Task.WhenAll(_serving).WaitAsync(TimeSpan.FromSeconds(20));
        }
        catch (OperationCanceledException)
        {
        }

        await _agent.DisposeAsync();
        Registry?.Dispose();
        Data.Dispose();
    }
}
