using System.Buffers.Binary;
using System.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// A server's SSH host public key: its type (<c>ssh-ed25519</c>…), the base64 key blob and its fingerprint
/// (<c>SHA256:</c>…, as <c>ssh-keygen -lf</c> prints it).
/// </summary>
public sealed record HostKey
{
    /// <summary>The host key types accepted, most preferred first.</summary>
    public static readonly IReadOnlyList<string> SupportedTypes =
        ["ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa"];

    private HostKey(string type, string blob, string fingerprint)
    {
        Type = type;
        Blob = blob;
        Fingerprint = fingerprint;
    }

    public string Type { get; }

    public string Blob { get; }

    public string Fingerprint { get; }

    /// <summary>The public key as one line: <c>type base64</c>.</summary>
    public string PublicKeyLine => Type + " " + Blob;

    /// <summary>
    /// The host key algorithms ssh may accept for this key: RSA keys sign with SHA-2 (<c>rsa-sha2-512</c>, <c>rsa-sha2-256</c>),
    /// never with SHA-1; other types sign with their own name.
    /// </summary>
    public string HostKeyAlgorithms => Type == "ssh-rsa" ? "rsa-sha2-512,rsa-sha2-256" : Type;

    /// <summary>
    /// A key from its type and base64 blob. The type must be one of <see cref="SupportedTypes"/> and the blob must name
    /// the same type (a blob is length-prefixed type + key material), so a mislabelled key is refused.
    /// </summary>
    public static HostKey Create(string type, string blob)
    {
        ArgumentNullException.ThrowIfNull(type);
        ArgumentNullException.ThrowIfNull(blob);
        if (!SupportedTypes.Contains(type))
        {
            throw new FormatException($"'{Text.UntrustedText.ForTerminal(type, 40)}' is not a supported host key type ({string.Join(", ", SupportedTypes)})");
        }

        if (blob.Length > 16_384 || SshFingerprint.FromBase64Blob(blob) is not { } fingerprint)
        {
            throw new FormatException($"the {type} host key is not valid base64");
        }

        var bytes = Convert.FromBase64String(blob);
        if (bytes.Length < 4 || BinaryPrimitives.ReadUInt32BigEndian(bytes) > (uint)(bytes.Length - 4)
            || Encoding.ASCII.GetString(bytes, 4, (int)BinaryPrimitives.ReadUInt32BigEndian(bytes)) != type)
        {
            throw new FormatException($"the key blob does not hold a {type} key");
        }

        return new HostKey(type, blob, fingerprint);
    }

    /// <summary>
    /// Parses <c>type base64 [comment]</c> (a .pub file's line) or a known_hosts / ssh-keyscan line
    /// (<c>host type base64</c>).
    /// </summary>
    public static HostKey Parse(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        var fields = line.Split((char[]?)null, 4, StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length >= 2 && SupportedTypes.Contains(fields[0]))
        {
            return Create(fields[0], fields[1]);
        }

        if (fields.Length >= 3)
        {
            return Create(fields[1], fields[2]);
        }

        throw new FormatException("a host key line is 'type base64' or 'host type base64'");
    }

    /// <summary>
    /// Parses ssh-keyscan's output: comments, blank lines and lines that are not a supported key are skipped, each key kept once,
    /// in the order of preference of <see cref="SupportedTypes"/> (ed25519 first).
    /// </summary>
    public static IReadOnlyList<HostKey> ParseKeyscan(string output)
    {
        ArgumentNullException.ThrowIfNull(output);
        var keys = new List<HostKey>();
        foreach (var raw in output.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            try
            {
                var key = Parse(line);
                if (!keys.Exists(k => k.Blob == key.Blob))
                {
                    keys.Add(key);
                }
            }
            catch (FormatException)
            {
                // Not a key we use (an unsupported type or a garbled line): ignored, like ssh ignores it.
            }
        }

        return [.. keys.OrderBy(k => Rank(k.Type))];
    }

    internal static int Rank(string type)
    {
        for (var i = 0; i < SupportedTypes.Count; i++)
        {
            if (SupportedTypes[i] == type)
            {
                return i;
            }
        }

        return int.MaxValue;
    }

    public override string ToString() => Type + " " + Fingerprint;
}
