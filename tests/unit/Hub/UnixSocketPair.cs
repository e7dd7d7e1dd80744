using System.Net.Sockets;

namespace EtPhoneHome.Tests.Unit.Hub;

/// <summary>Two connected unix sockets in a private folder: the operator's end and the service's end of one connection.</summary>
internal static class UnixSocketPair
{
    public static async Task<(Socket Client, Socket Server)> ConnectAsync(string directory, string name = "s", CancellationToken ct = default)
    {
        Directory.CreateDirectory(directory);
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(Path.Combine(directory, name)));
        listener.Listen(1);
        var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await client.ConnectAsync(new UnixDomainSocketEndPoint(Path.Combine(directory, name)), ct);
        return (client, await listener.AcceptAsync(ct));
    }
}
