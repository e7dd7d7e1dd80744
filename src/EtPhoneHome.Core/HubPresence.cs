using System.Net.Sockets;

namespace EtPhoneHome.Core;

/// <summary>Whether a hub runs on a data directory: what a restore must check, from any process, without the hub's code.</summary>
public static class HubPresence
{
    /// <summary>True while a hub runs on the data directory (it holds the hub lock, or something answers on its socket).</summary>
    public static bool IsRunning(DataDirectory dir)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (File.Exists(dir.HubSocket) && SocketAnswers(dir.HubSocket))
        {
            return true;
        }

        if (!File.Exists(dir.HubLockFile))
        {
            return false;
        }

        try
        {
            using var probe = new FileStream(dir.HubLockFile, FileMode.Open, FileAccess.ReadWrite, FileShare.None);
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    /// <summary>True when something accepts a connection on the unix socket at <paramref name="path"/>.</summary>
    public static bool SocketAnswers(string path)
    {
        using var probe = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            probe.Connect(new UnixDomainSocketEndPoint(path));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
