using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Remote;

/// <summary>A connection saved by name: where to connect and the fingerprint of the host key pinned for it then.</summary>
public sealed record SavedConnection(string Name, ServerAddress Address, string? PinnedFingerprint);

/// <summary>
/// Connections saved by name (<c>Connect-EphServer -Name prod</c>), in <c>connections.json</c> of the
/// <see cref="ConnectionProfile"/> folder. The host key itself stays in <see cref="HostKeyPins"/>; a saved connection
/// records which fingerprint was pinned when it was saved, for display.
/// </summary>
public sealed class SavedConnections
{
    /// <summary>The file's name in the profile folder.</summary>
    public const string FileName = "connections.json";

    /// <summary>The longest connection name.</summary>
    public const int MaxNameLength = 64;

    // Relaxed escaping: the file is read by people and this program, never placed in HTML, so "+" stays "+".
    private static readonly JsonSerializerOptions s_json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping, WriteIndented = true, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    private readonly HostKeyPins _pins;

    /// <summary>Saved connections in the profile folder of <see cref="ConnectionProfile.Directory"/>.</summary>
    public SavedConnections()
        : this(ConnectionProfile.Directory)
    {
    }

    /// <summary>Saved connections in <paramref name="directory"/> (pins from the same folder).</summary>
    public SavedConnections(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        FilePath = Path.Combine(directory, FileName);
        _pins = new HostKeyPins(directory);
    }

    public string FilePath { get; }

    /// <summary>Saves (or replaces) <paramref name="name"/>; the fingerprint pinned for the address now is recorded with it.</summary>
    public SavedConnection Save(string name, ServerAddress address)
    {
        CheckName(name);
        ArgumentNullException.ThrowIfNull(address);
        var saved = new SavedConnection(name, address, _pins.Get(address)?.Fingerprint);
        return ConnectionProfile.Update(FilePath, () =>
        {
            var all = Load();
            all[name] = saved;
            Write(all);
            return saved;
        });
    }

    /// <summary>The connection saved as <paramref name="name"/>; null when there is none.</summary>
    public SavedConnection? Get(string name)
    {
        CheckName(name);
        return Load().TryGetValue(name, out var saved) ? saved : null;
    }

    /// <summary>Every saved connection, by name.</summary>
    public IReadOnlyList<SavedConnection> List() => [.. Load().Values.OrderBy(c => c.Name, StringComparer.Ordinal)];

    /// <summary>Forgets <paramref name="name"/>; false when it was not saved.</summary>
    public bool Remove(string name)
    {
        CheckName(name);
        return ConnectionProfile.Update(FilePath, () =>
        {
            var all = Load();
            if (!all.Remove(name))
            {
                return false;
            }

            Write(all);
            return true;
        });
    }

    /// <summary>Letters, digits, '.', '_' and '-', 1 to 64 characters, not starting with '-'.</summary>
    public static bool IsValidName(string? name)
        => name is { Length: >= 1 and <= MaxNameLength } && name[0] != '-'
           && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    private static void CheckName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!IsValidName(name))
        {
            throw new ArgumentException(
                $"the connection name '{UntrustedText.ForTerminal(name, 80)}' is not valid: use 1 to {MaxNameLength} letters, digits, '.', '_' or '-', not starting with '-'",
                nameof(name));
        }
    }

    private Dictionary<string, SavedConnection> Load()
    {
        string json;
        try
        {
            json = File.ReadAllText(FilePath);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            return new Dictionary<string, SavedConnection>(StringComparer.Ordinal);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConnectionProfileException($"cannot read the saved connections in {FilePath}: {ex.Message}", ex);
        }

        ConnectionsFile? file;
        try
        {
            file = JsonSerializer.Deserialize<ConnectionsFile>(json, s_json);
        }
        catch (JsonException ex)
        {
            throw Corrupt($"it is not valid JSON ({ex.Message})", ex);
        }

        var all = new Dictionary<string, SavedConnection>(StringComparer.Ordinal);
        foreach (var (name, entry) in file?.Connections ?? [])
        {
            if (!IsValidName(name) || entry?.Server is null)
            {
                throw Corrupt($"the entry '{UntrustedText.ForTerminal(name, 80)}' has an invalid name or no server");
            }

            try
            {
                var address = ServerAddress.Parse(entry.Server) with { KeyFile = null };
                address = entry.KeyFile is null ? address : address with { KeyFile = entry.KeyFile };
                all[name] = new SavedConnection(name, address, entry.PinnedFingerprint);
            }
            catch (Exception ex) when (ex is FormatException or ArgumentException)
            {
                throw Corrupt($"the entry '{name}' is not valid: {ex.Message}", ex);
            }
        }

        return all;
    }

    private ConnectionProfileException Corrupt(string why, Exception? inner = null) => new(
        $"the saved connections file {FilePath} is damaged: {why}. Fix it, or delete it and save the connections again", inner);

    private void Write(Dictionary<string, SavedConnection> all)
    {
        var file = new ConnectionsFile
        {
            Connections = all.Values.OrderBy(c => c.Name, StringComparer.Ordinal).ToDictionary(
                c => c.Name,
                c => (ConnectionEntry?)new ConnectionEntry
                {
                    Server = (c.Address with { KeyFile = null }).ToString(),
                    KeyFile = c.Address.KeyFile,
                    PinnedFingerprint = c.PinnedFingerprint,
                },
                StringComparer.Ordinal),
        };
        ConnectionProfile.WritePrivateFile(FilePath, JsonSerializer.Serialize(file, s_json) + "\n");
    }

    private sealed class ConnectionsFile
    {
        [JsonPropertyName("version")]
        public int Version { get; set; } = 1;

        [JsonPropertyName("connections")]
        public Dictionary<string, ConnectionEntry?>? Connections { get; set; }
    }

    private sealed class ConnectionEntry
    {
        [JsonPropertyName("server")]
        public string? Server { get; set; }

        [JsonPropertyName("keyFile")]
        public string? KeyFile { get; set; }

        [JsonPropertyName("pinnedFingerprint")]
        public string? PinnedFingerprint { get; set; }
    }
}
