using EtPhoneHome.Core.Services;
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Server.Verbs;

/// <summary>
/// File verbs: read, write, ls, upload, download. Targets are chosen like exec (--client, --tag or --all); each target
/// gets one line (--json: one JSON object) written as it finishes. Exit 0 when every target succeeded, 1 when any
/// did not, 2 for a bad selection.
/// </summary>
internal static class FilesVerbs
{
    public static void Register(RootCommand root)
    {
        root.Subcommands.Add(ReadCommand());
        root.Subcommands.Add(WriteCommand());
        root.Subcommands.Add(ListCommand());
        root.Subcommands.Add(TransferCommand(upload: true));
        root.Subcommands.Add(TransferCommand(upload: false));
    }

    /// <summary>The target options every file verb shares.</summary>
    private sealed class Targets
    {
        public Option<string?> Data { get; } = CommonOptions.Data;
        public Option<bool> Json { get; } = new("--json") { Description = "One JSON object per line (snake_case fields) instead of text." };
        public Option<bool> All { get; } = new("--all") { Description = "Every registered client." };
        public Option<string[]> Client { get; } = new("--client") { Description = "A client uuid or display name (wildcards * and ?); repeat for more.", AllowMultipleArgumentsPerToken = false };
        public Option<string[]> Tag { get; } = new("--tag") { Description = "Clients carrying this tag (repeat: all must match).", AllowMultipleArgumentsPerToken = false };
        public Option<int> Throttle { get; } = new("--throttle") { Description = $"Most clients contacted at once ({FleetOptions.MinThrottleLimit}–{FleetOptions.MaxThrottleLimit}).", DefaultValueFactory = _ => FleetOptions.DefaultThrottleLimit };

        public Command Attach(Command command)
        {
            command.Options.Add(Data);
            command.Options.Add(All);
            command.Options.Add(Client);
            command.Options.Add(Tag);
            command.Options.Add(Throttle);
            command.Options.Add(Json);
            Throttle.Validators.Add(r => OperatorVerbs.Range(r, FleetOptions.MinThrottleLimit, FleetOptions.MaxThrottleLimit));
            command.Validators.Add(r =>
            {
                var modes = (r.GetValue(All) ? 1 : 0) + ((r.GetValue(Client)?.Length ?? 0) > 0 ? 1 : 0) + ((r.GetValue(Tag)?.Length ?? 0) > 0 ? 1 : 0);
                if (modes != 1)
                {
                    r.AddError("choose the targets with exactly one of --all, --client or --tag");
                }
            });
            return command;
        }

        public TargetSelection Selection(ParseResult pr) => new()
        {
            All = pr.GetValue(All),
            Clients = pr.GetValue(Client) ?? [],
            Tags = pr.GetValue(Tag) ?? [],
        };
    }

    private static Command ReadCommand()
    {
        var t = new Targets();
        var path = new Argument<string>("path") { Description = "Absolute path of the file on the client." };
        var maxBytes = new Option<long>("--max-bytes") { Description = "Largest file read whole (1 – 10 MiB).", DefaultValueFactory = _ => FileLimits.DefaultReadBytes };
        var truncate = new Option<bool>("--truncate") { Description = "Return the first --max-bytes bytes of a larger file instead of an error." };
        var cmd = t.Attach(new Command("read", "Read a file on clients (text, or base64 for binary files; up to 10 MiB — download streams larger files).") { path, maxBytes, truncate });
        cmd.SetAction((pr, ct) => RunAsync(pr, t, ct, async (services, targets, output) =>
        {
            var p = ReadRequest(pr);
            return await ReadOutputAsync(services.ReadFilesAsync(targets, p, pr.GetValue(t.Throttle), ct), p.Path, pr.GetValue(t.Json), output).ConfigureAwait(false);
        }));
        return cmd;
    }

    /// <summary>The read verb's request from its arguments (here and through --server).</summary>
    internal static ReadFileParams ReadRequest(ParseResult pr) =>
        new() { Path = pr.GetValue<string>("path")!, MaxBytes = pr.GetValue<long>("--max-bytes"), Truncate = pr.GetValue<bool>("--truncate") ? true : null };

    /// <summary>The read verb's output: each client's file as it arrives; 0 when every read succeeded.</summary>
    internal static Task<int> ReadOutputAsync(IAsyncEnumerable<FleetFileOutcome<ReadFileResult>> outcomes, string path, bool json, TextWriter output) =>
        EachAsync(outcomes, outcome =>
            json ? Line(Row(outcome, path) with
            {
                Size = outcome.Value?.Size,
                Sha256 = outcome.Value?.Sha256,
                Encoding = outcome.Value?.Encoding,
                Content = outcome.Value?.Content,
                Truncated = outcome.Value?.Truncated,
            })
            : outcome.Value is { } v ? Header(outcome) + (v.Encoding == FileEncodings.Utf8 ? UntrustedText.ForTerminalBlock(v.Content) : $"(binary, {v.Size} bytes, base64)\n{v.Content}") + (v.Content.EndsWith('\n') ? "" : "\n")
            : Header(outcome), output);

    private static Command WriteCommand()
    {
        var t = new Targets();
        var path = new Argument<string>("path") { Description = "Absolute path of the file on the client." };
        var value = new Option<string?>("--value") { Description = "The text to write (UTF-8)." };
        var fromFile = new Option<string?>("--from-file") { Description = "A local file whose bytes are written (at most 10 MiB; upload streams larger files)." };
        var mode = new Option<string?>("--mode") { Description = "Unix permission bits in octal (640); default keeps the replaced file's mode, else 644." };
        var noParents = new Option<bool>("--no-create-parents") { Description = "Fail when the parent directory is missing." };
        var cmd = t.Attach(new Command("write", "Write a file on clients atomically (temp file, fsync, rename); never through a symbolic link.") { path, value, fromFile, mode, noParents });
        cmd.Validators.Add(r =>
        {
            if ((r.GetValue(value) is null) == (r.GetValue(fromFile) is null))
            {
                r.AddError("give exactly one of --value or --from-file");
            }
        });
        cmd.SetAction((pr, ct) => RunAsync(pr, t, ct, async (services, targets, output) =>
        {
            var p = await WriteRequestAsync(pr, ct).ConfigureAwait(false);
            return await WriteOutputAsync(services.WriteFilesAsync(targets, p, pr.GetValue(t.Throttle), ct), p.Path, pr.GetValue(t.Json), output).ConfigureAwait(false);
        }));
        return cmd;
    }

    /// <summary>The write verb's request: --value, or the bytes of the local --from-file (here and through --server).</summary>
    internal static async Task<WriteFileParams> WriteRequestAsync(ParseResult pr, CancellationToken ct)
    {
        var path = pr.GetValue<string>("path")!;
        var p = pr.GetValue<string?>("--from-file") is { } local
            ? new WriteFileParams { Path = path, Content = Convert.ToBase64String(await File.ReadAllBytesAsync(local, ct).ConfigureAwait(false)), Encoding = FileEncodings.Base64 }
            : new WriteFileParams { Path = path, Content = pr.GetValue<string?>("--value")!, Encoding = FileEncodings.Utf8 };
        return p with { Mode = pr.GetValue<string?>("--mode"), CreateParents = !pr.GetValue<bool>("--no-create-parents") };
    }

    /// <summary>The write verb's output: one line per client; 0 when every write succeeded.</summary>
    internal static Task<int> WriteOutputAsync(IAsyncEnumerable<FleetFileOutcome<WriteFileResult>> outcomes, string path, bool json, TextWriter output) =>
        EachAsync(outcomes, outcome =>
            json ? Line(Row(outcome, path) with { Path = outcome.Value?.Path ?? path, Size = outcome.Value?.Size, Sha256 = outcome.Value?.Sha256, Created = outcome.Value?.Created })
            : Header(outcome, outcome.Value is { } v ? $"{v.Size} bytes to {v.Path}{(v.Created ? " (new)" : "")}" : null), output);

    private static Command ListCommand()
    {
        var t = new Targets();
        var path = new Argument<string>("path") { Description = "Absolute path of the directory on the client." };
        var recursive = new Option<bool>("--recursive", "-r") { Description = "Descend into sub-directories (links are listed, never followed)." };
        var maxEntries = new Option<int>("--max-entries") { Description = "Most entries per client (1–100000).", DefaultValueFactory = _ => FileLimits.DefaultListEntries };
        var cmd = t.Attach(new Command("ls", "List a directory on clients: name, type, size, mode, mtime; unreadable entries are reported, not fatal.") { path, recursive, maxEntries });
        cmd.SetAction((pr, ct) => RunAsync(pr, t, ct, async (services, targets, output) =>
        {
            var p = ListRequest(pr);
            return await ListOutputAsync(services.ListFilesAsync(targets, p, pr.GetValue(t.Throttle), ct), p.Path, pr.GetValue(t.Json), output).ConfigureAwait(false);
        }));
        return cmd;
    }

    /// <summary>The ls verb's request from its arguments (here and through --server).</summary>
    internal static ListFilesParams ListRequest(ParseResult pr) =>
        new() { Path = pr.GetValue<string>("path")!, Recursive = pr.GetValue<bool>("--recursive") ? true : null, MaxEntries = pr.GetValue<int>("--max-entries") };

    /// <summary>The ls verb's output: each client's listing as it arrives; 0 when every listing succeeded.</summary>
    internal static Task<int> ListOutputAsync(IAsyncEnumerable<FleetFileOutcome<ListFilesResult>> outcomes, string path, bool json, TextWriter output) =>
        EachAsync(outcomes, outcome =>
            {
                if (outcome.Value is not { } listing)
                {
                    return json ? Line(Row(outcome, path)) : Header(outcome);
                }

                if (json)
                {
                    return string.Concat(listing.Entries.Select(e => Line(Row(outcome, listing.Path) with
                    {
                        Name = e.Name,
                        Type = e.Type,
                        Size = e.Size,
                        Mode = e.Mode,
                        Mtime = e.Mtime is { } m ? OperatorRows.Time(m) : null,
                        Target = e.Target,
                        Error = e.Error,
                        Truncated = listing.Truncated ? true : null,
                    })));
                }

                return Header(outcome, $"{listing.Entries.Length} entries in {listing.Path}{(listing.Truncated ? " (truncated)" : "")}") + OperatorRows.Table(
                    ["MODE", "SIZE", "MTIME", "TYPE", "NAME"],
                    listing.Entries.Select(e => new[]
                    {
                        e.Mode, e.Size.ToString(CultureInfo.InvariantCulture), e.Mtime is { } m ? OperatorRows.Time(m) : "", e.Type,
                        e.Error is { } err ? $"{e.Name} ({err})" : e.Target is { } target ? $"{e.Name} -> {target}" : e.Name,
                    }), maxCell: 120);
            }, output);

    private static Command TransferCommand(bool upload)
    {
        var t = new Targets();
        var source = new Argument<string>(upload ? "local" : "remote") { Description = upload ? "The local file to send." : "Absolute path of the file on the client." };
        var destination = new Argument<string>(upload ? "remote" : "local")
        {
            Description = upload
                ? "Destination on the client; a trailing '/' means into that directory."
                : "Local file or directory; with several clients, a directory that receives one sub-directory per client.",
        };
        var cmd = t.Attach(new Command(upload ? "upload" : "download", upload
            ? "Send a file to clients: raw bytes through the tunnel, SHA-256 verified, resumed after a dropped connection."
            : "Fetch a file from clients: raw bytes through the tunnel, SHA-256 verified, resumed after a dropped connection.") { source, destination });
        cmd.SetAction((pr, ct) => RunAsync(pr, t, ct, async (services, targets, output) =>
        {
            var from = pr.GetValue(source)!;
            var to = pr.GetValue(destination)!;
            if (upload && !File.Exists(from))
            {
                throw new FileNotFoundException($"the local file '{from}' does not exist");
            }

            var outcomes = upload
                ? services.UploadAsync(targets, from, to, pr.GetValue(t.Throttle), ct: ct)
                : services.DownloadAsync(targets, from, to, pr.GetValue(t.Throttle), ct: ct);
            return await EachAsync(outcomes, outcome => TransferLine(outcome, upload, upload ? to : from, pr.GetValue(t.Json)), output).ConfigureAwait(false);
        }));
        return cmd;
    }

    /// <summary>The line of one upload or download outcome (text, or a JSON object), here or through a server.</summary>
    internal static string TransferLine(FleetFileOutcome<FileTransferResult> outcome, bool upload, string remotePath, bool json) =>
        json ? Line(Row(outcome, remotePath) with
        {
            Path = outcome.Value?.RemotePath ?? remotePath,
            LocalPath = outcome.Value?.LocalPath,
            Size = outcome.Value?.Size,
            Sha256 = outcome.Value?.Sha256,
            ResumedFrom = outcome.Value?.ResumedFrom,
            Attempts = outcome.Value?.Attempts,
        })
        : Header(outcome, outcome.Value is { } v
            ? string.Create(CultureInfo.InvariantCulture, $"{v.Size} bytes {(upload ? "to" : "from")} {v.RemotePath}{(upload ? "" : $" → {v.LocalPath}")}, sha256 {v.Sha256}, {Rate(v)}{(v.ResumedFrom > 0 ? $", resumed at {v.ResumedFrom}" : "")}")
            : null);

    private static string Rate(FileTransferResult result) =>
        string.Create(CultureInfo.InvariantCulture, $"{result.DurationMs} ms ({(result.Size - result.ResumedFrom) / 1048576.0 / Math.Max(0.001, result.DurationMs / 1000.0):0.0} MiB/s)");

    private static async Task<int> RunAsync(ParseResult pr, Targets t, CancellationToken ct,
        Func<OperatorServices, IReadOnlyList<FleetTarget>, TextWriter, Task<int>> body)
    {
        var output = pr.InvocationConfiguration.Output;
        var error = pr.InvocationConfiguration.Error;
        var verb = pr.CommandResult.Command.Name;
        try
        {
            using var services = OperatorVerbs.Services(pr, pr.GetValue(t.Data));
            IReadOnlyList<FleetTarget> targets;
            try
            {
                targets = services.Targets(t.Selection(pr));
            }
            catch (UnknownClientsException ex)
            {
                await error.WriteLineAsync($"eph-server {verb}: {ex.Message}").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            if (targets.Count == 0)
            {
                await error.WriteLineAsync($"eph-server {verb}: the selection matches no client; nothing was done").ConfigureAwait(false);
                return OperatorVerbs.UsageError;
            }

            return await body(services, targets, output).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidOperationException or RegistryNotFoundException or IOException or UnauthorizedAccessException)
        {
            await error.WriteLineAsync($"eph-server {verb}: {ex.Message}").ConfigureAwait(false);
            return 1;
        }
    }

    /// <summary>Runs one operation per target and prints each outcome as it arrives; 0 when all succeeded.</summary>
    internal static async Task<int> EachAsync<T>(IAsyncEnumerable<FleetFileOutcome<T>> outcomes, Func<FleetFileOutcome<T>, string> format, TextWriter output)
        where T : class
    {
        var failures = 0;
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            if (outcome.Status != CommandStatus.Succeeded)
            {
                failures++;
            }

            await output.WriteAsync(format(outcome)).ConfigureAwait(false);
            await output.FlushAsync(CancellationToken.None).ConfigureAwait(false);
        }

        return failures == 0 ? 0 : 1;
    }

    private static string Header<T>(FleetFileOutcome<T> outcome, string? detail = null)
        where T : class
        => $"=== {ClientText.Describe(outcome.Target.DisplayName, outcome.Target.Uuid)}: {outcome.Status}"
           + (outcome.Error is { } e ? $"{Environment.NewLine}error: {UntrustedText.ForTerminal(e)}" : detail is null ? "" : $": {UntrustedText.ForTerminal(detail)}") + Environment.NewLine;

    private static FileRow Row<T>(FleetFileOutcome<T> outcome, string path)
        where T : class
        => new() { Uuid = outcome.Target.Uuid, DisplayName = outcome.Target.DisplayName, Status = OperationNames.Wire(outcome.Status), Path = path, DurationMs = outcome.DurationMs, Error = outcome.Error };

    private static string Line(FileRow row) => JsonSerializer.Serialize(row, RowJson.FileRow) + Environment.NewLine;

    private static readonly FilesJson RowJson = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}

/// <summary>One line of the file verbs' --json output; fields that do not apply to a verb are left out.</summary>
internal sealed record FileRow
{
    public required string Uuid { get; init; }
    public required string DisplayName { get; init; }
    public required string Status { get; init; }
    public required string Path { get; init; }
    public string? LocalPath { get; init; }
    public string? Name { get; init; }
    public string? Type { get; init; }
    public long? Size { get; init; }
    public string? Mode { get; init; }
    public string? Mtime { get; init; }
    public string? Target { get; init; }
    public string? Sha256 { get; init; }
    public string? Encoding { get; init; }
    public string? Content { get; init; }
    public bool? Truncated { get; init; }
    public bool? Created { get; init; }
    public long? ResumedFrom { get; init; }
    public int? Attempts { get; init; }
    public long DurationMs { get; init; }
    public string? Error { get; init; }
}

[JsonSerializable(typeof(FileRow))]
internal sealed partial class FilesJson : JsonSerializerContext;
