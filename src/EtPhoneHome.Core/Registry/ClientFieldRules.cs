namespace EtPhoneHome.Core.Registry;

/// <summary>
/// The characters a client's display name and tags may hold, checked by the registry for every surface (cmdlets,
/// eph-server set, MCP update_client, an agent's hello). A display name is free text without control characters;
/// a tag is a word: it is typed after -Tag, matched with wildcards and joined with ';' in CSV exports, so spaces,
/// separators, quotes and wildcard characters have no place in it.
/// </summary>
public static class ClientFieldRules
{
    /// <summary>Longest tag.</summary>
    public const int MaxTagLength = 64;

    /// <summary>The rule, as errors state it.</summary>
    public const string TagRule = "each tag must be 1 to 64 letters, digits or - _ . : / @ + (no spaces, commas, semicolons, quotes or wildcards)";

    /// <summary>True for a tag that follows <see cref="TagRule"/>.</summary>
    public static bool IsValidTag(string? tag) =>
        tag is { Length: > 0 and <= MaxTagLength } && tag.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '/' or '@' or '+');

    /// <summary>True for a display name without control characters (its length is checked with the other limits).</summary>
    public static bool IsValidDisplayName(string? name) => name is not null && !name.Any(char.IsControl);

    /// <summary>A value quoted in an error: control characters shown as \uXXXX so the message stays one readable line.</summary>
    public static string Printable(string? value) =>
        string.Concat((value ?? "").Select(c => char.IsControl(c) ? $"\\u{(int)c:x4}" : c.ToString()));
}
