using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// <c>eph-server exchange upload|download|list|delete|upload-url|init</c>: transfers through the R2/S3 bucket,
/// with <c>--json</c> lines named like the reference's exchange tools.
/// </summary>
internal static class ExchangeVerbs
{
    public static void Register(RootCommand root)
    {
        var exchange = new Command("exchange", "File exchange through the R2 (S3-compatible) bucket: presigned URLs, multipart, resume, SHA-256. Needs ETPHONEHOME_R2_* variables.");
        exchange.Subcommands.Add(UploadCommand());
        exchange.Subcommands.Add(DownloadCommand());
        exchange.Subcommands.Add(ListCommand());
        exchange.Subcommands.Add(DeleteCommand());
        exchange.Subcommands.Add(UploadUrlCommand());
        exchange.Subcommands.Add(InitCommand());
        root.Subcommands.Add(exchange);
    }

    private static Option<int> ExpiresOption() => new("--expires-hours")
    {
        Description = $"Hours the presigned URL stays valid ({ExchangeLimits.MinExpiresHours}-{ExchangeLimits.MaxExpiresHours}).",
        DefaultValueFactory = _ => ExchangeLimits.DefaultExpiresHours,
    };

    private static Command UploadCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var path = new Argument<string>("path") { Description = "Local file to upload." };
        var dest = new Option<string[]>("--dest-client") { Description = "Destination client (uuid or display name); repeat for several.", AllowMultipleArgumentsPerToken = false };
        var remote = new Option<string?>("--remote-path") { Description = "Have each destination agent fetch the file into this absolute path (inside its allowed paths)." };
        var expires = ExpiresOption();
        var cmd = new Command("upload", "Upload a file (exchange_upload); with --remote-path the destination agents fetch it, verified.") { data, dest, remote, expires, json, path };
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "upload", async (registry, exchange, output) =>
        {
            var clients = pr.GetValue(dest) ?? [];
            var remotePath = pr.GetValue(remote);
            if (remotePath is not null && clients.Length == 0)
            {
                throw new ArgumentException("--remote-path needs --dest-client");
            }

            var targets = Targets(registry, clients);
            var upload = await exchange.UploadAsync(Path.GetFullPath(pr.GetValue(path)!), targets.Count == 1 ? targets[0].Uuid : null, pr.GetValue(expires), ExchangeLimits.ServerSource, null, ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), UploadRow.From(upload), Json.UploadRow,
                $"transfer_id  {upload.TransferId}\nsize         {upload.Size}\nsha256       {upload.Sha256}\nexpires_at   {OperatorRows.Time(upload.ExpiresAt)}\ndownload_url {upload.DownloadUrl.AbsoluteUri}").ConfigureAwait(false);
            if (remotePath is null)
            {
                return 0;
            }

            var failures = 0;
            await foreach (var result in new ExchangeDelivery(exchange).DeliverAsync(targets, upload.TransferId, remotePath, 16, ct).ConfigureAwait(false))
            {
                failures += result.Status == CommandStatus.Succeeded ? 0 : 1;
                await WriteAsync(output, pr.GetValue(json), ExchangeDeliveryRow.From(result), Json.ExchangeDeliveryRow,
                    $"{UntrustedText.ForTerminal(result.DisplayName)}: {result.Status}{(result.Error is null ? "" : " — " + UntrustedText.ForTerminal(result.Error))}").ConfigureAwait(false);
            }

            return failures == 0 ? 0 : 1;
        }, ct));
        return cmd;
    }

    private static Command DownloadCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var url = new Option<string?>("--url") { Description = "Presigned URL (only the configured endpoint unless --allow-any-host)." };
        var transfer = new Option<string?>("--transfer-id") { Description = "Transfer id to download." };
        var client = new Option<string?>("--client") { Description = "Collect from this client: its agent uploads --remote-path, then it is downloaded and verified." };
        var remote = new Option<string?>("--remote-path") { Description = "File on the client (with --client)." };
        var anyHost = new Option<bool>("--allow-any-host") { Description = "Allow a --url on another host than the configured endpoint." };
        var sha = new Option<string?>("--sha256") { Description = "Expected SHA-256 (hex), checked as well as the object's own." };
        var destination = new Argument<string>("destination") { Description = "Local file or existing directory to write." };
        var cmd = new Command("download", "Download a transfer (exchange_download): resumes from a partial file, verifies SHA-256, writes atomically.")
        {
            data, url, transfer, client, remote, anyHost, sha, json, destination,
        };
        cmd.Validators.Add(r =>
        {
            var modes = (r.GetValue(url) is null ? 0 : 1) + (r.GetValue(transfer) is null ? 0 : 1) + (r.GetValue(client) is null ? 0 : 1);
            if (modes != 1)
            {
                r.AddError("choose exactly one of --url, --transfer-id or --client");
            }
            else if ((r.GetValue(client) is null) != (r.GetValue(remote) is null))
            {
                r.AddError("--client and --remote-path go together");
            }
        });
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "download", async (registry, exchange, output) =>
        {
            var target = Path.GetFullPath(pr.GetValue(destination)!);
            if (pr.GetValue(client) is { } name)
            {
                var targets = Targets(registry, [name]);
                var result = await new ExchangeDelivery(exchange).CollectAsync(targets[0], pr.GetValue(remote)!, target, ct).ConfigureAwait(false);
                await WriteAsync(output, pr.GetValue(json), ExchangeDeliveryRow.From(result), Json.ExchangeDeliveryRow,
                    $"{UntrustedText.ForTerminal(result.DisplayName)}: {result.Status} {result.LocalPath}{(result.Error is null ? "" : " — " + UntrustedText.ForTerminal(result.Error))}").ConfigureAwait(false);
                return result.Status == CommandStatus.Succeeded ? 0 : 1;
            }

            var download = pr.GetValue(url) is { } text
                ? await exchange.DownloadUrlAsync(new Uri(text), target, pr.GetValue(anyHost), pr.GetValue(sha), null, ct).ConfigureAwait(false)
                : await exchange.DownloadAsync(pr.GetValue(transfer)!, target, pr.GetValue(sha), null, ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), DownloadRow.From(download), Json.DownloadRow,
                $"{download.LocalPath}: {download.Size} bytes, sha256 {download.Sha256}{(download.Verified ? " (verified)" : " (no checksum to verify)")}{(download.Resumed ? ", resumed" : "")}").ConfigureAwait(false);
            return 0;
        }, ct));
        return cmd;
    }

    private static Command ListCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var source = new Option<string?>("--source-client") { Description = "Only transfers uploaded by this client (uuid, display name or 'server')." };
        var dest = new Option<string?>("--dest-client") { Description = "Only transfers addressed to this client." };
        var cmd = new Command("list", "List pending transfers (exchange_list), every page, with their metadata.") { data, source, dest, json };
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "list", async (registry, exchange, output) =>
        {
            var s = pr.GetValue(source) is { } sv ? ExchangeParticipants.Resolve(registry.Clients, sv, "source_client") : null;
            var d = pr.GetValue(dest) is { } dv ? ExchangeParticipants.Resolve(registry.Clients, dv, "dest_client") : null;
            var items = await exchange.ListAsync(s, d, includeMetadata: true, ct).ConfigureAwait(false);
            if (pr.GetValue(json))
            {
                foreach (var item in items)
                {
                    await output.WriteLineAsync(JsonSerializer.Serialize(ListRow.From(item), Json.ListRow)).ConfigureAwait(false);
                }
            }
            else
            {
                await output.WriteAsync(OperatorRows.Table(["TRANSFER ID", "SIZE", "DEST", "LAST MODIFIED"],
                    items.Select(i => (IReadOnlyList<string?>)[i.TransferId ?? i.Key, i.Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
                        i.Metadata.GetValueOrDefault("dest_client"), i.LastModified is { } m ? OperatorRows.Time(m) : null]), maxCell: 80)).ConfigureAwait(false);
            }

            return 0;
        }, ct));
        return cmd;
    }

    private static Command DeleteCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var transfer = new Argument<string>("transfer-id") { Description = "Transfer id." };
        var source = new Option<string>("--source-client") { Description = "Client uuid (or 'server') that uploaded it.", Required = true };
        var cmd = new Command("delete", "Delete a transfer (exchange_delete); reports deleted=false when none existed (exit 3).") { data, source, json, transfer };
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "delete", async (registry, exchange, output) =>
        {
            var result = await exchange.DeleteAsync(pr.GetValue(transfer)!, ExchangeParticipants.Resolve(registry.Clients, pr.GetValue(source)!, "source_client"), ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), new DeleteRow(result.Key, result.TransferId, result.Deleted), Json.DeleteRow,
                result.Deleted ? $"deleted {result.Key}" : $"no such transfer: {result.Key} (nothing deleted)").ConfigureAwait(false);
            return result.Deleted ? 0 : 3;
        }, ct));
        return cmd;
    }

    private static Command UploadUrlCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var source = new Option<string>("--source-client") { Description = "The client that will upload (uuid or display name).", Required = true };
        var file = new Option<string>("--filename") { Description = "File name the transfer id carries.", Required = true };
        var expires = ExpiresOption();
        var cmd = new Command("upload-url", "Create a presigned PUT URL for a client → server upload: `curl -T FILE URL` on the client.") { data, source, file, expires, json };
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "upload-url", async (registry, exchange, output) =>
        {
            var u = exchange.CreateUploadUrl(ExchangeParticipants.Resolve(registry.Clients, pr.GetValue(source)!, "source_client"), pr.GetValue(file)!, pr.GetValue(expires));
            await WriteAsync(output, pr.GetValue(json), new UploadUrlRow(u.TransferId, u.Key, u.UploadUrl.AbsoluteUri, OperatorRows.Time(u.ExpiresAt), u.SourceClient, u.FileName), Json.UploadUrlRow,
                $"transfer_id {u.TransferId}\nexpires_at  {OperatorRows.Time(u.ExpiresAt)}\ncurl -T {SingleQuoted(u.FileName)} {SingleQuoted(u.UploadUrl.AbsoluteUri)}").ConfigureAwait(false);
            return 0;
        }, ct));
        return cmd;
    }

    private static Command InitCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var show = new Option<bool>("--show") { Description = "Only show the current lifecycle rules." };
        var cmd = new Command("init", $"Install the lifecycle rule deleting {ExchangeLimits.Prefix} after {ExchangeLimits.LifecycleDays} days (48 h), then show the rules.") { data, show, json };
        cmd.SetAction((pr, ct) => RunAsync(pr, data, "init", async (registry, exchange, output) =>
        {
            var rules = pr.GetValue(show) ? await exchange.GetLifecycleAsync(ct).ConfigureAwait(false) : await exchange.InitializeAsync(ct).ConfigureAwait(false);
            foreach (var r in rules)
            {
                await WriteAsync(output, pr.GetValue(json), new RuleRow(r.Id, r.Prefix, r.ExpirationDays, r.Enabled), Json.RuleRow,
                    $"{r.Id}: {r.Prefix} expires after {r.ExpirationDays} day(s){(r.Enabled ? "" : " (disabled)")}").ConfigureAwait(false);
            }

            return 0;
        }, ct));
        return cmd;
    }

    private static IReadOnlyList<FleetTarget> Targets(RegistryStores registry, IReadOnlyList<string> names)
    {
        if (names.Count == 0)
        {
            return [];
        }

        var lookup = ClientQueries.Find(registry.Clients, names: names, ids: null, onlineOnly: false);
        if (lookup.NotFound.Count > 0)
        {
            throw new ArgumentException($"no client matches: {string.Join(", ", lookup.NotFound)}");
        }

        return FleetTargets.FromClients(registry, lookup.Clients);
    }

    private static async Task WriteAsync<T>(TextWriter output, bool json, T row, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, string text)
    {
        await output.WriteLineAsync(json ? JsonSerializer.Serialize(row, type) : text).ConfigureAwait(false);
    }

    private static async Task<int> RunAsync(ParseResult pr, Option<string?> data, string verb, Func<RegistryStores, ExchangeClient, TextWriter, Task<int>> body, CancellationToken ct)
    {
        var error = pr.InvocationConfiguration.Error;
        try
        {
            using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
            using var exchange = services.Exchange();
            return await body(services.Registry, exchange, pr.InvocationConfiguration.Output).ConfigureAwait(false);
        }
        catch (ExchangeNotConfiguredException ex)
        {
            await error.WriteLineAsync($"eph-server exchange {verb}: {ex.Message}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }
        catch (Exception ex) when (ex is ArgumentException or ExchangeException or ExchangeHostNotAllowedException or ChecksumMismatchException
            or HttpTransferException or LocalFileException or IOException or UnauthorizedAccessException or InvalidOperationException or RegistryNotFoundException or UriFormatException)
        {
            await error.WriteLineAsync($"eph-server exchange {verb}: {ex.Message}").ConfigureAwait(false);
            return ex is ArgumentException or UriFormatException ? OperatorVerbs.UsageError : 1;
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            return 130;
        }
    }

    private static readonly ExchangeRowsJson Json = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    /// <summary>A POSIX shell single-quoted word (a quote inside is written '\''), so the printed curl line can be pasted as it is.</summary>
    private static string SingleQuoted(string value) => "'" + value.Replace("'", "'\\''", StringComparison.Ordinal) + "'";
}

internal sealed record UploadRow(string TransferId, string Key, string DownloadUrl, string ExpiresAt, long Size, string Filename, string Sha256, string SourceClient, string? DestClient)
{
    public static UploadRow From(ExchangeUploadResult u) =>
        new(u.TransferId, u.Key, u.DownloadUrl.AbsoluteUri, OperatorRows.Time(u.ExpiresAt), u.Size, u.FileName, u.Sha256, u.SourceClient, u.DestClient);
}

internal sealed record DownloadRow(string LocalPath, long Size, string Sha256, bool Verified, bool Resumed, string? TransferId)
{
    public static DownloadRow From(ExchangeDownloadResult d) => new(d.LocalPath, d.Size, d.Sha256, d.Verified, d.Resumed, d.TransferId);
}

internal sealed record ExchangeDeliveryRow(string Uuid, string DisplayName, string Status, string TransferId, string RemotePath, long? Size, string? Sha256, bool Verified, string? LocalPath, string? Error)
{
    public static ExchangeDeliveryRow From(ExchangeDeliveryResult r) => new(r.Uuid, r.DisplayName, OperationNames.Wire(r.Status), r.TransferId, r.RemotePath, r.Size, r.Sha256, r.Verified, r.LocalPath, r.Error);
}

internal sealed record ListRow(string Key, string? TransferId, long Size, string? LastModified, IReadOnlyDictionary<string, string> Metadata)
{
    public static ListRow From(ExchangeObject o) => new(o.Key, o.TransferId, o.Size, o.LastModified is { } m ? OperatorRows.Time(m) : null, o.Metadata);
}

internal sealed record DeleteRow(string Key, string TransferId, bool Deleted);

internal sealed record UploadUrlRow(string TransferId, string Key, string UploadUrl, string ExpiresAt, string SourceClient, string Filename);

internal sealed record RuleRow(string Id, string Prefix, int ExpirationDays, bool Enabled);

/// <summary>Snake-case JSON lines of the exchange verbs; nulls are written so every line has every field.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower)]
[JsonSerializable(typeof(UploadRow))]
[JsonSerializable(typeof(DownloadRow))]
[JsonSerializable(typeof(ExchangeDeliveryRow))]
[JsonSerializable(typeof(ListRow))]
[JsonSerializable(typeof(DeleteRow))]
[JsonSerializable(typeof(UploadUrlRow))]
[JsonSerializable(typeof(RuleRow))]
internal sealed partial class ExchangeRowsJson : JsonSerializerContext;
