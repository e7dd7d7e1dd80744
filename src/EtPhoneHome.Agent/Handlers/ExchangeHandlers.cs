using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// <c>exchange_fetch</c> and <c>exchange_put</c>: the agent moves bytes between a presigned URL and a path
/// inside its path policy with plain <see cref="HttpClient"/> (AOT-safe, no storage SDK). URLs are bearer
/// tokens: they are never logged, and messages name only scheme, host and path.
/// </summary>
internal static class ExchangeHandlers
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    public static async Task<JsonElement> FetchAsync(JsonElement? parameters, PathPolicy paths, CancellationToken ct)
    {
        var p = Parse(parameters, ExchangeJson.Default.ExchangeFetchParams);
        var url = CheckUrl(p.Url);
        var target = CheckPath(p.Path, paths, mustExist: false);
        var directory = Path.GetDirectoryName(target);
        if (directory is null || !Directory.Exists(directory))
        {
            throw new RpcFault(RpcErrorCodes.NotFound, $"path: directory '{directory}' does not exist");
        }

        try
        {
            var outcome = await PresignedHttpTransfer.DownloadAsync(Http, url, target, p.Sha256, null, ct).ConfigureAwait(false);
            if (p.Size is { } size && size != outcome.Size)
            {
                throw new RpcFault(ExchangeErrorCodes.ChecksumMismatch, $"size mismatch: expected {size} bytes, got {outcome.Size}");
            }

            AgentLog.Info($"exchange: fetched {outcome.Size} bytes into {target}{(outcome.Verified ? " (sha256 verified)" : "")}");
            return Wire.ToElement(new ExchangeFetchResult
            {
                Path = outcome.Path,
                Size = outcome.Size,
                Sha256 = outcome.Sha256,
                Resumed = outcome.Resumed,
                Verified = outcome.Verified,
            }, ExchangeJson.Default.ExchangeFetchResult);
        }
        catch (ChecksumMismatchException ex)
        {
            throw new RpcFault(ExchangeErrorCodes.ChecksumMismatch, ex.Message);
        }
        catch (HttpTransferException ex)
        {
            throw new RpcFault(ExchangeErrorCodes.TransferFailed, ex.Message);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or LocalFileException { InnerException: UnauthorizedAccessException })
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"path '{target}' is not writable by the agent");
        }
        catch (LocalFileException ex)
        {
            // A local fault (disk full, a path that vanished): the message names the path, nothing is retried.
            throw new RpcFault(ExchangeErrorCodes.TransferFailed, ex.Message);
        }
    }

    public static async Task<JsonElement> PutAsync(JsonElement? parameters, PathPolicy paths, CancellationToken ct)
    {
        var p = Parse(parameters, ExchangeJson.Default.ExchangePutParams);
        var url = CheckUrl(p.Url);
        var source = CheckPath(p.Path, paths, mustExist: true);
        try
        {
            var outcome = await PresignedHttpTransfer.UploadAsync(Http, url, source, null, ct).ConfigureAwait(false);
            AgentLog.Info($"exchange: uploaded {outcome.Size} bytes from {source}");
            return Wire.ToElement(new ExchangePutResult { Path = source, Size = outcome.Size, Sha256 = outcome.Sha256 }, ExchangeJson.Default.ExchangePutResult);
        }
        catch (HttpTransferException ex)
        {
            throw new RpcFault(ExchangeErrorCodes.TransferFailed, ex.Message);
        }
        catch (UnauthorizedAccessException)
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"path '{source}' is not readable by the agent");
        }
    }

    private static T Parse<T>(JsonElement? parameters, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        where T : class
    {
        try
        {
            return Wire.FromElement(parameters, type);
        }
        catch (ProtocolException ex)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, ex.Message);
        }
    }

    private static Uri CheckUrl(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var url) || url.Scheme is not ("https" or "http"))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, "url: expected an absolute http(s) URL");
        }

        return url;
    }

    private static string CheckPath(string path, PathPolicy paths, bool mustExist)
    {
        if (string.IsNullOrWhiteSpace(path) || !Path.IsPathFullyQualified(path))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"path: expected an absolute path, got '{path}'");
        }

        var full = Path.GetFullPath(path);
        if (!paths.IsAllowed(full) || !paths.IsAllowed(full + PresignedHttpTransfer.PartialSuffix))
        {
            throw new RpcFault(RpcErrorCodes.PathDenied, $"path '{full}' is outside the allowed paths");
        }

        if (Directory.Exists(full))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"path '{full}' is a directory; name the file");
        }

        if (mustExist && !File.Exists(full))
        {
            throw new RpcFault(RpcErrorCodes.NotFound, $"path '{full}' does not exist");
        }

        return full;
    }
}
