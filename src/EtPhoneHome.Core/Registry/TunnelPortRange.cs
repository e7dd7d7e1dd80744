using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The server ports the hub hands out to approved keys, one port per key. sshd lets a key listen on its own port only
/// (<c>permitlisten="127.0.0.1:PORT"</c>), so a client can never receive connections meant for another client or for
/// the server's own services — which must therefore listen outside this range (the MCP endpoint refuses a port in it).
/// </summary>
public readonly record struct TunnelPortRange
{
    /// <summary>Registry setting where the running hub records its range, so other processes can keep out of it.</summary>
    public const string Setting = "tunnel_ports";

    /// <summary>20000–29999: below Linux's ephemeral range (32768–60999), so outgoing connections do not take them.</summary>
    public static TunnelPortRange Default { get; } = new(20000, 29999);

    public TunnelPortRange(int first, int last)
    {
        if (first is < 1024 or > 65535 || last is < 1024 or > 65535 || last < first)
        {
            throw new ArgumentException(
                $"a tunnel port range is FIRST-LAST with 1024 <= FIRST <= LAST <= 65535 (got {first}-{last}); ports below 1024 stay for the server's own services");
        }

        First = first;
        Last = last;
    }

    public int First { get; }
    public int Last { get; }
    public int Count => Last - First + 1;

    public bool Contains(int port) => port >= First && port <= Last;

    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{First}-{Last}");

    /// <summary>Parses <c>FIRST-LAST</c>; a clear <see cref="ArgumentException"/> for anything else.</summary>
    public static TunnelPortRange Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var parts = text.Split('-');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out var first)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out var last))
        {
            return new TunnelPortRange(first, last);
        }

        throw new ArgumentException($"a tunnel port range is FIRST-LAST, e.g. 20000-29999 (got \"{text}\")", nameof(text));
    }

    /// <summary>The range the hub of this registry uses (recorded when it starts), else the default.</summary>
    public static TunnelPortRange Of(ISettingsStore registry)
    {
        ArgumentNullException.ThrowIfNull(registry);
        try
        {
            return registry.GetSetting(Setting) is { } text ? Parse(text) : Default;
        }
        catch (ArgumentException)
        {
            return Default;
        }
    }

    /// <summary>
    /// Refuses a port for one of the server's own listeners (MCP over HTTP) when a client could be handed it.
    /// </summary>
    public static void EnsureServicePort(int port, TunnelPortRange range, string what)
    {
        if (range.Contains(port))
        {
            throw new ArgumentException(
                $"{what} port {port} lies in the tunnel port range {range}, which clients' reverse forwards may take; choose a port outside it (below 1024 is safest)");
        }
    }

    /// <summary>True when nothing listens on <paramref name="port"/> of the loopback address now.</summary>
    public static bool IsFree(string host, int port)
    {
        var address = IPAddress.TryParse(host, out var parsed) ? parsed : IPAddress.Loopback;
        using var probe = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            probe.Bind(new IPEndPoint(address, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
