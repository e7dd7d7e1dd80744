namespace EtPhoneHome.Core.Exchange;

/// <summary>Which stage a transfer is in, for progress displays.</summary>
public enum ExchangePhase
{
    Hashing,
    Uploading,
    Downloading,
}

/// <summary>Progress of one transfer: bytes done of the total (when known).</summary>
public readonly record struct ExchangeProgress(ExchangePhase Phase, long Done, long? Total);

/// <summary>What an upload produced (<c>exchange_upload</c>). The download URL is a bearer token until it expires.</summary>
public sealed record ExchangeUploadResult(
    string TransferId,
    string Key,
    Uri DownloadUrl,
    DateTimeOffset ExpiresAt,
    long Size,
    string FileName,
    string Sha256,
    string SourceClient,
    string? DestClient,
    bool Multipart);

/// <summary>What a download wrote (<c>exchange_download</c>).</summary>
public sealed record ExchangeDownloadResult(
    string LocalPath,
    long Size,
    string Sha256,
    bool Verified,
    bool Resumed,
    string? TransferId);

/// <summary>Where and how to download a transfer without the exchange's credentials (see <see cref="ExchangeClient.CreateDownloadSourceAsync"/>).</summary>
public sealed record ExchangeDownloadSource(Uri Url, string? TransferId, string? Sha256, long? Size, int? PartSize);

/// <summary>One object of a listing (<c>exchange_list</c>). Metadata keys without the x-amz-meta- prefix.</summary>
public sealed record ExchangeObject(
    string Key,
    string? TransferId,
    string? SourceClient,
    long Size,
    DateTimeOffset? LastModified,
    IReadOnlyDictionary<string, string> Metadata);

/// <summary>Outcome of <c>exchange_delete</c>: <see cref="Deleted"/> is false when no such transfer existed.</summary>
public sealed record ExchangeDeleteResult(string Key, string TransferId, bool Deleted);

/// <summary>A presigned PUT URL a client can upload to with nothing but curl (<c>curl -T FILE URL</c>).</summary>
public sealed record ExchangeUploadUrl(string TransferId, string Key, Uri UploadUrl, DateTimeOffset ExpiresAt, string SourceClient, string FileName);

/// <summary>The bucket's lifecycle rule for transfers (<see cref="ExchangeClient.InitializeAsync"/>).</summary>
public sealed record ExchangeLifecycleRule(string Id, string Prefix, int ExpirationDays, bool Enabled);

/// <summary>A fault the storage endpoint reported, with its S3 error code; never carries credentials or signatures.</summary>
public sealed class ExchangeException(string message, string? errorCode = null, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>The S3 error code (NoSuchKey, AccessDenied, NotImplemented, …) when there is one.</summary>
    public string? ErrorCode { get; } = errorCode;
}

/// <summary>A download URL outside the configured endpoint (and not explicitly allowed).</summary>
public sealed class ExchangeHostNotAllowedException(string message) : Exception(message);
