using System.CommandLine;
using EtPhoneHome.Core;

namespace EtPhoneHome.Server;

/// <summary>Options every verb shares, and how they resolve.</summary>
internal static class CommonOptions
{
    /// <summary>--data DIR: the server data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server).</summary>
    /// <summary>
    /// The registry every verb opens: sqlite (default), a postgresql:// URI or connection string without its password,
    /// or file:FILE holding one (mode 0600). Default $ETPHONEHOME_REGISTRY, else the data directory's registry.conf.
    /// </summary>
    public static Option<string?> Registry => new("--registry")
    {
        Description = "Registry: sqlite (default), postgresql://user@host/db?schema=S, or file:FILE holding a connection string (0600); "
                      + "default $ETPHONEHOME_REGISTRY, else the data directory's registry.conf (written by init --registry). Never put a password here.",
        Recursive = true,
    };

    public static Option<string?> Data => new("--data")
    {
        Description = "Server data directory (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server)",
    };

    /// <summary>--json: machine-readable output.</summary>
    public static Option<bool> Json => new("--json")
    {
        Description = "Print JSON instead of a table",
    };

    /// <summary>The data directory a parsed command line names (its --data, or the default), for messages.</summary>
    public static string DataDirectoryOf(ParseResult parseResult)
    {
        string? value = null;
        try
        {
            value = parseResult.GetValue<string?>("--data");
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException)
        {
            // This verb has no --data.
        }

        return DataDirectory.Resolve(value).Path;
    }

    /// <summary>Resolves the data directory from a parsed --data option.</summary>
    public static DataDirectory ResolveData(ParseResult parseResult, Option<string?> data)
        => DataDirectory.Resolve(parseResult.GetValue(data));
}
