using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Health;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Core.Remote;

/// <summary>
/// The operations of the hub's operator service: each names one Core entry point of the application layer, and the
/// least role that may call it. The server checks the role on every call; a client's claims about itself decide nothing.
/// </summary>
public static class OperatorOperations
{
    public const string Hello = "hello";
    public const string SearchClients = "clients.search";
    public const string RunCommands = "commands.run";
    public const string Upload = "files.upload";
    public const string Download = "files.download";
    public const string ReadFiles = "files.read";
    public const string WriteFiles = "files.write";
    public const string ListFiles = "files.list";
    public const string RateLimitStats = "ratelimits.stats";
    public const string WebhookDeliveries = "webhooks.list";
    public const string ResendWebhook = "webhooks.resend";
    public const string CollectMetrics = "metrics.collect";
    public const string FleetStatus = "fleet.status";
    public const string QueryHistory = "history.query";
    public const string ListKeys = "keys.list";
    public const string ApproveKey = "keys.approve";
    public const string RevokeKey = "keys.revoke";
    public const string UpdateClient = "clients.update";
    public const string RemoveClient = "clients.remove";
    public const string ListOperators = "operators.list";
    public const string AddOperator = "operators.add";
    public const string RemoveOperator = "operators.remove";
    public const string SetOperatorRole = "operators.set-role";
    public const string ExchangeList = "exchange.list";
    public const string ExchangeDelete = "exchange.delete";
    public const string ExchangeUploadUrl = "exchange.upload-url";
    public const string ExchangeDownload = "exchange.download";
    public const string ExchangeUploadStart = "exchange.upload-start";
    public const string ExchangeUploadParts = "exchange.upload-parts";
    public const string ExchangeUploadComplete = "exchange.upload-complete";
    public const string ExchangeUploadAbort = "exchange.upload-abort";
    public const string ExchangeDeliver = "exchange.deliver";
    public const string ExchangeCollect = "exchange.collect";
    public const string ExchangeLifecycle = "exchange.lifecycle";
    public const string ExchangeInitialize = "exchange.initialize";

    /// <summary>The least role of each operation; an operation missing here does not exist.</summary>
    public static readonly IReadOnlyDictionary<string, OperatorRole> Required = new Dictionary<string, OperatorRole>(StringComparer.Ordinal)
    {
        [Hello] = OperatorRole.Reader,
        [SearchClients] = OperatorRole.Reader,
        [CollectMetrics] = OperatorRole.Reader,
        [FleetStatus] = OperatorRole.Reader,
        [QueryHistory] = OperatorRole.Reader,
        [ListKeys] = OperatorRole.Reader,
        [RateLimitStats] = OperatorRole.Reader,
        [WebhookDeliveries] = OperatorRole.Reader,
        [ExchangeList] = OperatorRole.Reader,
        [ExchangeLifecycle] = OperatorRole.Reader,
        [ReadFiles] = OperatorRole.Operator,
        [WriteFiles] = OperatorRole.Operator,
        [ListFiles] = OperatorRole.Operator,
        [ResendWebhook] = OperatorRole.Operator,
        [RunCommands] = OperatorRole.Operator,
        [Upload] = OperatorRole.Operator,
        [Download] = OperatorRole.Operator,
        [UpdateClient] = OperatorRole.Operator,
        [ExchangeDelete] = OperatorRole.Operator,
        [ExchangeUploadUrl] = OperatorRole.Operator,
        [ExchangeDownload] = OperatorRole.Operator,
        [ExchangeUploadStart] = OperatorRole.Operator,
        [ExchangeUploadParts] = OperatorRole.Operator,
        [ExchangeUploadComplete] = OperatorRole.Operator,
        [ExchangeUploadAbort] = OperatorRole.Operator,
        [ExchangeDeliver] = OperatorRole.Operator,
        [ExchangeCollect] = OperatorRole.Operator,
        [ExchangeInitialize] = OperatorRole.Admin,
        [ApproveKey] = OperatorRole.Admin,
        [RevokeKey] = OperatorRole.Admin,
        [RemoveClient] = OperatorRole.Admin,
        [ListOperators] = OperatorRole.Admin,
        [AddOperator] = OperatorRole.Admin,
        [RemoveOperator] = OperatorRole.Admin,
        [SetOperatorRole] = OperatorRole.Admin,
    };

    /// <summary>The version of the operations' shapes; a server refuses a client that speaks another.</summary>
    public const int ProtocolVersion = 1;

    /// <summary>Clients per item of a search (a page keeps each frame small at 100,000 clients).</summary>
    public const int SearchPageSize = 500;

    /// <summary>The JSON of the operations' arguments and results.</summary>
    public static readonly JsonSerializerOptions Json = NewJson();

    private static JsonSerializerOptions NewJson()
    {
        var options = new JsonSerializerOptions(JsonSerializerDefaults.Web)
        {
            DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
            MaxDepth = 32,
        };
        options.Converters.Add(new JsonStringEnumConverter());
        options.MakeReadOnly(populateMissingResolver: true);
        return options;
    }

    public static JsonElement ToElement<T>(T value) => JsonSerializer.SerializeToElement(value, Json);

    /// <summary>Reads arguments or a result; a shape that does not fit is an <see cref="ArgumentException"/> naming the type.</summary>
    public static T FromElement<T>(JsonElement? element)
    {
        if (element is not { } e || e.ValueKind is JsonValueKind.Undefined or JsonValueKind.Null)
        {
            throw new ArgumentException($"the request carries no {typeof(T).Name}");
        }

        try
        {
            return e.Deserialize<T>(Json) ?? throw new ArgumentException($"the request carries no {typeof(T).Name}");
        }
        catch (JsonException ex)
        {
            throw new ArgumentException($"malformed {typeof(T).Name}: {ex.Message}", ex);
        }
    }
}

/// <summary>The surfaces a remote operator may name (recorded in the history); anything else is recorded as "remote".</summary>
public static class RemoteSurfaces
{
    public static string Recorded(string? claimed) => claimed switch
    {
        Surfaces.PowerShell or Surfaces.Cli or Surfaces.Mcp => claimed + "+ssh",
        _ => "remote+ssh",
    };
}

public sealed record HelloArgs
{
    public int Protocol { get; init; } = OperatorOperations.ProtocolVersion;
    public string? Surface { get; init; }
    public string? ClientVersion { get; init; }
}

public sealed record HelloResult
{
    public required int Protocol { get; init; }
    public required string ServerVersion { get; init; }
    public required string Operator { get; init; }
    public required OperatorRole Role { get; init; }
    public required string Host { get; init; }
    public string? Source { get; init; }
}

/// <summary>A search's end: the literal names that matched nothing (the clients came as items, in pages).</summary>
public sealed record SearchResult
{
    public IReadOnlyList<string> NotFound { get; init; } = [];
    public int Count { get; init; }
}

public sealed record RunCommandsArgs
{
    public required TargetSelection Targets { get; init; }
    public required CommandRequest Request { get; init; }
    public int ThrottleLimit { get; init; } = FleetOptions.DefaultThrottleLimit;
    public double? PerTargetTimeoutSeconds { get; init; }
    /// <summary>"5" or "10%"; null never stops.</summary>
    public string? MaxErrors { get; init; }
}

/// <summary>A streamed element of a fan-out: first the targets, then one result per target as each finishes.</summary>
public sealed record FanOutItem
{
    public IReadOnlyList<RemoteTarget>? Targets { get; init; }
    public FleetCommandResult? Result { get; init; }
    public ClientMetricsResult? Metrics { get; init; }
    public Exchange.ExchangeDeliveryResult? Delivery { get; init; }
    public RemoteFileOutcome? File { get; init; }
}

/// <summary>One target's outcome of a file operation (read, write, list): who, never how to reach it.</summary>
public sealed record RemoteFileOutcome
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required CommandStatus Status { get; init; }
    public JsonElement? Value { get; init; }
    public string? Error { get; init; }
    public long DurationMs { get; init; }
    public FailureKind Failure { get; init; }
}

/// <summary>A file operation on many targets: exactly one of the three requests.</summary>
public sealed record FileOperationArgs
{
    public required TargetSelection Targets { get; init; }
    public ReadFileParams? Read { get; init; }
    public WriteFileParams? Write { get; init; }
    public ListFilesParams? List { get; init; }
    public int ThrottleLimit { get; init; } = FleetOptions.DefaultThrottleLimit;
}

/// <summary>A target as the remote side sees it: who, never how to reach it (the tunnel's port and secret stay on the server).</summary>
public sealed record RemoteTarget(string Uuid, string DisplayName);

public sealed record CollectMetricsArgs
{
    public required TargetSelection Targets { get; init; }
    public bool Summary { get; init; }
    public int ThrottleLimit { get; init; } = FleetOptions.DefaultThrottleLimit;
    public double? TimeoutSeconds { get; init; }
}

public sealed record TransferArgs
{
    /// <summary>Exactly one client (uuid or display name).</summary>
    public required string Client { get; init; }
    public required string RemotePath { get; init; }
    /// <summary>Uploads: the file's size. Downloads: bytes the operator already holds (a resume).</summary>
    public long Size { get; init; }
    public long Offset { get; init; }
    /// <summary>Uploads: the file's name, for a remote path that ends in '/'.</summary>
    public string? Name { get; init; }
    /// <summary>Downloads: bytes the operator takes before it grants more.</summary>
    public long Window { get; init; }
}

/// <summary>The agent's answer before the bytes: where it resumes and the file's size.</summary>
public sealed record TransferReady
{
    public required long Offset { get; init; }
    public required long Size { get; init; }
    public required string RemotePath { get; init; }
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
}

public sealed record TransferDone
{
    public required long Size { get; init; }
    public required string Sha256 { get; init; }
    public required string RemotePath { get; init; }
    public long ResumedFrom { get; init; }
}

public sealed record HistoryArgs
{
    public required HistoryQuery Query { get; init; }
    public bool WithTotal { get; init; }
}

public sealed record HistoryPage
{
    public required IReadOnlyList<AuditEntry> Entries { get; init; }
    public IReadOnlyDictionary<string, string> DisplayNames { get; init; } = new Dictionary<string, string>();
    public int? Total { get; init; }
}

/// <summary>The fleet status's thresholds, throttle and per-client timeout; what is left out takes Core's defaults.</summary>
public sealed record FleetStatusArgs
{
    public Health.FleetThresholds? Thresholds { get; init; }
    public int? ThrottleLimit { get; init; }
    public double? TimeoutSeconds { get; init; }
}

/// <summary>A page of webhook deliveries and their attempts (webhook URLs without their credentials).</summary>
public sealed record WebhookDeliveryPage
{
    public IReadOnlyList<WebhookDelivery> Deliveries { get; init; } = [];
    public IReadOnlyList<WebhookAttempt> Attempts { get; init; } = [];

    /// <summary>The global webhook URL without its credentials; null when none is set.</summary>
    public string? GlobalUrl { get; init; }

    /// <summary>Whether the signing secret is set (never the secret).</summary>
    public bool HasSecret { get; init; }
}
