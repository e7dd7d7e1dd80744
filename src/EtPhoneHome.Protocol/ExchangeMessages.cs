using System.Text.Json;
using System.Text.Json.Serialization;

namespace EtPhoneHome.Protocol;

/// <summary>Agent methods of the exchange: the agent moves bytes to and from presigned URLs itself.</summary>
public static class ExchangeMethods
{
    /// <summary>Download a presigned GET URL into a path (inside the path policy), verify SHA-256, write atomically.</summary>
    public const string Fetch = "exchange_fetch";

    /// <summary>Upload a local file (inside the path policy) to a presigned PUT URL; answers its size and SHA-256.</summary>
    public const string Put = "exchange_put";
}

/// <summary>Error codes of the exchange methods, next to the general table in <see cref="RpcErrorCodes"/>.</summary>
public static class ExchangeErrorCodes
{
    /// <summary>The bytes received do not hash to the expected SHA-256 (nothing was written).</summary>
    public const int ChecksumMismatch = 1101;

    /// <summary>The storage endpoint refused or broke the transfer (HTTP status or network fault).</summary>
    public const int TransferFailed = 1102;
}

/// <summary>Parameters of <c>exchange_fetch</c>.</summary>
public sealed record ExchangeFetchParams
{
    /// <summary>Presigned GET URL (a bearer token: never logged).</summary>
    public required string Url { get; init; }

    /// <summary>Absolute destination path on the client.</summary>
    public required string Path { get; init; }

    /// <summary>Expected SHA-256 (hex); when absent the object's x-amz-meta-sha256 is used if present.</summary>
    public string? Sha256 { get; init; }

    /// <summary>Expected size in bytes, when known.</summary>
    public long? Size { get; init; }
}

/// <summary>Result of <c>exchange_fetch</c>.</summary>
public sealed record ExchangeFetchResult
{
    public required string Path { get; init; }
    public required long Size { get; init; }
    public required string Sha256 { get; init; }
    /// <summary>True when an earlier partial file was continued with a range request.</summary>
    public bool Resumed { get; init; }
    /// <summary>True when the SHA-256 was compared with an expected value and matched.</summary>
    public bool Verified { get; init; }
}

/// <summary>Parameters of <c>exchange_put</c>.</summary>
public sealed record ExchangePutParams
{
    /// <summary>Absolute path of the file on the client.</summary>
    public required string Path { get; init; }

    /// <summary>Presigned PUT URL (a bearer token: never logged).</summary>
    public required string Url { get; init; }
}

/// <summary>Result of <c>exchange_put</c>.</summary>
public sealed record ExchangePutResult
{
    public required string Path { get; init; }
    public required long Size { get; init; }
    public required string Sha256 { get; init; }
}

/// <summary>
/// What eph-agent asks eph-agent-exchange, its helper for the HTTP(S) side of <c>exchange_fetch</c> and <c>exchange_put</c>:
/// one JSON line on the helper's stdin (the presigned URL is a bearer token, so never in argv). The agent has checked
/// the path against its policy; the helper only moves the bytes.
/// </summary>
public sealed record ExchangeHelperRequest
{
    /// <summary><see cref="ExchangeMethods.Fetch"/> or <see cref="ExchangeMethods.Put"/>.</summary>
    public required string Method { get; init; }

    /// <summary>Presigned URL (a bearer token: never logged).</summary>
    public required string Url { get; init; }

    /// <summary>Absolute local path: the destination of a fetch, the source of a put.</summary>
    public required string Path { get; init; }

    /// <summary>Expected SHA-256 (hex) of a fetch, when known.</summary>
    public string? Sha256 { get; init; }
}

/// <summary>The helper's answer (one JSON line on its stdout): the outcome, or <see cref="Error"/> and <see cref="Message"/>.</summary>
public sealed record ExchangeHelperResponse
{
    public long Size { get; init; }
    public string? Sha256 { get; init; }
    public bool Resumed { get; init; }
    public bool Verified { get; init; }

    /// <summary>One of <see cref="ExchangeHelperErrors"/> when the transfer failed.</summary>
    public string? Error { get; init; }

    /// <summary>What went wrong; names the URL only by scheme, host and path.</summary>
    public string? Message { get; init; }
}

/// <summary>Failure kinds in <see cref="ExchangeHelperResponse.Error"/>.</summary>
public static class ExchangeHelperErrors
{
    /// <summary>The bytes did not hash to the expected SHA-256 (nothing was written).</summary>
    public const string ChecksumMismatch = "checksum_mismatch";

    /// <summary>The storage endpoint refused or broke the transfer.</summary>
    public const string TransferFailed = "transfer_failed";

    /// <summary>The local file could not be read or written for lack of permission.</summary>
    public const string AccessDenied = "access_denied";

    /// <summary>Another local fault (disk full, a directory that vanished); the message names the path.</summary>
    public const string LocalFile = "local_file";

    /// <summary>The request itself was not understood.</summary>
    public const string InvalidRequest = "invalid_request";
}

/// <summary>Source-generated JSON of the exchange messages (same options as <see cref="ProtocolJson"/>).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(ExchangeFetchParams))]
[JsonSerializable(typeof(ExchangeFetchResult))]
[JsonSerializable(typeof(ExchangePutParams))]
[JsonSerializable(typeof(ExchangePutResult))]
[JsonSerializable(typeof(ExchangeHelperRequest))]
[JsonSerializable(typeof(ExchangeHelperResponse))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class ExchangeJson : JsonSerializerContext;
