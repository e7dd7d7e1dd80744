namespace EtPhoneHome.Agent;

/// <summary>A command-line mistake: reported with the command's usage, exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>
/// Parsed options of one verb: <c>--name value</c>, <c>--name=value</c>, repeatable options and flags.
/// Unknown options and stray arguments are usage errors.
/// </summary>
public sealed class CommandLine
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    private CommandLine()
    {
    }

    public bool Help { get; private set; }

    /// <param name="args">Arguments after the verb.</param>
    /// <param name="valueOptions">Options that take a value (without the leading dashes).</param>
    /// <param name="flagOptions">Options without a value.</param>
    public static CommandLine Parse(IReadOnlyList<string> args, IReadOnlyCollection<string> valueOptions, IReadOnlyCollection<string> flagOptions)
    {
        var parsed = new CommandLine();
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h")
            {
                parsed.Help = true;
                continue;
            }

            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                throw new UsageException($"unexpected argument '{arg}'");
            }

            var name = arg[2..];
            string? inlineValue = null;
            var eq = name.IndexOf('=', StringComparison.Ordinal);
            if (eq >= 0)
            {
                inlineValue = name[(eq + 1)..];
                name = name[..eq];
            }

            if (flagOptions.Contains(name))
            {
                if (inlineValue is not null)
                {
                    throw new UsageException($"--{name} takes no value");
                }

                parsed._flags.Add(name);
            }
            else if (valueOptions.Contains(name))
            {
                var value = inlineValue;
                if (value is null)
                {
                    if (i + 1 >= args.Count)
                    {
                        throw new UsageException($"--{name} needs a value");
                    }

                    value = args[++i];
                }

                if (!parsed._values.TryGetValue(name, out var list))
                {
                    parsed._values[name] = list = [];
                }

                list.Add(value);
            }
            else
            {
                throw new UsageException($"unknown option --{name}");
            }
        }

        return parsed;
    }

    public bool Flag(string name) => _flags.Contains(name);

    /// <summary>The single value of an option, or null; given twice is a usage error.</summary>
    public string? Value(string name)
    {
        if (!_values.TryGetValue(name, out var list))
        {
            return null;
        }

        return list.Count == 1 ? list[0] : throw new UsageException($"--{name} given more than once");
    }

    public string Required(string name) =>
        Value(name) is { Length: > 0 } v ? v : throw new UsageException($"--{name} is required");

    public IReadOnlyList<string> Values(string name) => _values.TryGetValue(name, out var list) ? list : [];

    public int Port(string name, int defaultValue)
    {
        var raw = Value(name);
        if (raw is null)
        {
            return defaultValue;
        }

        return int.TryParse(raw, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var port) && port is >= 1 and <= 65535
            ? port
            : throw new UsageException($"--{name} must be a port number 1..65535 (got '{raw}')");
    }

    /// <summary>The config directory: --config-dir, else $ETPHONEHOME_AGENT_DIR, else ~/.etphonehome-agent.</summary>
    public string ConfigDir() => Value("config-dir") is { Length: > 0 } dir ? dir : AgentDirectory.Default();
}
