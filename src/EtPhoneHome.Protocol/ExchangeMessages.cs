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

/// <summary>Source-generated JSON of the exchange messages (same options as <see cref="ProtocolJson"/>).</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(ExchangeFetchParams))]
[JsonSerializable(typeof(ExchangeFetchResult))]
[JsonSerializable(typeof(ExchangePutParams))]
[JsonSerializable(typeof(ExchangePutResult))]
[JsonSerializable(typeof(JsonElement))]
public sealed partial class ExchangeJson : JsonSerializerContext;
