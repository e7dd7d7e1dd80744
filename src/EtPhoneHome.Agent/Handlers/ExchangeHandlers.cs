using System.Text.Json;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// <c>exchange_fetch</c> and <c>exchange_put</c>: the agent moves bytes between a presigned URL and a path inside its
/// path policy. The policy is checked here; the HTTP(S) transfer runs in eph-agent-exchange, a helper next to the
/// agent's executable started for each transfer, so the long-lived agent carries no HTTP or TLS code (3 MiB of its idle
/// memory; bench/README.md, "Agent memory after a burst"). URLs are bearer tokens: they reach the helper on its stdin,
/// never its argv, are never logged, and messages name only scheme, host and path.
/// </summary>
internal static class ExchangeHandlers
{
    /// <summary>File name of the helper (without .exe).</summary>
    public const string HelperName = "eph-agent-exchange";

    /// <summary>How long a cancelled helper may take to stop (it keeps a download's partial file) before it is killed.</summary>
    private static readonly TimeSpan CancelGrace = TimeSpan.FromSeconds(10);

    /// <summary>The helper's path: next to the agent's executable.</summary>
    internal static string HelperPath { get; set; } = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? HelperName + ".exe" : HelperName);

    public static async Task<JsonElement> FetchAsync(JsonElement? parameters, PathPolicy paths, CancellationToken ct)
    {
        var p = Parse(parameters, ExchangeJson.Default.ExchangeFetchParams);
        CheckUrl(p.Url);
        var target = CheckPath(p.Path, paths, mustExist: false);
        var directory = Path.GetDirectoryName(target);
        if (directory is null || !Directory.Exists(directory))
        {
            throw new RpcFault(RpcErrorCodes.NotFound, $"path: directory '{directory}' does not exist");
        }

        var outcome = await RunHelperAsync(new ExchangeHelperRequest { Method = ExchangeMethods.Fetch, Url = p.Url, Path = target, Sha256 = p.Sha256 },
            $"path '{target}' is not writable by the agent", ct).ConfigureAwait(false);
        if (p.Size is { } size && size != outcome.Size)
        {
            throw new RpcFault(ExchangeErrorCodes.ChecksumMismatch, $"size mismatch: expected {size} bytes, got {outcome.Size}");
        }

        AgentLog.Info($"exchange: fetched {outcome.Size} bytes into {target}{(outcome.Verified ? " (sha256 verified)" : "")}");
        return Wire.ToElement(new ExchangeFetchResult
        {
            Path = target,
            Size = outcome.Size,
            Sha256 = outcome.Sha256!,
            Resumed = outcome.Resumed,
            Verified = outcome.Verified,
        }, ExchangeJson.Default.ExchangeFetchResult);
    }

    public static async Task<JsonElement> PutAsync(JsonElement? parameters, PathPolicy paths, CancellationToken ct)
    {
        var p = Parse(parameters, ExchangeJson.Default.ExchangePutParams);
        CheckUrl(p.Url);
        var source = CheckPath(p.Path, paths, mustExist: true);
        var outcome = await RunHelperAsync(new ExchangeHelperRequest { Method = ExchangeMethods.Put, Url = p.Url, Path = source },
            $"path '{source}' is not readable by the agent", ct).ConfigureAwait(false);
        AgentLog.Info($"exchange: uploaded {outcome.Size} bytes from {source}");
        return Wire.ToElement(new ExchangePutResult { Path = source, Size = outcome.Size, Sha256 = outcome.Sha256! }, ExchangeJson.Default.ExchangePutResult);
    }

    /// <summary>Runs one transfer in the helper; its failures become the faults the in-process transfer raised.</summary>
    internal static async Task<ExchangeHelperResponse> RunHelperAsync(ExchangeHelperRequest request, string deniedMessage, CancellationToken ct)
    {
        // Started as the agent starts a command (ChildProcess): its own session, default signals, one exec.
        IChildProcess helper;
        try
        {
            helper = ChildProcess.Start(HelperPath, [], AppContext.BaseDirectory, ChildProcess.Environment([]));
        }
        catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or FileNotFoundException)
        {
            throw new RpcFault(ExchangeErrorCodes.TransferFailed, $"cannot start {HelperPath} (it ships next to eph-agent): {ex.Message}");
        }

        using var owned = helper;
        var stdout = new StreamReader(helper.StandardOutput).ReadToEndAsync(CancellationToken.None);
        var stderr = new StreamReader(helper.StandardError).ReadToEndAsync(CancellationToken.None);
        var stdin = helper.StandardInput;
        try
        {
            await stdin.WriteAsync(JsonSerializer.SerializeToUtf8Bytes(request, ExchangeJson.Default.ExchangeHelperRequest), CancellationToken.None).ConfigureAwait(false);
            await stdin.WriteAsync("\n"u8.ToArray(), CancellationToken.None).ConfigureAwait(false);
            await stdin.FlushAsync(CancellationToken.None).ConfigureAwait(false);
            await helper.WaitForExitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            // Closing its stdin stops the helper (a download keeps its partial file); kill it if it does not stop.
            CloseQuietly(stdin);
            using var grace = new CancellationTokenSource(CancelGrace);
            try
            {
                await helper.WaitForExitAsync(grace.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                helper.KillTree();
            }

            throw;
        }
        catch (IOException)
        {
            // The helper exited before it read the request; its stderr says why (below).
            await helper.WaitForExitAsync(CancellationToken.None).ConfigureAwait(false);
        }
        finally
        {
            CloseQuietly(stdin);
        }

        var answer = (await stdout.ConfigureAwait(false)).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).LastOrDefault();
        ExchangeHelperResponse? response = null;
        try
        {
            response = answer is null ? null : JsonSerializer.Deserialize(answer, ExchangeJson.Default.ExchangeHelperResponse);
        }
        catch (JsonException)
        {
            // reported below
        }

        if (response is null)
        {
            var reason = (await stderr.ConfigureAwait(false)).Trim();
            throw new RpcFault(ExchangeErrorCodes.TransferFailed,
                $"{HelperName} exited with code {helper.ExitCode} without an answer{(reason.Length == 0 ? string.Empty : ": " + Truncate(reason, 500))}");
        }

        return response.Error switch
        {
            null when response.Sha256 is not null => response,
            ExchangeHelperErrors.ChecksumMismatch => throw new RpcFault(ExchangeErrorCodes.ChecksumMismatch, response.Message ?? "checksum mismatch"),
            ExchangeHelperErrors.AccessDenied => throw new RpcFault(RpcErrorCodes.PathDenied, deniedMessage),
            _ => throw new RpcFault(ExchangeErrorCodes.TransferFailed, response.Message ?? $"{HelperName} failed ({response.Error ?? "no sha256 in its answer"})"),
        };
    }

    private static void CloseQuietly(Stream stream)
    {
        try
        {
            stream.Dispose();
        }
        catch (IOException)
        {
            // the helper is gone already
        }
    }

    private static string Truncate(string text, int max) => text.Length <= max ? text : text[..max] + "…";

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
