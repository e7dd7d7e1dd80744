using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace EtPhoneHome.Core.Webhooks;

/// <summary>
/// How deliveries are signed: <c>X-EtPhoneHome-Signature: sha256=&lt;hex HMAC-SHA256(secret, timestamp + "." + body)&gt;</c>,
/// where timestamp is the value of <c>X-EtPhoneHome-Timestamp</c> (unix seconds of the attempt).
/// </summary>
public static class WebhookSignature
{
    public const string EventHeader = "X-EtPhoneHome-Event";
    public const string DeliveryHeader = "X-EtPhoneHome-Delivery";
    public const string TimestampHeader = "X-EtPhoneHome-Timestamp";
    public const string SignatureHeader = "X-EtPhoneHome-Signature";
    public const string Prefix = "sha256=";

    /// <summary>The header value for <paramref name="body"/> sent at <paramref name="unixSeconds"/>.</summary>
    public static string Sign(string secret, long unixSeconds, string body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        ArgumentNullException.ThrowIfNull(body);
        var message = Encoding.UTF8.GetBytes(unixSeconds.ToString(CultureInfo.InvariantCulture) + "." + body);
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), message);
        return Prefix + Convert.ToHexString(mac).ToLowerInvariant();
    }

    /// <summary>
    /// What a receiver does: recompute, compare in constant time, and reject a timestamp further than
    /// <paramref name="tolerance"/> from <paramref name="now"/> (a replayed request).
    /// </summary>
    public static bool Verify(string secret, string timestampHeader, string body, string signatureHeader, DateTimeOffset now, TimeSpan tolerance)
    {
        ArgumentNullException.ThrowIfNull(signatureHeader);
        if (!long.TryParse(timestampHeader, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds)
            || Math.Abs(now.ToUnixTimeSeconds() - seconds) > tolerance.TotalSeconds)
        {
            return false;
        }

        var expected = Encoding.ASCII.GetBytes(Sign(secret, seconds, body));
        var given = Encoding.ASCII.GetBytes(signatureHeader.Trim().ToLowerInvariant());
        return CryptographicOperations.FixedTimeEquals(expected, given);
    }
}
