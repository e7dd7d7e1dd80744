using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.AgentExchange;

/// <summary>
/// One transfer for the agent: the request on <c>input</c> (one JSON line), the answer on <c>output</c> (one JSON line).
/// End of <c>input</c> after the request cancels the transfer (the agent closes it when its request is cancelled, and it
/// ends by itself when the agent dies); a cancelled download keeps its partial file for a later resume.
/// </summary>
internal static class ExchangeHelper
{
    /// <summary>Longest request line accepted (a presigned URL is a few KiB).</summary>
    internal const int MaxRequestBytes = 64 * 1024;

    public static async Task<int> RunAsync(Stream input, Stream output)
    {
        var line = await ReadLineAsync(input).ConfigureAwait(false);
        ExchangeHelperRequest? request = null;
        try
        {
            request = line is null ? null : JsonSerializer.Deserialize(line, ExchangeJson.Default.ExchangeHelperRequest);
        }
        catch (JsonException)
        {
            // answered below
        }

        if (request is null || !Uri.TryCreate(request.Url, UriKind.Absolute, out var url) || url.Scheme is not ("https" or "http")
            || !Path.IsPathFullyQualified(request.Path) || request.Method is not (ExchangeMethods.Fetch or ExchangeMethods.Put))
        {
            await WriteAsync(output, Failed(ExchangeHelperErrors.InvalidRequest, "expected one JSON line with method (exchange_fetch or exchange_put), an absolute http(s) url and an absolute path")).ConfigureAwait(false);
            return 2;
        }

        using var cts = new CancellationTokenSource();
        // Anything after the request, or its end, stops the transfer.
        _ = Task.Run(async () =>
        {
            var rest = new byte[256];
            try
            {
                while (await input.ReadAsync(rest).ConfigureAwait(false) > 0)
                {
                }
            }
            catch (IOException)
            {
            }

            await cts.CancelAsync().ConfigureAwait(false);
        });

        var response = await TransferAsync(request, url, cts.Token).ConfigureAwait(false);
        await WriteAsync(output, response).ConfigureAwait(false);
        return 0;
    }

    private static async Task<ExchangeHelperResponse> TransferAsync(ExchangeHelperRequest request, Uri url, CancellationToken ct)
    {
        using var http = new HttpClient(new SocketsHttpHandler()) { Timeout = Timeout.InfiniteTimeSpan };
        try
        {
            if (request.Method == ExchangeMethods.Fetch)
            {
                var fetched = await PresignedHttpTransfer.DownloadAsync(http, url, request.Path, request.Sha256, null, ct).ConfigureAwait(false);
                return new ExchangeHelperResponse { Size = fetched.Size, Sha256 = fetched.Sha256, Resumed = fetched.Resumed, Verified = fetched.Verified };
            }

            var put = await PresignedHttpTransfer.UploadAsync(http, url, request.Path, null, ct).ConfigureAwait(false);
            return new ExchangeHelperResponse { Size = put.Size, Sha256 = put.Sha256 };
        }
        catch (ChecksumMismatchException ex)
        {
            return Failed(ExchangeHelperErrors.ChecksumMismatch, ex.Message);
        }
        catch (HttpTransferException ex)
        {
            return Failed(ExchangeHelperErrors.TransferFailed, ex.Message);
        }
        catch (Exception ex) when (ex is UnauthorizedAccessException or LocalFileException { InnerException: UnauthorizedAccessException })
        {
            return Failed(ExchangeHelperErrors.AccessDenied, ex.Message);
        }
        catch (LocalFileException ex)
        {
            return Failed(ExchangeHelperErrors.LocalFile, ex.Message);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return Failed(ExchangeHelperErrors.TransferFailed, "cancelled");
        }
    }

    private static ExchangeHelperResponse Failed(string error, string message) => new() { Error = error, Message = message };

    private static async Task WriteAsync(Stream output, ExchangeHelperResponse response)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(response, ExchangeJson.Default.ExchangeHelperResponse);
        await output.WriteAsync(bytes).ConfigureAwait(false);
        await output.WriteAsync("\n"u8.ToArray()).ConfigureAwait(false);
        await output.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>The first line of <paramref name="input"/> (UTF-8, without its newline), or null when it is too long or missing.</summary>
    private static async Task<string?> ReadLineAsync(Stream input)
    {
        var buffer = new byte[MaxRequestBytes];
        var length = 0;
        while (length < buffer.Length)
        {
            var n = await input.ReadAsync(buffer.AsMemory(length, 1)).ConfigureAwait(false);
            if (n == 0)
            {
                return null;
            }

            if (buffer[length] == (byte)'\n')
            {
                return System.Text.Encoding.UTF8.GetString(buffer, 0, length);
            }

            length++;
        }

        return null;
    }
}
