using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;

namespace EtPhoneHome.Core.Remote;

// The exchange through the operator service. The server holds the bucket's credentials and signs; an operator's machine
// gets presigned, time-limited URLs and moves the bytes itself, straight to and from the bucket.

/// <summary>A listing: participants by display name, uuid or "server", resolved by the server.</summary>
public sealed record ExchangeListArgs
{
    public string? SourceClient { get; init; }
    public string? DestClient { get; init; }
}

public sealed record ExchangeDeleteArgs
{
    public required string TransferId { get; init; }
    public required string SourceClient { get; init; }
}

public sealed record ExchangeUploadUrlArgs
{
    public required string SourceClient { get; init; }
    public required string FileName { get; init; }
    public int ExpiresHours { get; init; } = ExchangeLimits.DefaultExpiresHours;
}

/// <summary>Where to download from: a transfer of the bucket, or a URL (checked against the server's endpoint).</summary>
public sealed record ExchangeDownloadArgs
{
    public string? TransferId { get; init; }
    public string? Url { get; init; }
    public bool AllowAnyHost { get; init; }
}

/// <summary>What a download needs: the URL, and for a transfer of the bucket its recorded hash and part size.</summary>
public sealed record ExchangeDownloadTicket
{
    public required string Url { get; init; }
    public string? TransferId { get; init; }
    public string? Sha256 { get; init; }
    public long? Size { get; init; }
    public int? PartSize { get; init; }
}

/// <summary>An upload from the operator's machine: up to the server's multipart threshold the SHA-256 must come first.</summary>
public sealed record ExchangeUploadStartArgs
{
    public required string FileName { get; init; }
    public required long Size { get; init; }
    public string? Sha256 { get; init; }
    public string? DestClient { get; init; }
    public int ExpiresHours { get; init; } = ExchangeLimits.DefaultExpiresHours;
}

/// <summary>The server's plan for an upload it started: one PUT (with its signed headers), or parts of <see cref="PartSize"/>.</summary>
public sealed record ExchangeUploadPlan
{
    public required string TransferId { get; init; }
    public required string Key { get; init; }
    public required bool Multipart { get; init; }
    public required int PartSize { get; init; }
    public required int PartCount { get; init; }
    public IReadOnlyList<KeyValuePair<string, string>> Headers { get; init; } = [];
}

public sealed record ExchangeUploadPartsArgs
{
    public required string TransferId { get; init; }
    public required int First { get; init; }
    public required int Count { get; init; }
}

public sealed record ExchangeUploadPartUrls
{
    public required IReadOnlyList<string> Urls { get; init; }
}

public sealed record ExchangeUploadCompleteArgs
{
    public required string TransferId { get; init; }
    public required string Sha256 { get; init; }
    public IReadOnlyList<string> ETags { get; init; } = [];
}

public sealed record ExchangeUploadAbortArgs
{
    public required string TransferId { get; init; }
}

/// <summary>Hands a transfer to clients: each agent fetches it into <see cref="RemotePath"/>.</summary>
public sealed record ExchangeDeliverArgs
{
    public required TargetSelection Targets { get; init; }
    public required string TransferId { get; init; }
    public required string RemotePath { get; init; }
    public int ThrottleLimit { get; init; } = 16;
}

/// <summary>Has one client's agent upload a file into the bucket; the operator then downloads the transfer.</summary>
public sealed record ExchangeCollectArgs
{
    public required string Client { get; init; }
    public required string RemotePath { get; init; }
}


/// <summary>Limits of the exchange operations.</summary>
public static class ExchangeOperationLimits
{
    /// <summary>Part URLs per request.</summary>
    public const int MaxPartUrls = 64;

    /// <summary>Uploads one connection may have started and not yet ended.</summary>
    public const int MaxOpenUploads = 8;

    /// <summary>Files up to this size are hashed before the upload starts (the server may send them in one PUT).</summary>
    public const long HashFirstLimit = 16 * 1024 * 1024;
}
