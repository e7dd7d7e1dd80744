using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Where a hub's id comes from. The id must be stable across the hub's restarts (a restarted hub adopts the sessions it
/// held) and distinct between hubs sharing a registry, even two on one machine (each has its own data directory,
/// which holds its socket and lock). So: the value given (<c>--hub-id</c>, $ETPHONEHOME_HUB_ID), else the data
/// directory's <c>hub-id</c> file, written at the first start as the machine's name and a random suffix (machine names
/// repeat across cloned hosts and containers; the file does not move with a clone of the name).
/// </summary>
public static class HubIdentity
{
    /// <summary>Environment variable naming the hub id.</summary>
    public const string EnvironmentVariable = "ETPHONEHOME_HUB_ID";

    /// <summary>The id given, else the one recorded in the data directory, else a new one recorded there.</summary>
    public static string Resolve(DataDirectory dir, string? given)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!string.IsNullOrWhiteSpace(given))
        {
            return HubIds.Validate(given.Trim());
        }

        var file = dir.HubIdFile;
        if (File.Exists(file))
        {
            var recorded = File.ReadAllText(file).Trim();
            try
            {
                return HubIds.Validate(recorded);
            }
            catch (ArgumentException)
            {
                throw new InvalidOperationException($"{file} does not hold a valid hub id; fix or delete it (a new id is then written)");
            }
        }

        var id = NewId(Environment.MachineName);
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        try
        {
            using var stream = new FileStream(file, options);
            stream.Write(Encoding.ASCII.GetBytes(id + "\n"));
            return id;
        }
        catch (IOException) when (File.Exists(file))
        {
            return HubIds.Validate(File.ReadAllText(file).Trim()); // Written by another process at the same moment.
        }
    }

    /// <summary>The machine name reduced to the id's characters, a dash and 8 random hex digits.</summary>
    internal static string NewId(string machineName)
    {
        var name = new string((machineName ?? string.Empty).Where(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '_' or '-').Take(40).ToArray())
            .TrimStart('.', '_', '-');
        var suffix = Convert.ToHexString(RandomNumberGenerator.GetBytes(4)).ToLowerInvariant();
        return HubIds.Validate(name.Length == 0 ? "hub-" + suffix : name + "-" + suffix);
    }
}
