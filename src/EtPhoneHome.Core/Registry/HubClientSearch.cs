using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json.Serialization.Metadata;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// A client search answered by the running hub over its unix socket, from the index it keeps warm: a one-shot process
/// on the server host (`eph-server clients`) then neither reads every client row nor builds an index of its own (about
/// 0.85 s at 100,000 clients). Only a process of the hub's own user is answered — that user can read the registry file
/// anyway, so nothing is gained by asking; any other caller (the fleet account's group may reach the socket) is refused.
/// Without a hub, or when it does not answer, the caller searches the registry itself.
/// </summary>
/// <remarks>
/// Wire: the caller sends a <see cref="GateRequest"/> with <see cref="Op"/>, then the <see cref="ClientQuery"/>; the hub
/// answers with pages of at most <see cref="PageSize"/> clients, the last one marked done and carrying the names that
/// matched nothing (or an error).
/// </remarks>
public static class HubClientSearch
{
    /// <summary>The first frame's op.</summary>
    public const string Op = "clients";

    /// <summary>Clients per page.</summary>
    public const int PageSize = 500;

    /// <summary>Largest query frame the hub reads.</summary>
    public const int MaxQueryBytes = 64 * 1024;

    /// <summary>One page of the answer.</summary>
    public sealed record Page
    {
        public ClientRecord[] Clients { get; init; } = [];

        public bool Done { get; init; }

        public string[]? NotFound { get; init; }

        /// <summary>Set on the last page when the search failed (the caller then searches itself).</summary>
        public string? Error { get; init; }
    }

    // Source-generated: a one-shot process decodes thousands of records, and reflection metadata plus unoptimized code
    // cost it about as much as the search itself.
    private static JsonTypeInfo<T> Type<T>() => (JsonTypeInfo<T>)HubSearchJson.Default.GetTypeInfo(typeof(T))!;

    /// <summary>
    /// The hub's answer to <paramref name="query"/>, or null when no hub runs on <paramref name="dir"/>, it refuses
    /// this caller, fails, or does not finish within <paramref name="timeout"/>.
    /// </summary>
    public static async Task<ClientLookup?> TryAsync(DataDirectory dir, ClientQuery query, TimeSpan timeout, CancellationToken ct = default)
    {
        ArgumentNullException.ThrowIfNull(dir);
        ArgumentNullException.ThrowIfNull(query);
        if (OperatingSystem.IsWindows() || !File.Exists(dir.HubSocket))
        {
            return null;
        }

        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        try
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(dir.HubSocket), deadline.Token).ConfigureAwait(false);
            await using var stream = new NetworkStream(socket, ownsSocket: false);
            await Wire.WriteAsync(stream, new GateRequest { Op = Op, Fingerprint = "" }, ProtocolJson.Default.GateRequest, deadline.Token).ConfigureAwait(false);
            await Wire.WriteAsync(stream, query, Type<ClientQuery>(), deadline.Token).ConfigureAwait(false);
            var clients = new List<ClientRecord>();
            while (true)
            {
                var page = await Wire.ReadAsync(stream, Type<Page>(), Framing.MaxFrameBytes, deadline.Token).ConfigureAwait(false);
                if (page is null || page.Error is not null)
                {
                    return null; // refused (closed without a page) or failed
                }

                clients.AddRange(page.Clients);
                if (page.Done)
                {
                    return new ClientLookup(clients, page.NotFound ?? []);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ProtocolException or System.Text.Json.JsonException)
        {
            return null;
        }
    }

    /// <summary>
    /// Serves one search on the hub: the peer must be a process of this process's own user (<paramref name="peerUid"/>,
    /// SO_PEERCRED); anyone else is closed on without an answer. Returns whether it was served.
    /// </summary>
    public static async Task<bool> ServeAsync(Stream stream, int? peerUid, Func<ClientQuery, ClientLookup> search, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(search);
        if (peerUid is not { } uid || OperatingSystem.IsWindows() || uid != (int)GetEffectiveUserId())
        {
            return false;
        }

        ClientQuery? query;
        using (var first = CancellationTokenSource.CreateLinkedTokenSource(ct))
        {
            first.CancelAfter(TimeSpan.FromSeconds(10));
            query = await Wire.ReadAsync(stream, Type<ClientQuery>(), MaxQueryBytes, first.Token).ConfigureAwait(false);
        }

        if (query is null)
        {
            return false;
        }

        ClientLookup lookup;
        try
        {
            lookup = search(query);
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException or System.Data.Common.DbException)
        {
            await Wire.WriteAsync(stream, new Page { Done = true, Error = ex.Message }, Type<Page>(), ct).ConfigureAwait(false);
            return true;
        }

        var pages = lookup.Clients.Chunk(PageSize).ToList();
        for (var i = 0; i < pages.Count - 1; i++)
        {
            await Wire.WriteAsync(stream, new Page { Clients = pages[i] }, Type<Page>(), ct).ConfigureAwait(false);
        }

        await Wire.WriteAsync(stream, new Page
        {
            Clients = pages.Count > 0 ? pages[^1] : [],
            Done = true,
            NotFound = [.. lookup.NotFound],
        }, Type<Page>(), ct).ConfigureAwait(false);
        return true;
    }

    /// <summary>The user id on the other end of a unix socket (SO_PEERCRED); null where it cannot be read.</summary>
    public static int? PeerUid(Socket socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }

        try
        {
            // struct ucred { pid_t pid; uid_t uid; gid_t gid; } at SOL_SOCKET (1), SO_PEERCRED (17).
            Span<byte> credentials = stackalloc byte[12];
            var n = socket.GetRawSocketOption(1, 17, credentials);
            return n >= 8 ? MemoryMarshal.Read<int>(credentials[4..]) : null;
        }
        catch (SocketException)
        {
            return null;
        }
    }

    [DllImport("libc", EntryPoint = "geteuid")]
    private static extern uint GetEffectiveUserId();
}

/// <summary>The JSON of <see cref="HubClientSearch"/> (the operator service's conventions: camelCase, enums as strings).</summary>
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull, UseStringEnumConverter = true, MaxDepth = 32)]
[JsonSerializable(typeof(HubClientSearch.Page))]
[JsonSerializable(typeof(ClientQuery))]
internal sealed partial class HubSearchJson : JsonSerializerContext;
