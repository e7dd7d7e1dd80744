using System.ComponentModel;
using System.ComponentModel.DataAnnotations;
using System.Net.Sockets;
using System.Text;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Tunnel;
using EtPhoneHome.Protocol;
using Microsoft.Extensions.Logging;
using ModelContextProtocol.Protocol;
using ModelContextProtocol.Server;

namespace EtPhoneHome.Mcp.Tools;

/// <summary>
/// Files on one client: read, write and list through the agent's file requests, and streaming uploads and
/// downloads between the MCP server and a client (SHA-256 verified, resumed after a dropped connection). Remote
/// paths are checked by the agent's allowed paths; local paths by <see cref="LocalPathPolicy"/> before anything
/// is sent. Every request is recorded through the operation guard (surface mcp).
/// </summary>
[McpServerToolType]
public sealed class FileTools(McpFleet fleet, McpSession session)
{
    /// <summary>Largest write_file content in UTF-8 bytes (larger files: upload_file).</summary>
    public const int MaxWriteBytes = 1024 * 1024;

    /// <summary>Most entries one list_files answer carries.</summary>
    public const int MaxListEntries = 1000;

    [McpServerTool(Name = "read_file", Title = "Read a file on a client", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Read a text file on one client. Text beyond the server's output budget is cut with a marker naming the full size (the whole file is 'size'); binary files are never shown as text: you get {binary: true, size, sha256} and should use download_file instead. The path must be inside the client's allowed paths.")]
    public async Task<FileContent> ReadFile(
        [Description("Absolute path of the file on the client (at most 4096 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string path,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var remote = RemotePath("path", path);
        var target = await TargetAsync(client_id, cancellationToken).ConfigureAwait(false);
        var budget = fleet.Settings.MaxOutputBytes;
        Task<ReadFileResult> Read(long maxBytes) => Call(target, "read", remote, () => fleet.Remote is { } server
            ? OneAsync(server, op => op.ReadFilesAsync(Only(target), new ReadFileParams { Path = remote, MaxBytes = maxBytes, Truncate = true }, 1, null, cancellationToken), cancellationToken)
            : fleet.Files.ReadAsync(target, new ReadFileParams { Path = remote, MaxBytes = maxBytes, Truncate = true }, cancellationToken));

        // Ask for no more than the budget: a 10 MiB log is not dragged through the tunnel to show 16 KiB of it.
        var answer = await Read(budget).ConfigureAwait(false);
        var client = new ClientRef(target.Uuid, target.DisplayName);
        var text = answer.Encoding == FileEncodings.Utf8 ? OutputBudget.Apply(answer.Content, budget) : null;
        if (text is null || text.Binary)
        {
            // The hash of a cut read covers only its start; re-read whole (up to the agent's cap) for the file's own hash.
            var whole = answer;
            if (answer.Truncated && answer.Size <= FileLimits.DefaultReadBytes)
            {
                whole = await Read(FileLimits.DefaultReadBytes).ConfigureAwait(false);
            }

            return new FileContent(client, answer.Path, whole.Size, whole.Truncated ? null : whole.Sha256)
            {
                Binary = true,
                Note = whole.Truncated
                    ? $"Binary file of {whole.Size} bytes, too large to hash here; content not shown. Use download_file to fetch it (verified with SHA-256)."
                    : "Binary content is not shown as text; use download_file to fetch it (verified with SHA-256).",
            };
        }

        var truncated = answer.Truncated || text.Truncated;
        // The agent's hash covers exactly the bytes returned: the whole file unless truncated.
        return new FileContent(client, answer.Path, answer.Size, truncated ? null : answer.Sha256)
        {
            Content = answer.Truncated && !text.Truncated ? text.Text + OutputBudget.Marker(text.TotalBytes, answer.Size) : text.Text,
            Truncated = truncated ? true : null,
            ShownBytes = truncated ? Math.Min(text.TotalBytes, budget) : null,
        };
    }

    [McpServerTool(Name = "write_file", Title = "Write a file on a client", ReadOnly = false, Destructive = true, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Write UTF-8 text to a file on one client, replacing it if it exists (atomically: temporary file, then rename; missing parent directories are created). At most 1 MiB of text; use upload_file for larger or binary files. The path must be inside the client's allowed paths. Returns size, sha256 and whether the file is new.")]
    public async Task<FileWritten> WriteFile(
        [Description("Absolute path of the file on the client (at most 4096 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string path,
        [Description("The text to write, stored as UTF-8 (at most 1 MiB = 1048576 bytes; may be empty).")][MaxLength(MaxWriteBytes)] string content,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var remote = RemotePath("path", path);
        if (content is null)
        {
            throw ToolFailure.Invalid("content", "content is required (an empty string writes an empty file)");
        }

        var bytes = Encoding.UTF8.GetByteCount(content);
        if (bytes > MaxWriteBytes)
        {
            throw new ToolFailure(ToolErrorCodes.TooLarge, $"content is {bytes} bytes as UTF-8, over the write_file limit of {MaxWriteBytes} bytes; nothing was written",
                "Put the file in a server directory and use upload_file, which streams files of any size.",
                new Dictionary<string, object?> { ["parameter"] = "content", ["size"] = bytes, ["limit"] = MaxWriteBytes });
        }

        var target = await TargetAsync(client_id, cancellationToken).ConfigureAwait(false);
        var request = new WriteFileParams { Path = remote, Content = content, Encoding = FileEncodings.Utf8, CreateParents = true };
        var answer = await Call(target, "write", remote, () => fleet.Remote is { } server
            ? OneAsync(server, op => op.WriteFilesAsync(Only(target), request, 1, null, cancellationToken), cancellationToken)
            : fleet.Files.WriteAsync(target, request, cancellationToken)).ConfigureAwait(false);
        return new FileWritten(new ClientRef(target.Uuid, target.DisplayName), answer.Path, answer.Size, answer.Sha256, answer.Created);
    }

    [McpServerTool(Name = "list_files", Title = "List a directory on a client", ReadOnly = true, Destructive = false, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("List one directory on a client (not recursive): name, type (file, dir, symlink, other), size, mode, mtime, and a link's target; entries that could not be read carry 'error'. At most 1000 entries, sorted by name; 'truncated' says when there were more. The path must be inside the client's allowed paths.")]
    public async Task<DirectoryListing> ListFiles(
        [Description("Absolute path of the directory on the client (at most 4096 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string path,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var remote = RemotePath("path", path);
        var target = await TargetAsync(client_id, cancellationToken).ConfigureAwait(false);
        var request = new ListFilesParams { Path = remote, MaxEntries = MaxListEntries };
        var answer = await Call(target, "list", remote, () => fleet.Remote is { } server
            ? OneAsync(server, op => op.ListFilesAsync(Only(target), request, 1, null, cancellationToken), cancellationToken)
            : fleet.Files.ListAsync(target, request, cancellationToken)).ConfigureAwait(false);
        return new DirectoryListing(
            new ClientRef(target.Uuid, target.DisplayName),
            answer.Path,
            answer.Entries.Length,
            answer.Truncated ? true : null,
            answer.Entries.Select(e => new DirectoryEntry(
                e.Name,
                e.Type,
                e.Type == FileEntryTypes.File ? e.Size : null,
                e.Mode,
                e.Mtime is { } m ? Views.Time(m) : null,
                e.Target,
                e.Error)).ToList());
    }

    [McpServerTool(Name = "upload_file", Title = "Upload a file to a client", ReadOnly = false, Destructive = true, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Copy a file from the MCP server to a client, streamed (any size), verified end to end with SHA-256, and resumed after a dropped connection. Replaces an existing remote file only once all bytes arrived and matched. local_path must be inside the server directories MCP may use; remote_path inside the client's allowed paths (ending in '/' puts the file into that directory under its own name).")]
    public async Task<FileTransferred> UploadFile(
        [Description("Absolute path of the file on the MCP server; must be inside the server directories MCP may use (--allow-local-dir, default <data>/exchange).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string local_path,
        [Description("Absolute destination on the client (a trailing '/' means into that directory, keeping the file name).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string remote_path,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var local = fleet.LocalPaths.Resolve("local_path", local_path);
        var remote = RemotePath("remote_path", remote_path);
        if (!File.Exists(local))
        {
            throw ToolFailure.Invalid("local_path", $"local_path '{local_path}' does not exist or is not a file");
        }

        if (fleet.Remote is { } server)
        {
            // Through the server's operator service: the agent checks the whole file's SHA-256 and resumes as locally.
            var to = RemoteOnly.Online(await RemoteOnly.ResolveAsync(server, session, client_id, cancellationToken).ConfigureAwait(false));
            var op = await server.GetAsync(cancellationToken).ConfigureAwait(false);
            return Transfer(to, await Call(to, "upload", remote, () => op.UploadAsync(to.Uuid, local, remote, null, cancellationToken)).ConfigureAwait(false));
        }

        var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
        var done = await Call(target, "upload", remote, () => fleet.Transfers.UploadAsync(target, local, remote, null, cancellationToken)).ConfigureAwait(false);
        return Transfer(target, done);
    }

    [McpServerTool(Name = "download_file", Title = "Download a file from a client", ReadOnly = false, Destructive = true, Idempotent = true, OpenWorld = true, UseStructuredContent = true)]
    [Description("Copy a file from a client to the MCP server, streamed (any size), verified end to end with SHA-256, and resumed after a dropped connection. Overwrites an existing local file, but only once all bytes arrived and matched. local_path must be inside the server directories MCP may use (an existing directory keeps the remote file name); remote_path inside the client's allowed paths.")]
    public async Task<FileTransferred> DownloadFile(
        [Description("Absolute path of the file on the client (at most 4096 characters).")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string remote_path,
        [Description("Absolute destination on the MCP server (a file, or an existing directory to keep the remote name); must be inside the server directories MCP may use.")][MinLength(1)][MaxLength(ToolArguments.MaxPathLength)] string local_path,
        [Description("Client uuid or display name; the client chosen with select_client when omitted.")][MaxLength(ToolArguments.MaxIdLength)] string? client_id = null,
        CancellationToken cancellationToken = default)
    {
        var remote = RemotePath("remote_path", remote_path);
        var local = fleet.LocalPaths.Resolve("local_path", local_path);
        if (Directory.Exists(local) || Path.EndsInDirectorySeparator(local_path))
        {
            var name = Path.GetFileName(remote.TrimEnd('/', '\\'));
            if (name.Length == 0 || name is "." or "..")
            {
                throw ToolFailure.Invalid("remote_path", $"remote_path '{remote}' names no file");
            }

            // Check the final file again: it may itself be a link out of the allowed directories.
            local = fleet.LocalPaths.Resolve("local_path", Path.Join(local, name));
        }

        if (Directory.Exists(local))
        {
            throw ToolFailure.Invalid("local_path", $"local_path '{local}' is a directory");
        }

        if (fleet.Remote is { } server)
        {
            // Through the server's operator service: SHA-256 checked here before the file takes its name; resumed from a partial file.
            var from = RemoteOnly.Online(await RemoteOnly.ResolveAsync(server, session, client_id, cancellationToken).ConfigureAwait(false));
            var op = await server.GetAsync(cancellationToken).ConfigureAwait(false);
            return Transfer(from, await Call(from, "download", remote, () => op.DownloadAsync(from.Uuid, remote, local, null, cancellationToken)).ConfigureAwait(false));
        }

        var target = ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, client_id));
        var done = await Call(target, "download", remote, () => fleet.Transfers.DownloadAsync(target, remote, local, null, cancellationToken)).ConfigureAwait(false);
        return Transfer(target, done);
    }

    /// <summary>The one online client of a file tool: resolved here, or through the server by the same rules (CLIENT_OFFLINE before anything is sent).</summary>
    private async Task<FleetTarget> TargetAsync(string? clientId, CancellationToken ct) => fleet.Remote is { } server
        ? RemoteOnly.Online(await RemoteOnly.ResolveAsync(server, session, clientId, ct).ConfigureAwait(false))
        : ClientResolver.OnlineTarget(fleet.Registry, ClientResolver.Resolve(fleet.Registry.Clients, session, clientId));

    private static TargetSelection Only(FleetTarget target) => new() { Clients = [target.Uuid] };

    /// <summary>
    /// One target's file operation through the server's operator service: its value, or its failure raised as the
    /// agent's error (an <see cref="RpcException"/> with the agent's code), so <see cref="Call"/> answers as it does here.
    /// </summary>
    private static async Task<T> OneAsync<T>(Core.Remote.RemoteServer server, Func<Core.Remote.RemoteOperator, IAsyncEnumerable<FleetFileOutcome<T>>> run, CancellationToken ct)
        where T : class
    {
        var op = await server.GetAsync(ct).ConfigureAwait(false);
        FleetFileOutcome<T>? outcome = null;
        await foreach (var o in run(op).ConfigureAwait(false))
        {
            outcome ??= o;
        }

        if (outcome?.Value is { } value)
        {
            return value;
        }

        var message = outcome?.Error ?? "the server sent no outcome for the client";
        throw outcome?.Failure switch
        {
            FailureKind.Denied => new RpcException(RpcErrorCodes.PathDenied, message),
            FailureKind.NotFound => new RpcException(RpcErrorCodes.NotFound, message),
            FailureKind.TooLarge => new RpcException(RpcErrorCodes.TooLarge, message),
            FailureKind.TimedOut => new TimeoutException(message),
            FailureKind.RateLimited => new RpcException(RpcErrorCodes.RateLimited, message),
            FailureKind.ChecksumMismatch => new RpcException(FileLimits.ChecksumMismatch, message),
            FailureKind.Invalid => new RpcException(RpcErrorCodes.InvalidParams, message),
            FailureKind.Internal => new RpcException(RpcErrorCodes.Internal, message),
            _ => new IOException(message),
        };
    }

    private static FileTransferred Transfer(FleetTarget target, FileTransferResult done) => new(
        new ClientRef(target.Uuid, target.DisplayName),
        done.Direction == TransferDirection.ToClient ? "upload" : "download",
        done.LocalPath,
        done.RemotePath,
        done.Size,
        done.Sha256,
        true,
        done.ResumedFrom > 0 ? done.ResumedFrom : null,
        done.Attempts > 1 ? done.Attempts : null,
        done.DurationMs);

    private static string RemotePath(string parameter, string? value)
    {
        var path = ToolArguments.Required(parameter, value, ToolArguments.MaxPathLength).Trim();
        if (!(path.StartsWith('/') || Path.IsPathFullyQualified(path)))
        {
            throw ToolFailure.Invalid(parameter, $"{parameter} must be an absolute path on the client (got '{path}')");
        }

        return path;
    }

    /// <summary>Runs one file request and maps its faults to tool errors; the agent's own messages are written for operators and kept.</summary>
    private async Task<T> Call<T>(FleetTarget target, string action, string path, Func<Task<T>> request)
    {
        try
        {
            return await request().ConfigureAwait(false);
        }
        catch (RateLimitExceededException refused)
        {
            throw new ToolFailure(ToolErrorCodes.RateLimited, refused.Message, "Wait a minute or raise the limit with configure_client.");
        }
        catch (RpcException rpc) when (rpc.Code != RpcErrorCodes.Internal || !rpc.Message.StartsWith("internal", StringComparison.OrdinalIgnoreCase))
        {
            throw rpc.Code switch
            {
                RpcErrorCodes.PathDenied => new ToolFailure(ToolErrorCodes.PathDenied, rpc.Message,
                    "Use a path inside the client's allowed paths (describe_client shows them; update_client changes them)."),
                RpcErrorCodes.NotFound => new ToolFailure(ToolErrorCodes.NotFound, rpc.Message,
                    "Check the path; list_files shows what the parent directory holds."),
                RpcErrorCodes.TooLarge => new ToolFailure(ToolErrorCodes.TooLarge, rpc.Message, "Use download_file, which streams files of any size."),
                RpcErrorCodes.RateLimited or RpcErrorCodes.Busy => new ToolFailure(ToolErrorCodes.RateLimited, rpc.Message,
                    "The agent is at its limit or still finishing an earlier transfer of this file; try again shortly."),
                RpcErrorCodes.Timeout => new ToolFailure(ToolErrorCodes.Timeout, rpc.Message, "Try again; check that the client is still online."),
                FileLimits.ChecksumMismatch => new ToolFailure(ToolErrorCodes.ChecksumMismatch, rpc.Message,
                    "The bytes changed in transit or the file changed while it was copied; the destination was not replaced. Try again."),
                RpcErrorCodes.InvalidParams => new ToolFailure(ToolErrorCodes.InvalidArgument, rpc.Message, "Check the path: it must be absolute and name a file (or, for list_files, a directory)."),
                RpcErrorCodes.Internal => new ToolFailure(ToolErrorCodes.FileError, rpc.Message,
                    "The client's file system refused or failed the operation; check permissions of the agent's user."),
                _ => Unreachable(target, action, path, rpc),
            };
        }
        catch (TimeoutException)
        {
            throw new ToolFailure(ToolErrorCodes.Timeout, $"{target.Describe()} gave no answer to {action} {path} in time",
                "Check that the client is still online (list_clients) and try again.");
        }
        catch (UnauthorizedAccessException ex)
        {
            fleet.Logger.LogWarning("{Target}: {Action} {Path}: local file access failed: {Message}", target.Describe(), action, path, ex.Message);
            throw new ToolFailure(ToolErrorCodes.FileError, $"the MCP server could not access the local file for {action}",
                "Check the permissions of the local file and its directory on the MCP server.");
        }
        catch (Exception ex) when (ex is RpcException or ProtocolException or SocketException or IOException or InvalidOperationException)
        {
            throw Unreachable(target, action, path, ex);
        }
    }

    private ToolFailure Unreachable(FleetTarget target, string action, string path, Exception ex)
    {
        fleet.Logger.LogWarning("{Target}: {Action} {Path} failed: {Message}", target.Describe(), action, path, ex.Message);
        return new ToolFailure(ToolErrorCodes.ClientUnreachable, $"{action} of {path} on {target.Describe()} failed: the tunnel broke or the client could not be reached",
            "The client may be reconnecting; check list_clients and try again in a few seconds (transfers resume).");
    }
}

/// <summary>read_file: the text (within the output budget), or for a binary file its size and hash only.</summary>
public sealed record FileContent(ClientRef Client, string Path, long Size, string? Sha256)
{
    public bool? Binary { get; init; }

    public string? Content { get; init; }

    public bool? Truncated { get; init; }

    public long? ShownBytes { get; init; }

    public string? Note { get; init; }
}

/// <summary>write_file: what was written.</summary>
public sealed record FileWritten(ClientRef Client, string Path, long Size, string Sha256, bool Created);

/// <summary>list_files: one directory, sorted by name.</summary>
public sealed record DirectoryListing(ClientRef Client, string Path, int Count, bool? Truncated, IReadOnlyList<DirectoryEntry> Entries);

/// <summary>One entry of list_files.</summary>
public sealed record DirectoryEntry(string Name, string Type, long? Size, string? Mode, string? Mtime, string? Target, string? Error);

/// <summary>upload_file and download_file: the verified transfer.</summary>
public sealed record FileTransferred(
    ClientRef Client, string Direction, string LocalPath, string RemotePath, long Size, string Sha256, bool Verified, long? ResumedFrom, int? Attempts, long DurationMs);
