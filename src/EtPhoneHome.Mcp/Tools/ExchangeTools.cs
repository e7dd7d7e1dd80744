using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Net;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>
/// The file exchange: transfers through the R2 (S3-compatible) bucket with presigned, time-limited URLs. Local
/// paths are limited to the server directories of <see cref="LocalPathPolicy"/>; downloads come only from the
/// configured endpoint. Every call is recorded in the history (surface mcp) by the exchange client.
/// </summary>
[McpServerToolType]
public sealed class ExchangeTools(McpFleet fleet)
{
    /// <summary>Longest download_url accepted (presigned URLs are about 600–1,500 characters).</summary>
    public const int MaxUrlLength = 8192;

    /// <summary>Longest transfer_id (the exchange's own limit).</summary>
    public const int MaxTransferIdLength = 400;

    [McpServerTool(Name = "exchange_upload", Title = "Upload a file to the exchange", ReadOnly = false, Destructive = false, Idempotent = false, OpenWorld = true, UseStructuredContent = true)]
    [Description("Upload a file from the MCP server to the R2 exchange bucket and get a presigned download URL a client can fetch with curl (the URL works for anyone who has it until expires_at). Each call creates a new transfer. Returns transfer_id, download_url, expires_at, size, filename and sha256. The bucket deletes transfers after 48 hours.")]
    public async Task<ExchangeUploaded> ExchangeUpload(
        [Description("Absolute path of the file on the MCP server; must be inside the server directories MCP may use (--allow-local-dir, default <data>/exchange).")][MaxLength(ToolArguments.MaxPathLength)] string local_path,
        [Description("Client the file is meant for (uuid or display name); recorded in the transfer's metadata for exchange_list.")][MaxLength(ToolArguments.MaxIdLength)] string? dest_client = null,
        [Description("Hours the download URL stays valid (1-12, default 12); shorter for sensitive files.")][Range(ToolArguments.MinExpiresHours, ToolArguments.MaxExpiresHours)] int? expires_hours = null,
        CancellationToken cancellationToken = default)
    {
        var hours = ToolArguments.Range("expires_hours", expires_hours, ToolArguments.MinExpiresHours, ToolArguments.MaxExpiresHours, ExchangeLimits.DefaultExpiresHours);
        var dest = ToolArguments.OptionalId("dest_client", dest_client) is { } d
            ? fleet.Remote is { } server ? await RemoteOnly.FindAsync(server, d, cancellationToken).ConfigureAwait(false) : ClientResolver.Find(fleet.Registry.Clients, d)
            : null;
        var path = fleet.LocalPaths.Resolve("local_path", local_path);
        if (!File.Exists(path))
        {
            throw ToolFailure.Invalid("local_path", $"local_path '{local_path}' does not exist or is not a file");
        }

        try
        {
            TransferNames.CheckFileName(path);
        }
        catch (ArgumentException invalid)
        {
            throw ToolFailure.Invalid("local_path", invalid.Message);
        }

        var upload = await Call(ops => ops.UploadAsync(path, dest?.Uuid, hours, null, cancellationToken), "upload", cancellationToken).ConfigureAwait(false);
        return new ExchangeUploaded(
            upload.TransferId,
            upload.DownloadUrl.AbsoluteUri,
            Views.Time(upload.ExpiresAt),
            upload.Size,
            upload.FileName,
            upload.Sha256,
            dest is null ? null : new ClientRef(dest.Uuid, dest.DisplayName),
            $"Uploaded {upload.FileName} ({upload.Size} bytes); the URL expires at {Views.Time(upload.ExpiresAt)}. On a client: curl -fLo '{upload.FileName}' '<download_url>'");
    }

    [McpServerTool(Name = "exchange_download", Title = "Download from the exchange", ReadOnly = false, Destructive = true, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Download a presigned exchange URL to a file on the MCP server. Only URLs on the configured R2 endpoint are fetched. Resumes an interrupted download, verifies the SHA-256 recorded with the transfer, and replaces an existing file at local_path only once the download is complete.")]
    public async Task<ExchangeDownloaded> ExchangeDownload(
        [Description("Presigned URL from exchange_upload (or a client's upload), on the configured exchange endpoint.")][MaxLength(MaxUrlLength)] string download_url,
        [Description("Absolute destination on the MCP server (a file, or an existing directory to keep the transfer's file name); must be inside the server directories MCP may use.")][MaxLength(ToolArguments.MaxPathLength)] string local_path,
        CancellationToken cancellationToken = default)
    {
        var text = ToolArguments.Required("download_url", download_url, MaxUrlLength).Trim();
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("http" or "https"))
        {
            throw ToolFailure.Invalid("download_url", "download_url must be an absolute http(s) URL");
        }

        var target = fleet.LocalPaths.Resolve("local_path", local_path);
        if (fleet.Remote is null)
        {
            // On the server host the endpoint is known here; through a server, the server checks it (the same answer).
            using var exchange = Open();
            try
            {
                exchange.CheckHost(url, allowAnyHost: false);
            }
            catch (ExchangeHostNotAllowedException)
            {
                var endpoint = exchange.Settings.Endpoint;
                throw UrlNotAllowed($"download_url {url.Scheme}://{url.Authority} is not the exchange endpoint {endpoint.Scheme}://{endpoint.Authority}; exchange_download fetches only from the configured endpoint");
            }
        }

        Directory.CreateDirectory(fleet.LocalPaths.Roots.Contains(target, StringComparer.Ordinal) ? target : Path.GetDirectoryName(target)!);
        var download = await Call(ops => ops.DownloadAsync(null, url, target, allowAnyHost: false, expectedSha256: null, progress: null, cancellationToken), "download", cancellationToken).ConfigureAwait(false);
        return new ExchangeDownloaded(download.LocalPath, download.Size, download.Sha256, download.Verified, download.Resumed ? true : null, download.TransferId);
    }

    [McpServerTool(Name = "exchange_list", Title = "List exchange transfers", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("List the transfers waiting in the exchange bucket, newest first: key, transfer_id, size, last_modified and metadata (source_client, dest_client, filename, uploaded_at, expires_at, sha256). Filter by the uploading client (client_id) or the addressee (dest_client). Transfers disappear 48 hours after upload.")]
    public async Task<ExchangeListing> ExchangeList(
        [Description("Only transfers uploaded by this client (uuid, display name, or 'server' for the MCP server's own uploads); all when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        [Description("Only transfers addressed to this client (uuid or display name).")][MaxLength(ToolArguments.MaxIdLength)] string? dest_client = null,
        [Description("Most transfers returned (1-1000, default 200).")][Range(1, ToolArguments.MaxListLimit)] int? limit = null,
        CancellationToken cancellationToken = default)
    {
        var max = ToolArguments.Range("limit", limit, 1, ToolArguments.MaxListLimit, ToolArguments.DefaultListLimit);
        var source = Participant("client_id", client_id);
        var dest = Participant("dest_client", dest_client);
        var items = await Call(ops => ops.ListAsync(source, dest, cancellationToken), "listing", cancellationToken).ConfigureAwait(false);
        var shown = items.OrderByDescending(i => i.LastModified).ThenBy(i => i.Key, StringComparer.Ordinal).Take(max).Select(i => new ExchangeTransfer(
            i.Key,
            i.TransferId,
            i.Size,
            i.LastModified is { } m ? Views.Time(m) : null,
            i.Metadata)).ToList();
        return new ExchangeListing(
            shown,
            items.Count,
            items.Count > shown.Count ? true : null,
            items.Count == 0 ? "No transfers found" : items.Count > shown.Count ? $"showing the newest {shown.Count} of {items.Count}; filter by client_id or dest_client" : null);
    }

    [McpServerTool(Name = "exchange_delete", Title = "Delete an exchange transfer", ReadOnly = false, Destructive = true, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Delete a transfer from the exchange bucket before it expires (its download URLs stop working). Answers deleted: false, not an error, when no such transfer exists.")]
    public async Task<ExchangeDeleted> ExchangeDelete(
        [Description("Transfer id from exchange_upload or exchange_list (<source>_<yyyyMMdd_HHmmss>_<filename>).")][MaxLength(MaxTransferIdLength)] string transfer_id,
        [Description("The client that uploaded it (uuid or display name), or 'server' for the MCP server's own uploads.")][MaxLength(ToolArguments.MaxIdLength)] string source_client,
        CancellationToken cancellationToken = default)
    {
        var id = ToolArguments.Required("transfer_id", transfer_id, MaxTransferIdLength).Trim();
        var source = Participant("source_client", ToolArguments.Required("source_client", source_client, ToolArguments.MaxIdLength))!;
        if (fleet.Remote is null)
        {
            try
            {
                TransferNames.Key(source, id);
            }
            catch (ArgumentException invalid)
            {
                throw ToolFailure.Invalid("transfer_id", invalid.Message);
            }
        }

        var result = await Call(ops => ops.DeleteAsync(id, source, cancellationToken), "delete", cancellationToken).ConfigureAwait(false);
        var key = result.Key;
        return new ExchangeDeleted(
            result.Key,
            result.Deleted,
            result.TransferId,
            result.Deleted ? $"Deleted {key}" : $"No transfer {key}; nothing was deleted (it may have expired or been deleted already)");
    }

    /// <summary>
    /// "server", a registered client's uuid, or a literal id that is safe in a key (a transfer may outlive its client);
    /// through a server, the name as given (the server resolves it in its registry).
    /// </summary>
    private string? Participant(string parameter, string? value)
    {
        var id = ToolArguments.OptionalId(parameter, value);
        if (id is null || fleet.Remote is not null)
        {
            return id;
        }

        try
        {
            return ExchangeParticipants.Resolve(fleet.Registry.Clients, id, parameter);
        }
        catch (ArgumentException invalid)
        {
            throw ToolFailure.Invalid(parameter, invalid.Message);
        }
    }

    /// <summary>An exchange client over the configured bucket, recording through the MCP guard; R2_NOT_CONFIGURED otherwise.</summary>
    private ExchangeClient Open()
    {
        ExchangeSettings settings;
        try
        {
            settings = fleet.ExchangeSettings();
        }
        catch (ExchangeNotConfiguredException missing)
        {
            throw new ToolFailure(ToolErrorCodes.R2NotConfigured, missing.Message,
                "Set the ETPHONEHOME_R2_* variables in the MCP server's environment (for the service: server.env) and restart it.",
                new Dictionary<string, object?> { ["missing"] = missing.Missing });
        }
        catch (ArgumentException invalid)
        {
            throw new ToolFailure(ToolErrorCodes.R2NotConfigured, $"R2 is misconfigured: {invalid.Message}",
                "Fix the ETPHONEHOME_R2_* variables in the MCP server's environment and restart it.");
        }

        return new ExchangeClient(settings, fleet.Guard, fleet.ExchangeOptions);
    }

    private static ToolFailure UrlNotAllowed(string message) => new(ToolErrorCodes.UrlNotAllowed, message,
        "Use a download_url from exchange_upload or exchange_list's transfers; to fetch other URLs onto a client use run_command with curl.");

    /// <summary>
    /// Runs one exchange call — with the bucket's credentials on the server host, or through the server's operator service
    /// (<c>eph-server mcp --server</c>: the server signs, the bytes go straight between this machine and the bucket) — and
    /// turns its faults into tool failures (the history already has them).
    /// </summary>
    private async Task<T> Call<T>(Func<IExchangeOperations, Task<T>> call, string what, CancellationToken ct)
    {
        try
        {
            if (fleet.Remote is { } server)
            {
                return await call(new Core.Remote.RemoteExchange(await server.GetAsync(ct).ConfigureAwait(false))).ConfigureAwait(false);
            }

            using var exchange = Open();
            return await call(new LocalExchangeOperations(fleet.Registry, exchange)).ConfigureAwait(false);
        }
        catch (Core.Remote.OperatorRemoteException remote) when (remote.Code == OperatorErrorCodes.NotConfigured)
        {
            throw new ToolFailure(ToolErrorCodes.R2NotConfigured, remote.Message, "The server's hub needs the ETPHONEHOME_R2_* variables in its environment; ask its admin.");
        }
        catch (Core.Remote.OperatorRemoteException remote) when (remote.Code == OperatorErrorCodes.InvalidArgument && remote.Error.Field == "url")
        {
            throw UrlNotAllowed(remote.Message);
        }
        catch (Core.Remote.OperatorRemoteException remote) when (remote.Code == OperatorErrorCodes.NotFound && remote.Error.Names is not { Count: > 0 })
        {
            throw new ToolFailure(ToolErrorCodes.TransferFailed, remote.Message,
                "The transfer (or the upload, after a reconnect) no longer exists on the server's side; check exchange_list, or upload again.");
        }
        catch (ProtocolException odd) when (fleet.Remote is not null)
        {
            throw new ToolFailure(ToolErrorCodes.TransferFailed, $"the server's answer did not fit the request: {odd.Message}", "Nothing was kept; try again, and tell the server's admin if it persists.");
        }
        catch (Core.Remote.OperatorRemoteException remote) when (remote.Code == OperatorErrorCodes.Failed)
        {
            throw new ToolFailure(ToolErrorCodes.TransferFailed, remote.Message, "Check that the exchange endpoint is reachable from here and from the server, then try again.");
        }
        catch (RateLimitExceededException refused)
        {
            throw new ToolFailure(ToolErrorCodes.RateLimited, refused.Message, "Wait a minute or raise the client's limit with configure_client.");
        }
        catch (ChecksumMismatchException mismatch)
        {
            throw new ToolFailure(ToolErrorCodes.ChecksumMismatch, mismatch.Message,
                "The stored object does not match its recorded SHA-256; upload it again.");
        }
        catch (HttpTransferException http)
        {
            throw new ToolFailure(ToolErrorCodes.TransferFailed, http.Message, http.Status switch
            {
                HttpStatusCode.Forbidden => "The URL has expired or its signature is not valid; upload again or ask for a new URL.",
                HttpStatusCode.NotFound => "The transfer no longer exists (deleted, or expired 48 hours after upload); check exchange_list.",
                _ => "Try again; an interrupted download resumes from where it stopped.",
            }, http.Status is { } status ? new Dictionary<string, object?> { ["http_status"] = (int)status } : null);
        }
        catch (ExchangeException storage)
        {
            throw new ToolFailure(ToolErrorCodes.TransferFailed, storage.Message,
                "Check the R2 credentials and bucket (ETPHONEHOME_R2_*) and that the endpoint is reachable, then try again.",
                storage.ErrorCode is { } code ? new Dictionary<string, object?> { ["storage_error"] = code } : null);
        }
        catch (LocalFileException local)
        {
            // The message names a server path the caller gave (local_path); it says nothing of the exchange's secrets.
            throw new ToolFailure(ToolErrorCodes.FileError, local.Message,
                "Create the directory (or free space, or fix its permissions) on the server, then call again.",
                new Dictionary<string, object?> { ["local_path"] = local.Path });
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or HttpRequestException)
        {
            fleet.Logger.LogWarning(ex, "exchange {What} failed", what);
            throw new ToolFailure(ToolErrorCodes.TransferFailed,
                ex is HttpRequestException ? $"the exchange endpoint could not be reached during the {what}" : $"the {what} failed reading or writing a local file",
                "Check that the file is readable (or its directory writable) and the endpoint reachable, then try again.");
        }
    }
}

/// <summary>exchange_upload: the new transfer and its presigned download URL.</summary>
public sealed record ExchangeUploaded(
    string TransferId, string DownloadUrl, string ExpiresAt, long Size, string Filename, string Sha256, ClientRef? DestClient, string Message);

/// <summary>exchange_download: the verified file on the server.</summary>
public sealed record ExchangeDownloaded(string LocalPath, long Size, string Sha256, bool Verified, bool? Resumed, string? TransferId);

/// <summary>exchange_list: transfers in the bucket, newest first.</summary>
public sealed record ExchangeListing(IReadOnlyList<ExchangeTransfer> Transfers, int Count, bool? Truncated, string? Message);

/// <summary>One transfer in the bucket; metadata as stored with it (source_client, dest_client, filename, sha256, …).</summary>
public sealed record ExchangeTransfer(string Key, string? TransferId, long Size, string? LastModified, IReadOnlyDictionary<string, string> Metadata);

/// <summary>exchange_delete: whether there was something to delete.</summary>
public sealed record ExchangeDeleted(string Key, bool Deleted, string TransferId, string Message);
