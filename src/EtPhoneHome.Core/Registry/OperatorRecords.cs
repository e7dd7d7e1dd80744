using System.Buffers.Binary;
using System.Text;
using System.Text.RegularExpressions;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// What an operator key may do through the hub's operator service. Ordered: each role may do what the roles below it may.
/// </summary>
public enum OperatorRole
{
    /// <summary>Reads the fleet: search, history, metrics, file reads. Runs nothing and changes nothing.</summary>
    Reader = 0,
    /// <summary>Operates the fleet: commands, file writes, transfers, client settings.</summary>
    Operator = 1,
    /// <summary>Everything, including key decisions and managing operators.</summary>
    Admin = 2,
}

/// <summary>The wire spelling of <see cref="OperatorRole"/>: <c>reader</c>, <c>operator</c>, <c>admin</c>.</summary>
public static class OperatorRoles
{
    /// <summary>Every role's wire spelling, lowest first.</summary>
    public static IReadOnlyList<string> All { get; } = ["reader", "operator", "admin"];

    public static string Wire(OperatorRole role) => role switch
    {
        OperatorRole.Reader => "reader",
        OperatorRole.Operator => "operator",
        OperatorRole.Admin => "admin",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "not an operator role"),
    };

    /// <summary>A role as written (any case, surrounding spaces ignored); refuses anything else naming the roles.</summary>
    /// <exception cref="RegistryValidationException">Not one of reader, operator, admin.</exception>
    public static OperatorRole Parse(string? text) =>
        TryParse(text, out var role) ? role
            : throw new RegistryValidationException("role", NotARole(text));

    /// <summary>Why <paramref name="text"/> is refused as a role (quoted escaped and cut: it may come from anyone's input).</summary>
    public static string NotARole(string? text) =>
        $"'{EtPhoneHome.Core.Text.UntrustedText.ForTerminal(text ?? "", 40)}' is not an operator role; use one of: {string.Join(", ", All)}";

    public static bool TryParse(string? text, out OperatorRole role)
    {
        switch (text?.Trim().ToLowerInvariant())
        {
            case "reader": role = OperatorRole.Reader; return true;
            case "operator": role = OperatorRole.Operator; return true;
            case "admin": role = OperatorRole.Admin; return true;
            default: role = default; return false;
        }
    }
}

/// <summary>One operator: a person's SSH key with a name and a role. Removed operators stay as tombstones.</summary>
public sealed record OperatorRecord
{
    public required string Name { get; init; }
    /// <summary>SHA256:… of the key blob, as sshd and the keys table write it.</summary>
    public required string Fingerprint { get; init; }
    /// <summary>ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa…</summary>
    public required string KeyType { get; init; }
    /// <summary>The base64 key blob.</summary>
    public required string PublicKey { get; init; }
    public required OperatorRole Role { get; init; }
    public required DateTimeOffset AddedAt { get; init; }
    public required string AddedBy { get; init; }
    public bool Removed { get; init; }
    public DateTimeOffset? RemovedAt { get; init; }
}

/// <summary>An OpenSSH public key line (<c>type base64 [comment]</c>), parsed and fingerprinted.</summary>
public sealed partial record OpenSshPublicKey(string KeyType, string Blob, string Fingerprint, string? Comment)
{
    /// <summary>
    /// Parses one public key line as in a <c>.pub</c> file or authorized_keys (without options): the type, the base64 blob
    /// (whose own type must be the same) and an optional comment.
    /// </summary>
    /// <exception cref="RegistryValidationException">Not such a line.</exception>
    public static OpenSshPublicKey Parse(string? line)
    {
        var text = (line ?? "").Trim();
        if (text.Length == 0)
        {
            throw new RegistryValidationException("key", "the public key is empty; give a line such as 'ssh-ed25519 AAAA… comment' (the .pub file's text)");
        }

        if (text.Contains('\n', StringComparison.Ordinal) || text.Contains('\r', StringComparison.Ordinal))
        {
            throw new RegistryValidationException("key", "the public key must be one line: 'type base64 [comment]'");
        }

        var parts = text.Split((char[]?)null, 3, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || !KeyTypePattern().IsMatch(parts[0]) || !BlobPattern().IsMatch(parts[1]))
        {
            throw new RegistryValidationException("key",
                "the public key is not an OpenSSH public key line 'type base64 [comment]' (such as the text of ~/.ssh/id_ed25519.pub)");
        }

        var fingerprint = SshKeyFingerprint.FromBase64Blob(parts[1]);
        if (fingerprint is null || BlobType(parts[1]) != parts[0])
        {
            throw new RegistryValidationException("key", $"the public key's base64 is not a {parts[0]} key blob");
        }

        return new OpenSshPublicKey(parts[0], parts[1], fingerprint, parts.Length > 2 ? parts[2].Trim() : null);
    }

    /// <summary>The key type a blob names in its first field (SSH wire string), or null.</summary>
    private static string? BlobType(string base64)
    {
        var bytes = Convert.FromBase64String(base64);
        if (bytes.Length < 4)
        {
            return null;
        }

        var length = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        return length is > 0 and <= 64 && 4 + length <= bytes.Length ? Encoding.ASCII.GetString(bytes, 4, (int)length) : null;
    }

    [GeneratedRegex(@"^[A-Za-z0-9@._-]{1,64}\z")]
    private static partial Regex KeyTypePattern();

    [GeneratedRegex(@"^[A-Za-z0-9+/]{16,16384}={0,2}\z")]
    private static partial Regex BlobPattern();
}

/// <summary>Rules of operator names: 1–64 characters of letters, digits, '.', '_' and '-', starting with a letter or digit.</summary>
public static partial class OperatorNames
{
    public const int MaxLength = 64;

    /// <summary>The name trimmed; refused when it breaks the rules.</summary>
    /// <exception cref="RegistryValidationException">Empty, too long, or other characters.</exception>
    public static string Validate(string? name)
    {
        var text = (name ?? "").Trim();
        if (!NamePattern().IsMatch(text))
        {
            throw new RegistryValidationException("name",
                $"operator name '{EtPhoneHome.Core.Text.UntrustedText.ForTerminal(text)}' is not valid: 1–{MaxLength} letters, digits, '.', '_' or '-', starting with a letter or digit");
        }

        return text;
    }

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}\z")]
    private static partial Regex NamePattern();
}
