using System.Buffers;
using System.Globalization;
using System.Text.Json;

namespace EtPhoneHome.Core.Exchange;

/// <summary>
/// The SHA-256 of a multipart upload. Object metadata is sent when a multipart upload starts, before any byte is
/// read, so the hash (computed in order while the parts are read, the file read once) cannot be in it. It goes in a
/// small JSON object at <see cref="TransferNames.ManifestKey"/>, written before CompleteMultipartUpload — the
/// object never exists without it. The object's metadata names the manifest's random nonce
/// (<see cref="ExchangeLimits.ManifestMetadata"/>), so a manifest left by another upload of the same key is refused.
/// </summary>
public sealed record ExchangeManifest(string Key, string Nonce, long Size, string Sha256, int PartSize, int Parts)
{
    public const int FormatVersion = 1;

    /// <summary>Manifests are tiny; anything larger is not one.</summary>
    public const int MaxBytes = 4096;

    public byte[] ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("version", FormatVersion);
            json.WriteString("key", Key);
            json.WriteString("nonce", Nonce);
            json.WriteNumber("size", Size);
            json.WriteString("sha256", Sha256);
            json.WriteNumber("part_size", PartSize);
            json.WriteNumber("parts", Parts);
            json.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// The SHA-256 a manifest gives the object at <paramref name="key"/> of <paramref name="size"/> bytes whose
    /// metadata names <paramref name="nonce"/>; throws <see cref="ExchangeException"/> (code <c>ManifestInvalid</c>)
    /// when it is malformed or belongs to another object.
    /// </summary>
    public static string Verify(ReadOnlySpan<byte> json, string key, string nonce, long size) => VerifyManifest(json, key, nonce, size).Sha256;

    /// <summary>As <see cref="Verify"/>, the whole manifest (its part size tells a download how to split its ranges).</summary>
    public static ExchangeManifest VerifyManifest(ReadOnlySpan<byte> json, string key, string nonce, long size)
    {
        ExchangeManifest manifest;
        try
        {
            manifest = Parse(json);
        }
        catch (Exception ex) when (ex is JsonException or FormatException or InvalidOperationException or KeyNotFoundException or OverflowException)
        {
            throw Invalid(key, "it is not a valid manifest");
        }

        if (manifest.Key != key)
        {
            throw Invalid(key, "it names another object");
        }

        if (manifest.Nonce != nonce)
        {
            throw Invalid(key, "it belongs to another upload of this key");
        }

        if (manifest.Size != size)
        {
            throw Invalid(key, string.Create(CultureInfo.InvariantCulture, $"it records {manifest.Size} bytes, the object has {size}"));
        }

        return manifest;
    }

    private static ExchangeManifest Parse(ReadOnlySpan<byte> json)
    {
        if (json.Length > MaxBytes)
        {
            throw new FormatException("too large");
        }

        using var document = JsonDocument.Parse(json.ToArray());
        var root = document.RootElement;
        if (root.GetProperty("version").GetInt32() != FormatVersion)
        {
            throw new FormatException("unknown version");
        }

        var sha = root.GetProperty("sha256").GetString() ?? "";
        if (sha.Length != 64 || !sha.All(char.IsAsciiHexDigitLower))
        {
            throw new FormatException("sha256 is not 64 lowercase hex digits");
        }

        return new ExchangeManifest(
            root.GetProperty("key").GetString() ?? "",
            root.GetProperty("nonce").GetString() ?? "",
            root.GetProperty("size").GetInt64(),
            sha,
            root.GetProperty("part_size").GetInt32(),
            root.GetProperty("parts").GetInt32());
    }

    internal static ExchangeException Invalid(string key, string why) =>
        new($"the SHA-256 manifest of '{key}' cannot be trusted: {why}; the download was refused and nothing was written", "ManifestInvalid");

    internal static ExchangeException Missing(string key) =>
        new($"the SHA-256 manifest of '{key}' is missing (the object says its hash is there); the download was refused and nothing was written", "ManifestMissing");
}
