using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Server.Mcp;

/// <summary>
/// The MCP HTTP bearer key on disk: created by <c>eph-server init</c> (256 random bits, mode 0600), read only from a file
/// no other user can read — the key gives whoever holds it the whole fleet.
/// </summary>
internal static class McpHttpKey
{
    private const UnixFileMode OwnerOnly = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode GroupOrOther = UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute
        | UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Creates the key file when it does not exist; true when it was created. Never overwrites a key.</summary>
    public static bool EnsureFile(string path)
    {
        var key = Base64Url(RandomNumberGenerator.GetBytes(32));
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = OwnerOnly;
        }

        try
        {
            using var stream = new FileStream(path, options);
            stream.Write(Encoding.ASCII.GetBytes(key + "\n"));
            return true;
        }
        catch (IOException) when (File.Exists(path))
        {
            return false;
        }
    }

    /// <summary>
    /// Reads a key file; refuses one that other users can read or write (as ssh refuses a private key with loose
    /// permissions) or that is a link.
    /// </summary>
    public static string Read(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new ArgumentException($"the MCP API key file {path} does not exist");
        }

        if (info.LinkTarget is not null)
        {
            throw new ArgumentException($"the MCP API key file {path} is a link; give the file itself");
        }

        if (!OperatingSystem.IsWindows() && (info.UnixFileMode & GroupOrOther) != 0)
        {
            throw new ArgumentException(
                $"the MCP API key file {path} is accessible to other users (mode {Convert.ToString((int)info.UnixFileMode, 8)}); run chmod 600 on it");
        }

        return File.ReadAllText(path).Trim();
    }

    private static string Base64Url(byte[] bytes) =>
        Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}
