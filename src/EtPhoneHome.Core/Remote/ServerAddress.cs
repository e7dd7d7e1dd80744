using System.Globalization;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// Where an operator's ssh connects: the server host, its sshd port, the account and the key file. Every part is
/// checked when it is set, so nothing that reaches the ssh command line can start with '-' (be read as an option)
/// or hold characters ssh or a shell would interpret.
/// </summary>
public sealed record ServerAddress
{
    /// <summary>The longest host name accepted (a DNS name is at most 253 characters).</summary>
    public const int MaxHostNameLength = 253;

    /// <summary>The longest user name accepted.</summary>
    public const int MaxUserLength = 64;

    private readonly string _hostName = "";
    private readonly int _port = 22;
    private readonly string? _user;
    private readonly string? _keyFile;

    public ServerAddress(string hostName) => HostName = hostName;

    /// <summary>A DNS name, an IPv4 address or an IPv6 address (without brackets).</summary>
    public string HostName
    {
        get => _hostName;
        init => _hostName = CheckHostName(value);
    }

    /// <summary>The server's sshd port, 22 unless given.</summary>
    public int Port
    {
        get => _port;
        init => _port = value is >= 1 and <= 65535
            ? value
            : throw new ArgumentOutOfRangeException(nameof(Port), value, $"the port must be between 1 and 65535 (got {value.ToString(CultureInfo.InvariantCulture)})");
    }

    /// <summary>The account on the server; ssh's default (its config, else the local user name) when null.</summary>
    public string? User
    {
        get => _user;
        init => _user = value is null ? null : CheckUser(value);
    }

    /// <summary>The private key file ssh offers; the keys of ssh-agent and ssh's defaults when null. Must exist.</summary>
    public string? KeyFile
    {
        get => _keyFile;
        init => _keyFile = value is null ? null : CheckKeyFile(value);
    }

    /// <summary>The key the host key pins are kept under: <c>host:port</c> (<c>[v6]:port</c>), the host in lower case.</summary>
    public string PinKey => FormatHost(HostName.ToLowerInvariant()) + ":" + Port.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Parses <c>[user@]host[:port]</c>; an IPv6 address with a port is written in brackets (<c>[::1]:2222</c>), one
    /// without may be bare (<c>::1</c>). Throws <see cref="FormatException"/> naming what is wrong.
    /// </summary>
    public static ServerAddress Parse(string value, string? keyFile = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        var text = value.Trim();
        if (text.Length == 0)
        {
            throw new FormatException("the server address is empty; write it as [user@]host[:port]");
        }

        string? user = null;
        var at = text.LastIndexOf('@');
        if (at >= 0)
        {
            user = text[..at];
            text = text[(at + 1)..];
        }

        string host;
        int port = 22;
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
            {
                throw new FormatException($"the server address '{Show(value)}' opens a '[' it does not close");
            }

            host = text[1..close];
            var rest = text[(close + 1)..];
            if (rest.Length > 0)
            {
                port = rest.StartsWith(':') ? ParsePort(rest[1..], value) : throw new FormatException($"the server address '{Show(value)}' has '{Show(rest)}' after ']'; write [host]:port");
            }
        }
        else
        {
            var colon = text.IndexOf(':', StringComparison.Ordinal);
            if (colon >= 0 && colon == text.LastIndexOf(':'))
            {
                host = text[..colon];
                port = ParsePort(text[(colon + 1)..], value);
            }
            else
            {
                host = text; // no colon, or a bare IPv6 address
            }
        }

        try
        {
            return new ServerAddress(host) { Port = port, User = user, KeyFile = keyFile };
        }
        catch (ArgumentException ex)
        {
            throw new FormatException(ex.Message, ex);
        }
    }

    /// <summary>Like <see cref="Parse"/>, without throwing.</summary>
    public static bool TryParse(string? value, out ServerAddress? address)
    {
        address = null;
        if (value is null)
        {
            return false;
        }

        try
        {
            address = Parse(value);
            return true;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary><c>[user@]host[:port]</c>, the form <see cref="Parse"/> reads; the port only when it is not 22.</summary>
    public override string ToString()
    {
        var host = FormatHost(HostName);
        var s = User is null ? host : User + "@" + host;
        return Port == 22 ? s : s + ":" + Port.ToString(CultureInfo.InvariantCulture);
    }

    private static string FormatHost(string host) => host.Contains(':', StringComparison.Ordinal) ? "[" + host + "]" : host;

    private static int ParsePort(string text, string whole)
        => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535
            ? port
            : throw new FormatException($"the port in '{Show(whole)}' must be a number between 1 and 65535");

    private static string Show(string text) => Text.UntrustedText.ForTerminal(text, 80);

    internal static string CheckHostName(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.Length == 0)
        {
            throw new ArgumentException("the host name is empty", nameof(HostName));
        }

        if (value.Length > MaxHostNameLength)
        {
            throw new ArgumentException($"the host name is longer than {MaxHostNameLength} characters", nameof(HostName));
        }

        if (value[0] == '-')
        {
            throw new ArgumentException($"the host name '{Show(value)}' starts with '-', which ssh would read as an option", nameof(HostName));
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or ':'))
            {
                throw new ArgumentException($"the host name '{Show(value)}' holds '{Show(c.ToString())}'; a host name has letters, digits, '.', '-' and (IPv6) ':' only", nameof(HostName));
            }
        }

        return value;
    }

    internal static string CheckUser(string value)
    {
        if (value.Length == 0)
        {
            throw new ArgumentException("the user name is empty; leave out 'user@' to use ssh's default", nameof(User));
        }

        if (value.Length > MaxUserLength)
        {
            throw new ArgumentException($"the user name is longer than {MaxUserLength} characters", nameof(User));
        }

        if (value[0] == '-')
        {
            throw new ArgumentException($"the user name '{Show(value)}' starts with '-', which ssh would read as an option", nameof(User));
        }

        foreach (var c in value)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_'))
            {
                throw new ArgumentException($"the user name '{Show(value)}' holds '{Show(c.ToString())}'; a user name has letters, digits, '.', '-' and '_' only", nameof(User));
            }
        }

        return value;
    }

    internal static string CheckKeyFile(string value)
    {
        if (value.Length == 0)
        {
            throw new ArgumentException("the key file path is empty", nameof(KeyFile));
        }

        // ssh expands %tokens and ${VARIABLES} in identity file paths and splits option values on quotes.
        if (value.Any(c => char.IsControl(c) || c is '%' or '"' or '$'))
        {
            throw new ArgumentException($"the key file path '{Show(value)}' holds a character ssh would interpret (%, $, \" or a control character); move or rename the key", nameof(KeyFile));
        }

        var full = Path.GetFullPath(value);
        if (!File.Exists(full))
        {
            throw new ArgumentException($"the key file '{Show(full)}' does not exist", nameof(KeyFile));
        }

        return full;
    }
}
