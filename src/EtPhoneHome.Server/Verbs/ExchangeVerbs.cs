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
        return Verb(cmd, data, "upload", async (pr, ops, output, ct) =>
        {
            var clients = pr.GetValue(dest) ?? [];
            var remotePath = pr.GetValue(remote);
            if (remotePath is not null && clients.Length == 0)
            {
                throw new ArgumentException("--remote-path needs --dest-client");
            }

            // Every name is checked before anything is uploaded.
            var targets = clients.Length == 0 ? [] : await ops.ResolveClientsAsync(clients, ct).ConfigureAwait(false);
            var upload = await ops.UploadAsync(Path.GetFullPath(pr.GetValue(path)!), targets.Count == 1 ? targets[0].Uuid : null, pr.GetValue(expires), null, ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), UploadRow.From(upload), Json.UploadRow,
                $"transfer_id  {UntrustedText.ForTerminal(upload.TransferId)}\nsize         {upload.Size}\nsha256       {UntrustedText.ForTerminal(upload.Sha256)}\nexpires_at   {OperatorRows.Time(upload.ExpiresAt)}\ndownload_url {upload.DownloadUrl.AbsoluteUri}").ConfigureAwait(false);
            if (remotePath is null)
            {
                return 0;
            }

            var failures = 0;
            await foreach (var result in ops.DeliverAsync([.. targets.Select(t => t.Uuid)], upload.TransferId, remotePath, 16, ct).ConfigureAwait(false))
            {
                failures += result.Status == CommandStatus.Succeeded ? 0 : 1;
                await WriteAsync(output, pr.GetValue(json), ExchangeDeliveryRow.From(result), Json.ExchangeDeliveryRow,
                    $"{UntrustedText.ForTerminal(result.DisplayName)}: {result.Status}{(result.Error is null ? "" : " — " + UntrustedText.ForTerminal(result.Error))}").ConfigureAwait(false);
            }

            return failures == 0 ? 0 : 1;
        });
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
        return Verb(cmd, data, "download", async (pr, ops, output, ct) =>
        {
            var target = Path.GetFullPath(pr.GetValue(destination)!);
            if (pr.GetValue(client) is { } name)
            {
                var result = await ops.CollectAsync(name, pr.GetValue(remote)!, target, ct).ConfigureAwait(false);
                await WriteAsync(output, pr.GetValue(json), ExchangeDeliveryRow.From(result), Json.ExchangeDeliveryRow,
                    $"{UntrustedText.ForTerminal(result.DisplayName)}: {result.Status} {UntrustedText.ForTerminal(result.LocalPath)}{(result.Error is null ? "" : " — " + UntrustedText.ForTerminal(result.Error))}").ConfigureAwait(false);
                return result.Status == CommandStatus.Succeeded ? 0 : 1;
            }

            var download = await ops.DownloadAsync(pr.GetValue(transfer), pr.GetValue(url) is { } text ? new Uri(text) : null, target, pr.GetValue(anyHost), pr.GetValue(sha), null, ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), DownloadRow.From(download), Json.DownloadRow,
                $"{download.LocalPath}: {download.Size} bytes, sha256 {download.Sha256}{(download.Verified ? " (verified)" : " (no checksum to verify)")}{(download.Resumed ? ", resumed" : "")}").ConfigureAwait(false);
            return 0;
        });
    }

    private static Command ListCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var source = new Option<string?>("--source-client") { Description = "Only transfers uploaded by this client (uuid, display name or 'server')." };
        var dest = new Option<string?>("--dest-client") { Description = "Only transfers addressed to this client." };
        var cmd = new Command("list", "List pending transfers (exchange_list), every page, with their metadata.") { data, source, dest, json };
        return Verb(cmd, data, "list", async (pr, ops, output, ct) =>
        {
            var items = await ops.ListAsync(pr.GetValue(source), pr.GetValue(dest), ct).ConfigureAwait(false);
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
        });
    }

    private static Command DeleteCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var transfer = new Argument<string>("transfer-id") { Description = "Transfer id." };
        var source = new Option<string>("--source-client") { Description = "Client uuid (or 'server') that uploaded it.", Required = true };
        var cmd = new Command("delete", "Delete a transfer (exchange_delete); reports deleted=false when none existed (exit 3).") { data, source, json, transfer };
        return Verb(cmd, data, "delete", async (pr, ops, output, ct) =>
        {
            var result = await ops.DeleteAsync(pr.GetValue(transfer)!, pr.GetValue(source)!, ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), new DeleteRow(result.Key, result.TransferId, result.Deleted), Json.DeleteRow,
                result.Deleted ? $"deleted {UntrustedText.ForTerminal(result.Key)}" : $"no such transfer: {UntrustedText.ForTerminal(result.Key)} (nothing deleted)").ConfigureAwait(false);
            return result.Deleted ? 0 : 3;
        });
    }

    private static Command UploadUrlCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var source = new Option<string>("--source-client") { Description = "The client that will upload (uuid or display name).", Required = true };
        var file = new Option<string>("--filename") { Description = "File name the transfer id carries.", Required = true };
        var expires = ExpiresOption();
        var cmd = new Command("upload-url", "Create a presigned PUT URL for a client → server upload: `curl -T FILE URL` on the client.") { data, source, file, expires, json };
        return Verb(cmd, data, "upload-url", async (pr, ops, output, ct) =>
        {
            var u = await ops.CreateUploadUrlAsync(pr.GetValue(source)!, pr.GetValue(file)!, pr.GetValue(expires), ct).ConfigureAwait(false);
            await WriteAsync(output, pr.GetValue(json), new UploadUrlRow(u.TransferId, u.Key, u.UploadUrl.AbsoluteUri, OperatorRows.Time(u.ExpiresAt), u.SourceClient, u.FileName), Json.UploadUrlRow,
                $"transfer_id {UntrustedText.ForTerminal(u.TransferId)}\nexpires_at  {OperatorRows.Time(u.ExpiresAt)}\ncurl -T {SingleQuoted(UntrustedText.ForTerminal(u.FileName)!)} {SingleQuoted(u.UploadUrl.AbsoluteUri)}").ConfigureAwait(false);
            return 0;
        });
    }

    private static Command InitCommand()
    {
        var data = CommonOptions.Data;
        var json = CommonOptions.Json;
        var show = new Option<bool>("--show") { Description = "Only show the current lifecycle rules." };
        var cmd = new Command("init", $"Install the lifecycle rule deleting {ExchangeLimits.Prefix} after {ExchangeLimits.LifecycleDays} days (48 h), then show the rules.") { data, show, json };
        return Verb(cmd, data, "init", async (pr, ops, output, ct) =>
        {
            var rules = await ops.LifecycleAsync(!pr.GetValue(show), ct).ConfigureAwait(false);
            foreach (var r in rules)
            {
                await WriteAsync(output, pr.GetValue(json), new RuleRow(r.Id, r.Prefix, r.ExpirationDays, r.Enabled), Json.RuleRow,
                    $"{UntrustedText.ForTerminal(r.Id)}: {UntrustedText.ForTerminal(r.Prefix)} expires after {r.ExpirationDays} day(s){(r.Enabled ? "" : " (disabled)")}").ConfigureAwait(false);
            }

            return 0;
        });
    }

    private static async Task WriteAsync<T>(TextWriter output, bool json, T row, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, string text)
    {
        await output.WriteLineAsync(json ? JsonSerializer.Serialize(row, type) : text).ConfigureAwait(false);
    }

    /// <summary>What a verb does with the exchange, wherever it is: on this host or through a server.</summary>
    private delegate Task<int> Body(ParseResult pr, IExchangeOperations ops, TextWriter output, CancellationToken ct);

    private sealed record Registered(string Verb, Body Body);

    private static readonly System.Runtime.CompilerServices.ConditionalWeakTable<Command, Registered> Bodies = [];

    /// <summary>Gives <paramref name="cmd"/> its action on this host, and keeps its body for <see cref="RunRemoteAsync"/>.</summary>
    private static Command Verb(Command cmd, Option<string?> data, string verb, Body body)
    {
        Bodies.AddOrUpdate(cmd, new Registered(verb, body));
        cmd.SetAction((pr, ct) => RunAsync(pr, verb, async () =>
        {
            using var services = OperatorVerbs.Services(pr, pr.GetValue(data));
            using var exchange = services.Exchange();
            return await body(pr, new LocalExchangeOperations(services.Registry, exchange), pr.InvocationConfiguration.Output, ct).ConfigureAwait(false);
        }, ct));
        return cmd;
    }

    /// <summary>
    /// An exchange verb through a server's operator service (<c>--server</c>): the same body, output and exit codes; the
    /// server signs with its credentials and the bytes go straight between this machine and the bucket. A refusal of the
    /// server is left to the caller (<see cref="RemoteCli"/>), which maps it as for every remote verb.
    /// </summary>
    internal static Task<int> RunRemoteAsync(ParseResult pr, Core.Remote.RemoteOperator op, CancellationToken ct) =>
        Bodies.TryGetValue(pr.CommandResult.Command, out var registered)
            ? RunAsync(pr, registered.Verb, async () =>
            {
                try
                {
                    return await registered.Body(pr, new Core.Remote.RemoteExchange(op), pr.InvocationConfiguration.Output, ct).ConfigureAwait(false);
                }
                catch (Core.Remote.OperatorRemoteException ex) when (ex.Code == OperatorErrorCodes.NotFound && ex.Error.Names is not { Count: > 0 })
                {
                    // A transfer (not a client) that is not there: exit 1, as on the server host.
                    await pr.InvocationConfiguration.Error.WriteLineAsync($"eph-server exchange {registered.Verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
                    return 1;
                }
            }, ct)
            : throw new InvalidOperationException($"{pr.CommandResult.Command.Name} is not an exchange verb");

    private static async Task<int> RunAsync(ParseResult pr, string verb, Func<Task<int>> run, CancellationToken ct)
    {
        var error = pr.InvocationConfiguration.Error;
        try
        {
            return await run().ConfigureAwait(false);
        }
        catch (ExchangeNotConfiguredException ex)
        {
            await error.WriteLineAsync($"eph-server exchange {verb}: {ex.Message}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }
        catch (UnknownClientsException ex)
        {
            await error.WriteLineAsync($"eph-server exchange {verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
            return OperatorVerbs.UsageError;
        }
        catch (Exception ex) when (ex is ArgumentException or ExchangeException or ExchangeHostNotAllowedException or ChecksumMismatchException
            or HttpTransferException or LocalFileException or IOException or UnauthorizedAccessException or InvalidOperationException or RegistryNotFoundException or UriFormatException
            or ProtocolException)
        {
            await error.WriteLineAsync($"eph-server exchange {verb}: {UntrustedText.ForTerminal(ex.Message)}").ConfigureAwait(false);
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
