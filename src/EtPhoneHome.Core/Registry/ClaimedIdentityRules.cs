using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Limits of the client fields a person reads — the same for an operator's edit and for what an agent claims about
/// itself — and the one place where a claimed identity is made fit to store.
/// </summary>
/// <remarks>
/// Operators' edits that break a limit are refused (<see cref="RegistryValidationException"/>): the operator is there to
/// correct them. An agent's hello is not refused for them: the claim is unauthenticated text, and refusing it would only
/// hide the machine from the operators who must decide about it. Instead every claimed field is neutralised and cut:
/// characters that are not allowed become visible escapes (<see cref="UntrustedText"/>, ESC is stored as the four
/// characters <c>\x1b</c>) and an over-long value keeps its first characters and ends with '…'. Lists keep their first
/// entries. The stored value is then safe on every surface and still shows what the machine sent.
/// </remarks>
public static class ClaimedIdentityRules
{
    /// <summary>Longest display name (operator edits and claims).</summary>
    public const int MaxDisplayNameLength = 100;

    /// <summary>Longest purpose (operator edits and claims).</summary>
    public const int MaxPurposeLength = 200;

    /// <summary>Longest hostname: a DNS name's limit.</summary>
    public const int MaxHostnameLength = 253;

    /// <summary>Longest claimed platform ("linux-x64", an OS description).</summary>
    public const int MaxPlatformLength = 128;

    /// <summary>Longest claimed user name.</summary>
    public const int MaxUsernameLength = 64;

    /// <summary>Longest claimed agent version.</summary>
    public const int MaxAgentVersionLength = 64;

    /// <summary>Longest claimed uuid; a longer one, or one with other characters than letters, digits and '-', is dropped.</summary>
    public const int MaxUuidLength = 64;

    /// <summary>Most capabilities one client may claim.</summary>
    public const int MaxCapabilities = 64;

    /// <summary>Longest capability, in characters (the tag limit).</summary>
    public const int MaxCapabilityLength = SqliteRegistry.MaxTagLength;

    /// <summary>
    /// An operator's value for a free-text field: null when it is fine, else the message of the refusal. Control and
    /// format characters are refused (they would reach terminals and logs); the length limit is the caller's.
    /// </summary>
    public static string? CheckOperatorText(string field, string value) =>
        UntrustedText.HasUnsafeCharacters(value)
            ? $"{field} must not contain control or invisible formatting characters (got \"{UntrustedText.ForTerminal(value, 80)}\")"
            : null;

    /// <summary>The claimed identity with every field neutralised and cut to its limit (see the class remarks). Idempotent.</summary>
    public static AgentIdentity Normalise(AgentIdentity claimed)
    {
        ArgumentNullException.ThrowIfNull(claimed);
        return new AgentIdentity
        {
            ClaimedUuid = Uuid(claimed.ClaimedUuid),
            Hostname = Text(claimed.Hostname, MaxHostnameLength, IsHostnameCharacter),
            Platform = Text(claimed.Platform, MaxPlatformLength),
            Username = Text(claimed.Username, MaxUsernameLength),
            AgentVersion = Text(claimed.AgentVersion, MaxAgentVersionLength),
            Capabilities = List(claimed.Capabilities, MaxCapabilities, MaxCapabilityLength),
            DisplayName = Text(claimed.DisplayName, MaxDisplayNameLength),
            Purpose = Text(claimed.Purpose, MaxPurposeLength),
            Tags = List(claimed.Tags, SqliteRegistry.MaxTags, SqliteRegistry.MaxTagLength),
        };
    }

    // '\\' and '…' are what neutralising itself writes: kept, so a stored value normalises to itself.
    private static bool IsHostnameCharacter(char c) => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' or '_' or '\\' or UntrustedText.Ellipsis;

    private static string? Uuid(string? value) =>
        value is { Length: > 0 and <= MaxUuidLength } && value.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') ? value : null;

    private static string? Text(string? value, int max, Func<char, bool>? allowed = null)
    {
        var trimmed = value?.Trim();
        return string.IsNullOrEmpty(trimmed) ? null : UntrustedText.Neutralise(trimmed, max, allowed ?? (static _ => true));
    }

    private static List<string> List(IReadOnlyList<string>? values, int maxCount, int maxLength)
    {
        var result = new List<string>();
        var seen = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var value in values ?? [])
        {
            if (result.Count == maxCount)
            {
                break;
            }

            if (Text(value, maxLength) is { } entry && seen.Add(entry))
            {
                result.Add(entry);
            }
        }

        return result;
    }
}
