using Npgsql;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Which engine holds the registry: SQLite in the data directory (the default), or a PostgreSQL database shared by
/// several hubs. Given as <c>sqlite</c>, a <c>postgresql://</c> (or <c>postgres://</c>) URI, a key=value connection
/// string (<c>Host=…;Database=…</c>), or <c>@FILE</c> / <c>file:FILE</c> naming a file that holds one of those (mode
/// 0600, so the password stays off command lines). A password may also come from <c>PGPASSWORD</c> or a
/// <c>~/.pgpass</c> file, as for psql. <see cref="ToString"/> never shows the password.
/// </summary>
public sealed class RegistrySource
{
    /// <summary>Environment variable naming the registry when no option does.</summary>
    public const string EnvironmentVariable = "ETPHONEHOME_REGISTRY";

    /// <summary>
    /// File of a data directory naming its registry (mode 0600), written by <c>eph-server init --registry</c>: every
    /// process of that data directory (hub, verbs run by sshd, cmdlets) then opens the same registry.
    /// </summary>
    public const string FileName = "registry.conf";

    private RegistrySource(string? connectionString, string display)
    {
        ConnectionString = connectionString;
        _display = display;
    }

    private readonly string _display;

    /// <summary>SQLite in the data directory.</summary>
    public static RegistrySource Sqlite { get; } = new(null, "sqlite");

    /// <summary>True for PostgreSQL.</summary>
    public bool IsPostgres => ConnectionString is not null;

    /// <summary>The Npgsql connection string (null for SQLite). Holds the password: never log it.</summary>
    internal string? ConnectionString { get; }

    /// <summary>Host, port, database, schema and user: what may be shown.</summary>
    public override string ToString() => _display;

    /// <summary>A PostgreSQL registry from a key=value connection string.</summary>
    public static RegistrySource Postgres(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(connectionString);
        }
        catch (ArgumentException)
        {
            // The message of the parser may quote the text, password included.
            throw new ArgumentException("the PostgreSQL connection string is not valid (expected Host=…;Database=…;Username=…, or a postgresql:// URI)");
        }

        if (string.IsNullOrEmpty(builder.Host))
        {
            throw new ArgumentException("the PostgreSQL connection string names no Host");
        }

        var schema = string.IsNullOrWhiteSpace(builder.SearchPath) ? "" : "?schema=" + builder.SearchPath;
        var user = string.IsNullOrEmpty(builder.Username) ? "" : builder.Username + "@";
        return new RegistrySource(builder.ConnectionString, $"postgresql://{user}{builder.Host}:{builder.Port}/{builder.Database}{schema}");
    }

    /// <summary>
    /// Reads a configuration value (option, environment variable or module setting): empty or <c>sqlite</c> is SQLite;
    /// <c>file:FILE</c> (or <c>@FILE</c>, except on eph-server's command line, where @ names a response file) reads the value from a file that only its owner may read.
    /// </summary>
    public static RegistrySource Parse(string? value) => Parse(value, inlinePassword: true);

    /// <summary>
    /// <see cref="Parse(string?)"/>; with <paramref name="inlinePassword"/> false a password written in the value itself is
    /// refused (command-line options and module settings land in process lists and shell history): it belongs in a
    /// file (<c>@FILE</c>), the environment, PGPASSWORD or ~/.pgpass.
    /// </summary>
    public static RegistrySource Parse(string? value, bool inlinePassword)
    {
        var source = ParseValue(value);
        if (!inlinePassword && source.ConnectionString is { } cs && !string.IsNullOrEmpty(new NpgsqlConnectionStringBuilder(cs).Password)
            && !(value ?? "").TrimStart().StartsWith('@') && !(value ?? "").TrimStart().StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            throw new ArgumentException(
                "a registry given on the command line or as a module setting must not hold its password (process lists and shell "
                + $"history show it): put the connection string in a file only you can read and give file:FILE, or set ${EnvironmentVariable}, PGPASSWORD or ~/.pgpass");
        }

        return source;
    }

    /// <summary>
    /// The registry of <paramref name="dir"/>: <paramref name="option"/> (--registry, Set-EphConfiguration -Registry) when
    /// given, else <see cref="EnvironmentVariable"/>, else the data directory's <see cref="FileName"/>, else SQLite.
    /// </summary>
    public static RegistrySource Resolve(DataDirectory dir, string? option)
        => Resolve(dir, option, Environment.GetEnvironmentVariable(EnvironmentVariable));

    /// <summary><see cref="Resolve(DataDirectory, string?)"/> with the environment variable's value given.</summary>
    internal static RegistrySource Resolve(DataDirectory dir, string? option, string? environment)
    {
        ArgumentNullException.ThrowIfNull(dir);
        if (!string.IsNullOrWhiteSpace(option))
        {
            return Parse(option, inlinePassword: false);
        }

        if (environment is { Length: > 0 } fromEnvironment)
        {
            return Parse(fromEnvironment);
        }

        var file = Path.Combine(dir.Path, FileName);
        return File.Exists(file) ? Parse("@" + file) : Sqlite;
    }

    /// <summary>Records <paramref name="value"/> (its file's content for @FILE) as the registry of <paramref name="dir"/>, mode 0600.</summary>
    public static void Record(DataDirectory dir, string value)
    {
        ArgumentNullException.ThrowIfNull(dir);
        var text = value.Trim();
        if (text.StartsWith('@') || text.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            text = ReadSecretFile(text.StartsWith('@') ? text[1..] : text[5..]);
        }

        _ = ParseValue(text);
        var file = Path.Combine(dir.Path, FileName);
        var options = new FileStreamOptions { Mode = FileMode.Create, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }

        using (var stream = new FileStream(file, options))
        using (var writer = new StreamWriter(stream))
        {
            writer.WriteLine(text);
        }

        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        }
    }

    private static RegistrySource ParseValue(string? value)
    {
        var text = value?.Trim() ?? "";
        if (text.Length == 0 || text.Equals("sqlite", StringComparison.OrdinalIgnoreCase))
        {
            return Sqlite;
        }

        if (text.StartsWith('@') || text.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            var path = text.StartsWith('@') ? text[1..] : text[5..];
            var content = ReadSecretFile(path);
            if (content.StartsWith('@') || content.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
            {
                throw new ArgumentException($"the registry file {Path.GetFullPath(path)} names another file; it must hold the connection string itself");
            }

            return ParseValue(content);
        }

        if (text.StartsWith("postgresql://", StringComparison.OrdinalIgnoreCase) || text.StartsWith("postgres://", StringComparison.OrdinalIgnoreCase))
        {
            return Postgres(FromUri(text));
        }

        if (text.Contains('=', StringComparison.Ordinal))
        {
            return Postgres(text);
        }

        throw new ArgumentException(
            "the registry must be 'sqlite', a postgresql:// URI, a PostgreSQL connection string (Host=…;Database=…), or file:FILE holding one");
    }

    /// <summary>The registry named by <see cref="EnvironmentVariable"/>, SQLite when it is unset.</summary>
    public static RegistrySource FromEnvironment() => Parse(Environment.GetEnvironmentVariable(EnvironmentVariable));

    private static string ReadSecretFile(string path)
    {
        path = Path.GetFullPath(path.Trim());
        if (!File.Exists(path))
        {
            throw new ArgumentException($"the registry file {path} does not exist");
        }

        if (!OperatingSystem.IsWindows() && (File.GetUnixFileMode(path) & (UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.OtherRead | UnixFileMode.OtherWrite)) != 0)
        {
            throw new ArgumentException($"the registry file {path} may be read by others; it holds a password: chmod 600 {path}");
        }

        return File.ReadAllText(path).Trim();
    }

    /// <summary>postgresql://user:password@host:port/database?schema=…&amp;sslmode=… as a key=value connection string.</summary>
    internal static string FromUri(string uri)
    {
        Uri parsed;
        try
        {
            parsed = new Uri(uri);
        }
        catch (UriFormatException)
        {
            throw new ArgumentException("the postgresql:// URI is not valid (postgresql://user@host:port/database)");
        }

        var builder = new NpgsqlConnectionStringBuilder { Host = parsed.Host };
        if (!parsed.IsDefaultPort && parsed.Port > 0)
        {
            builder.Port = parsed.Port;
        }

        if (parsed.UserInfo.Length > 0)
        {
            var colon = parsed.UserInfo.IndexOf(':', StringComparison.Ordinal);
            builder.Username = Uri.UnescapeDataString(colon < 0 ? parsed.UserInfo : parsed.UserInfo[..colon]);
            if (colon >= 0)
            {
                builder.Password = Uri.UnescapeDataString(parsed.UserInfo[(colon + 1)..]);
            }
        }

        var database = Uri.UnescapeDataString(parsed.AbsolutePath.TrimStart('/'));
        if (database.Length > 0)
        {
            builder.Database = database;
        }

        foreach (var pair in parsed.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]).ToLowerInvariant();
            var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
            switch (key)
            {
                case "schema" or "search_path" or "searchpath": builder.SearchPath = value; break;
                case "sslmode": builder.SslMode = Enum.Parse<SslMode>(value.Replace("-", "", StringComparison.Ordinal), ignoreCase: true); break;
                case "application_name": builder.ApplicationName = value; break;
                case "connect_timeout": builder.Timeout = int.Parse(value, System.Globalization.CultureInfo.InvariantCulture); break;
                default: throw new ArgumentException($"the postgresql:// URI has an unknown parameter '{key}' (known: schema, sslmode, application_name, connect_timeout)");
            }
        }

        return builder.ConnectionString;
    }
}

/// <summary>The registry's database cannot be reached or opened; the message names it without secrets.</summary>
public sealed class RegistryUnavailableException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>What went wrong, in one line that quotes no connection string.</summary>
    internal static string Describe(Exception ex) => ex switch
    {
        Npgsql.PostgresException pg => $"{pg.SqlState}: {pg.MessageText}",
        { InnerException: System.Net.Sockets.SocketException socket } => socket.Message,
        _ => ex.Message,
    };
}
