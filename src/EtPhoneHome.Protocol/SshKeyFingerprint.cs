using System.Security.Cryptography;

namespace EtPhoneHome.Protocol;

/// <summary>
/// OpenSSH-style key fingerprints, as sshd passes them to <c>eph-gate keys</c> (<c>%f</c>): <c>SHA256:</c> + base64
/// (no padding) of the SHA-256 of the key blob. One implementation for the agent (host keys) and the registry (operator keys).
/// </summary>
public static class SshKeyFingerprint
{
    /// <summary>Fingerprint of a base64 key blob as it appears in known_hosts or a .pub file; null if not base64.</summary>
    public static string? FromBase64Blob(string base64Blob)
    {
        ArgumentNullException.ThrowIfNull(base64Blob);
        var buffer = new byte[base64Blob.Length];
        if (!Convert.TryFromBase64String(base64Blob, buffer, out var n) || n == 0)
        {
            return null;
        }

        return "SHA256:" + Convert.ToBase64String(SHA256.HashData(buffer.AsSpan(0, n))).TrimEnd('=');
    }
}
