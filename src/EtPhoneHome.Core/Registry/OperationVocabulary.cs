using System.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>
/// Outcome of one operation on one target, the one status vocabulary of every surface: the history, the CLI's
/// <c>--json</c>, MCP results and webhook payloads write its wire spelling (<see cref="OperationNames.Wire(OperationStatus)"/>,
/// snake_case: <c>timed_out</c>); PowerShell shows the enum names (<c>TimedOut</c>). The first eight values are
/// <see cref="CommandStatus"/>'s, value for value.
/// </summary>
public enum OperationStatus
{
    /// <summary>Done as asked (a command exited 0; an edit, approval or removal was applied).</summary>
    Succeeded = CommandStatus.Succeeded,
    /// <summary>Ran and failed (a command's non-zero exit code; a transfer or exchange request that failed).</summary>
    Failed = CommandStatus.Failed,
    /// <summary>Ran out of time.</summary>
    TimedOut = CommandStatus.TimedOut,
    /// <summary>The client had no online session; nothing was sent.</summary>
    Offline = CommandStatus.Offline,
    /// <summary>Refused by policy (allowed paths, a key that is not approved).</summary>
    Denied = CommandStatus.Denied,
    /// <summary>Refused by an enforced rate limit.</summary>
    RateLimited = CommandStatus.RateLimited,
    /// <summary>Any other fault (tunnel, protocol, local I/O).</summary>
    Error = CommandStatus.Error,
    /// <summary>Not started (error limit reached, run cancelled first).</summary>
    Skipped = CommandStatus.Skipped,
    /// <summary>Stopped by the operator (Ctrl+C, a cancelled request) while it ran.</summary>
    Cancelled,
    /// <summary>What the operation named does not exist (an exchange transfer already gone).</summary>
    NotFound,
    /// <summary>Nothing to do: the edit, approval or revocation was already in place.</summary>
    Unchanged,
}

/// <summary>
/// The names the history records: operations are the documented MCP tool names (<c>run_command</c>, <c>read_file</c>,
/// <c>accept_key</c>…), whichever surface acted, so one filter finds an operation from PowerShell, the CLI and MCP
/// alike; statuses are <see cref="OperationStatus"/> in snake_case. Filters are checked against these lists, so a
/// typo is an error instead of an empty answer.
/// </summary>
public static class OperationNames
{
    public const string RunCommand = "run_command";
    public const string ReadFile = "read_file";
    public const string WriteFile = "write_file";
    public const string ListFiles = "list_files";
    public const string UploadFile = "upload_file";
    public const string DownloadFile = "download_file";
    public const string ExchangeUpload = "exchange_upload";
    public const string ExchangeDownload = "exchange_download";
    public const string ExchangeList = "exchange_list";
    public const string ExchangeDelete = "exchange_delete";
    /// <summary>Initialize-EphExchange / exchange init (the bucket's lifecycle rule); no MCP tool.</summary>
    public const string ExchangeInit = "exchange_init";
    public const string GetClientMetrics = "get_client_metrics";
    public const string AcceptKey = "accept_key";
    /// <summary>Revoke-EphClientKey / revoke; no MCP tool (revocation stays with people).</summary>
    public const string RevokeKey = "revoke_key";
    public const string UpdateClient = "update_client";
    /// <summary>Remove-EphClient / remove; no MCP tool.</summary>
    public const string RemoveClient = "remove_client";
    /// <summary>Send-EphWebhookDelivery / webhooks --resend; no MCP tool.</summary>
    public const string ResendWebhook = "resend_webhook";
    /// <summary>Remove-EphClientKey -Pending / purge-keys, and the hub's expiry of pending keys; no MCP tool.</summary>
    public const string PurgeKeys = "purge_keys";
    /// <summary>Add-EphOperator / operators add (a removed operator's key added again included); no MCP tool.</summary>
    public const string AddOperator = "add_operator";
    /// <summary>Remove-EphOperator / operators remove; no MCP tool.</summary>
    public const string RemoveOperator = "remove_operator";
    /// <summary>Set-EphOperator / operators set-role; no MCP tool.</summary>
    public const string SetOperatorRole = "set_operator_role";

    /// <summary>Every operation the history records, in the order people think of them.</summary>
    public static IReadOnlyList<string> Operations { get; } =
    [
        RunCommand, ReadFile, WriteFile, ListFiles, UploadFile, DownloadFile,
        ExchangeUpload, ExchangeDownload, ExchangeList, ExchangeDelete, ExchangeInit,
        GetClientMetrics, AcceptKey, RevokeKey, PurgeKeys, UpdateClient, RemoveClient, ResendWebhook,
        AddOperator, RemoveOperator, SetOperatorRole,
    ];

    /// <summary>Every status, in wire spelling.</summary>
    public static IReadOnlyList<string> Statuses { get; } = [.. Enum.GetValues<OperationStatus>().Select(Wire)];

    /// <summary>The wire spelling of a status: snake_case (<c>TimedOut</c> → <c>timed_out</c>).</summary>
    public static string Wire(OperationStatus status) => SnakeCase(status.ToString());

    /// <summary>The wire spelling of a command status (the same words as <see cref="OperationStatus"/>).</summary>
    public static string Wire(CommandStatus status) => Wire((OperationStatus)(int)status);

    /// <summary>The wire spelling of any status enum of the product (metrics, keys, webhook deliveries): snake_case.</summary>
    public static string WireName<TEnum>(TEnum value) where TEnum : struct, Enum => SnakeCase(value.ToString());

    /// <summary>
    /// A status as a person or a program may write it — wire (<c>timed_out</c>) or display (<c>TimedOut</c>), any
    /// case — or null when it is not one.
    /// </summary>
    public static OperationStatus? ParseStatus(string? text)
    {
        var key = (text ?? "").Replace("_", "", StringComparison.Ordinal).Trim();
        return key.Length > 0 && !key.Any(char.IsDigit) && Enum.TryParse<OperationStatus>(key, ignoreCase: true, out var status) ? status : null;
    }

    /// <summary>The recorded name of an operation given in any case, or null when it is not one.</summary>
    public static string? ParseOperation(string? text) =>
        Operations.FirstOrDefault(o => string.Equals(o, text?.Trim(), StringComparison.OrdinalIgnoreCase));

    private static string SnakeCase(string pascal)
    {
        var sb = new StringBuilder(pascal.Length + 4);
        for (var i = 0; i < pascal.Length; i++)
        {
            if (i > 0 && char.IsUpper(pascal[i]))
            {
                sb.Append('_');
            }

            sb.Append(char.ToLowerInvariant(pascal[i]));
        }

        return sb.ToString();
    }
}

/// <summary>History filters as recorded; every surface's history query goes through these checks.</summary>
public static class HistoryFilters
{
    /// <summary>The recorded names of <paramref name="operations"/>; throws naming the valid ones for any that is not an operation.</summary>
    public static IReadOnlyList<string> Operations(IEnumerable<string> operations)
    {
        ArgumentNullException.ThrowIfNull(operations);
        return [.. operations.Select(o => OperationNames.ParseOperation(o) ?? throw new Registry.RegistryValidationException("operation",
            $"'{o}' is not an operation of the history; use one of: {string.Join(", ", OperationNames.Operations)}")).Distinct(StringComparer.Ordinal)];
    }

    /// <summary>The wire spelling of <paramref name="statuses"/> (wire or display, any case); throws naming the valid ones for any other.</summary>
    public static IReadOnlyList<string> Statuses(IEnumerable<string> statuses)
    {
        ArgumentNullException.ThrowIfNull(statuses);
        return [.. statuses.Select(s => OperationNames.ParseStatus(s) is { } status ? OperationNames.Wire(status) : throw new Registry.RegistryValidationException("status",
            $"'{s}' is not a status of the history; use one of: {string.Join(", ", OperationNames.Statuses)}")).Distinct(StringComparer.Ordinal)];
    }
}
