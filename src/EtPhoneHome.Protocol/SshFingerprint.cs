using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Protocol;

/// <summary>
/// OpenSSH-style key fingerprints: <c>SHA256:</c> + base64 (no padding) of the SHA-256 of the key blob, as
/// <c>ssh-keygen -lf</c> prints them. Shared by the agent (pinning the server's key) and the operator side (the same).
/// </summary>
public static class SshFingerprint
{
    /// <summary>Fingerprint of a base64 key blob as it appears in known_hosts or a .pub file; null if not base64.</summary>
    public static string? FromBase64Blob(string base64Blob) => SshKeyFingerprint.FromBase64Blob(base64Blob);

    /// <summary>
    /// True when two fingerprints name the same key (the "SHA256:" prefix and padding are optional in <paramref name="given"/>).
    /// Compared in constant time: how much of a guess matched is not told by how long the answer took.
    /// </summary>
    public static bool Matches(string given, string fingerprint)
    {
        var g = given.Trim();
        if (g.StartsWith("SHA256:", StringComparison.OrdinalIgnoreCase))
        {
            g = g["SHA256:".Length..];
        }

        return CryptographicOperations.FixedTimeEquals(
            Encoding.UTF8.GetBytes("SHA256:" + g.TrimEnd('=')), Encoding.UTF8.GetBytes(fingerprint));
    }
}
