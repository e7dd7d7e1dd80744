namespace EtPhoneHome.Core.Exchange;

/// <summary>Which integrity checksums the S3 client computes and validates (R2 needs <see cref="WhenRequired"/>).</summary>
public enum ExchangeChecksumMode
{
    /// <summary>Only where the S3 API requires one (default; what R2 and most S3-compatible stores accept).</summary>
    WhenRequired,

    /// <summary>Wherever the API supports one (the AWS SDK's own default, for AWS S3).</summary>
    WhenSupported,
}

/// <summary>The exchange is not configured: the message names the missing environment variables.</summary>
public sealed class ExchangeNotConfiguredException(IReadOnlyList<string> missing)
    : InvalidOperationException($"R2 not configured (missing environment variables: {string.Join(", ", missing)})")
{
    public IReadOnlyList<string> Missing { get; } = missing;
}

/// <summary>
/// Where the exchange bucket lives and how to reach it, from <c>ETPHONEHOME_R2_*</c> environment variables.
/// The keys are held here only to build the S3 client: <see cref="ToString"/> and every message leave them out.
/// </summary>
public sealed class ExchangeSettings
{
    public const string AccountIdVariable = "ETPHONEHOME_R2_ACCOUNT_ID";
    public const string AccessKeyVariable = "ETPHONEHOME_R2_ACCESS_KEY";
    public const string SecretKeyVariable = "ETPHONEHOME_R2_SECRET_KEY";
    public const string BucketVariable = "ETPHONEHOME_R2_BUCKET";
    public const string EndpointVariable = "ETPHONEHOME_R2_ENDPOINT";
    public const string RegionVariable = "ETPHONEHOME_R2_REGION";
    public const string ChecksumsVariable = "ETPHONEHOME_R2_CHECKSUMS";

    /// <summary>R2's signing region.</summary>
    public const string DefaultRegion = "auto";

    public ExchangeSettings(Uri endpoint, string bucket, string accessKey, string secretKey, string region = DefaultRegion, ExchangeChecksumMode checksums = ExchangeChecksumMode.WhenRequired)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        if (endpoint.Scheme is not ("https" or "http"))
        {
            throw new ArgumentException($"the exchange endpoint must be an http(s) URL, got scheme '{endpoint.Scheme}'", nameof(endpoint));
        }

        ArgumentException.ThrowIfNullOrWhiteSpace(bucket);
        ArgumentException.ThrowIfNullOrWhiteSpace(accessKey);
        ArgumentException.ThrowIfNullOrWhiteSpace(secretKey);
        Endpoint = endpoint;
        Bucket = bucket;
        AccessKey = accessKey;
        SecretKey = secretKey;
        Region = string.IsNullOrWhiteSpace(region) ? DefaultRegion : region;
        Checksums = checksums;
    }

    /// <summary>The S3 endpoint: https://&lt;account&gt;.r2.cloudflarestorage.com, or ETPHONEHOME_R2_ENDPOINT.</summary>
    public Uri Endpoint { get; }

    public string Bucket { get; }

    public string Region { get; }

    public ExchangeChecksumMode Checksums { get; }

    internal string AccessKey { get; }

    internal string SecretKey { get; }

    /// <summary>Reads the process environment.</summary>
    public static ExchangeSettings FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>Reads settings through <paramref name="lookup"/>; throws <see cref="ExchangeNotConfiguredException"/> naming what is missing.</summary>
    public static ExchangeSettings FromEnvironment(Func<string, string?> lookup)
    {
        ArgumentNullException.ThrowIfNull(lookup);
        string? Get(string name) => lookup(name) is { } v && !string.IsNullOrWhiteSpace(v) ? v.Trim() : null;

        var endpointText = Get(EndpointVariable);
        var account = Get(AccountIdVariable);
        var missing = new List<string>();
        if (endpointText is null && account is null)
        {
            missing.Add(AccountIdVariable);
        }

        var access = Get(AccessKeyVariable);
        var secret = Get(SecretKeyVariable);
        var bucket = Get(BucketVariable);
        if (access is null)
        {
            missing.Add(AccessKeyVariable);
        }

        if (secret is null)
        {
            missing.Add(SecretKeyVariable);
        }

        if (bucket is null)
        {
            missing.Add(BucketVariable);
        }

        if (missing.Count > 0)
        {
            throw new ExchangeNotConfiguredException(missing);
        }

        Uri endpoint;
        if (endpointText is not null)
        {
            if (!Uri.TryCreate(endpointText, UriKind.Absolute, out endpoint!) || endpoint.Scheme is not ("https" or "http"))
            {
                throw new ArgumentException($"{EndpointVariable} must be an absolute http(s) URL, got '{endpointText}'");
            }
        }
        else
        {
            endpoint = new Uri($"https://{account}.r2.cloudflarestorage.com");
        }

        var checksums = Get(ChecksumsVariable)?.ToLowerInvariant() switch
        {
            null or "when_required" or "whenrequired" => ExchangeChecksumMode.WhenRequired,
            "when_supported" or "whensupported" => ExchangeChecksumMode.WhenSupported,
            var other => throw new ArgumentException($"{ChecksumsVariable} must be when_required or when_supported, got '{other}'"),
        };
        return new ExchangeSettings(endpoint, bucket!, access!, secret!, Get(RegionVariable) ?? DefaultRegion, checksums);
    }

    /// <summary>Endpoint and bucket; never the keys.</summary>
    public override string ToString() => $"bucket '{Bucket}' at {Endpoint.GetLeftPart(UriPartial.Authority)}";
}
