using System.Text.Json.Serialization;

namespace EtPhoneHome.Protocol;

/// <summary>Method names of the file operations and streaming transfers served by the agent.</summary>
public static class FileMethods
{
    public const string ReadFile = "read_file";
    public const string WriteFile = "write_file";
    public const string ListFiles = "list_files";
    /// <summary>operator → agent stream: header, ready, raw bytes, trailer, result.</summary>
    public const string Upload = "upload";
    /// <summary>agent → operator stream: header, ready, raw bytes, trailer.</summary>
    public const string Download = "download";
}

/// <summary>Limits of the file operations, shared so every surface validates the same way.</summary>
public static class FileLimits
{
    /// <summary>Default and largest cap of <c>read_file</c>: base64 of it still fits one frame.</summary>
    public const long DefaultReadBytes = 10L * 1024 * 1024;

    /// <summary>Largest decoded content <c>write_file</c> accepts (its base64 must fit one frame).</summary>
    public const long MaxWriteBytes = 10L * 1024 * 1024;

    public const int DefaultListEntries = 10_000;
    public const int MaxListEntries = 100_000;

    /// <summary>Suffix of the partial file a transfer writes next to its destination (<c>.&lt;name&gt;.eph-partial</c>).</summary>
    public const string PartialSuffix = ".eph-partial";

    /// <summary>Error code: the SHA-256 of the received bytes differs from the sender's.</summary>
    public const int ChecksumMismatch = 1007;

    /// <summary>Name of the partial file for <paramref name="fileName"/>.</summary>
    public static string PartialName(string fileName) => "." + fileName + PartialSuffix;
}

/// <summary>Content encodings of read_file and write_file.</summary>
public static class FileEncodings
{
    public const string Utf8 = "utf8";
    public const string Base64 = "base64";
}

/// <summary>Entry types of list_files.</summary>
public static class FileEntryTypes
{
    public const string File = "file";
    public const string Directory = "dir";
    public const string Symlink = "symlink";
    public const string Other = "other";
}

/// <summary>Shells <c>run_command</c> accepts (the <c>shell</c> parameter).</summary>
public static class CommandShells
{
    public const string Sh = "sh";
    public const string Bash = "bash";
    public const string PowerShell = "powershell";
    public const string Pwsh = "pwsh";
    public const string Cmd = "cmd";

    /// <summary>Every accepted value; anything else is INVALID_PARAMS.</summary>
    public static IReadOnlyList<string> All { get; } = [Sh, Bash, PowerShell, Pwsh, Cmd];

    /// <summary>The shell used when a request names none: sh on Unix, cmd on Windows.</summary>
    public static string Default => OperatingSystem.IsWindows() ? Cmd : Sh;
}

/// <summary>Parameters of <c>read_file</c>.</summary>
public sealed record ReadFileParams
{
    public required string Path { get; init; }
    /// <summary>Cap in bytes (1 – 10 MiB, default 10 MiB).</summary>
    public long? MaxBytes { get; init; }
    /// <summary>Return the first <c>max_bytes</c> of a larger file instead of TOO_LARGE.</summary>
    public bool? Truncate { get; init; }
}

/// <summary>Result of <c>read_file</c>. Text that is not valid UTF-8 (or holds NUL bytes) comes as base64.</summary>
public sealed record ReadFileResult
{
    public required string Path { get; init; }
    /// <summary>Size of the whole file.</summary>
    public required long Size { get; init; }
    /// <summary>Lower-case hex SHA-256 of the bytes returned (the whole file unless truncated).</summary>
    public required string Sha256 { get; init; }
    public required string Encoding { get; init; }
    public required string Content { get; init; }
    public required bool Truncated { get; init; }
}

/// <summary>Parameters of <c>write_file</c>.</summary>
public sealed record WriteFileParams
{
    public required string Path { get; init; }
    public required string Content { get; init; }
    /// <summary>utf8 (default) or base64.</summary>
    public string? Encoding { get; init; }
    /// <summary>Create missing parent directories (default true).</summary>
    public bool? CreateParents { get; init; }
    /// <summary>Unix permission bits as an octal string ("644"); the default keeps an existing file's mode, else 0644 minus umask.</summary>
    public string? Mode { get; init; }
}

/// <summary>Result of <c>write_file</c>.</summary>
public sealed record WriteFileResult
{
    public required string Path { get; init; }
    public required long Size { get; init; }
    public required string Sha256 { get; init; }
    /// <summary>True when the file did not exist before.</summary>
    public required bool Created { get; init; }
}

/// <summary>Parameters of <c>list_files</c>.</summary>
public sealed record ListFilesParams
{
    public required string Path { get; init; }
    public bool? Recursive { get; init; }
    /// <summary>1 – 100,000, default 10,000.</summary>
    public int? MaxEntries { get; init; }
}

/// <summary>One entry of <c>list_files</c>. An entry that could not be read carries <see cref="Error"/>.</summary>
public sealed record FileEntry
{
    /// <summary>Name relative to the listed directory ("sub/file.txt" when recursive), '/'-separated.</summary>
    public required string Name { get; init; }
    public required string Type { get; init; }
    public long Size { get; init; }
    /// <summary>Permission bits as an octal string ("755"); null on Windows.</summary>
    public string? Mode { get; init; }
    public DateTimeOffset? Mtime { get; init; }
    /// <summary>Where a symbolic link points (not followed).</summary>
    public string? Target { get; init; }
    public string? Error { get; init; }
}

/// <summary>Result of <c>list_files</c>: entries sorted by name (ordinal).</summary>
public sealed record ListFilesResult
{
    public required string Path { get; init; }
    public required FileEntry[] Entries { get; init; }
    /// <summary>True when <c>max_entries</c> cut the listing.</summary>
    public required bool Truncated { get; init; }
}

/// <summary>Header of <c>upload</c> (operator → agent).</summary>
public sealed record UploadParams
{
    public required string Path { get; init; }
    /// <summary>Size of the whole file in bytes.</summary>
    public required long Size { get; init; }
    /// <summary>Continue from the partial file a dropped upload left (default true); false starts over.</summary>
    public bool? Resume { get; init; }
    /// <summary>Optional SHA-256 the sender already knows; checked as well as the trailer's.</summary>
    public string? Sha256 { get; init; }
    public string? Mode { get; init; }
    public bool? CreateParents { get; init; }
}

/// <summary>Agent's answer to an upload header: the operator sends bytes from <see cref="Offset"/> to the end.</summary>
public sealed record UploadReady
{
    public required long Offset { get; init; }
}

/// <summary>Final answer of <c>upload</c>, after verification and the atomic rename.</summary>
public sealed record UploadResult
{
    public required string Path { get; init; }
    public required long Size { get; init; }
    public required string Sha256 { get; init; }
    /// <summary>Bytes taken from a partial file of an earlier attempt.</summary>
    public long ResumedFrom { get; init; }
}

/// <summary>Header of <c>download</c> (operator → agent).</summary>
public sealed record DownloadParams
{
    public required string Path { get; init; }
    /// <summary>First byte to send (the length of the operator's partial file); default 0.</summary>
    public long? Offset { get; init; }
}

/// <summary>Agent's answer to a download header: <c>size - offset</c> raw bytes follow, then a <see cref="TransferTrailer"/> frame.</summary>
public sealed record DownloadReady
{
    public required string Path { get; init; }
    public required long Size { get; init; }
    public required long Offset { get; init; }
    public string? Mode { get; init; }
}

/// <summary>The frame after the raw bytes of a transfer: SHA-256 of the whole file, hashed while streaming.</summary>
public sealed record TransferTrailer
{
    public required string Sha256 { get; init; }
}

/// <summary>Source-generated JSON for the file messages: same options as <see cref="ProtocolJson"/>.</summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    GenerationMode = JsonSourceGenerationMode.Metadata)]
[JsonSerializable(typeof(ReadFileParams))]
[JsonSerializable(typeof(ReadFileResult))]
[JsonSerializable(typeof(WriteFileParams))]
[JsonSerializable(typeof(WriteFileResult))]
[JsonSerializable(typeof(ListFilesParams))]
[JsonSerializable(typeof(ListFilesResult))]
[JsonSerializable(typeof(FileEntry))]
[JsonSerializable(typeof(UploadParams))]
[JsonSerializable(typeof(UploadReady))]
[JsonSerializable(typeof(UploadResult))]
[JsonSerializable(typeof(DownloadParams))]
[JsonSerializable(typeof(DownloadReady))]
[JsonSerializable(typeof(TransferTrailer))]
public sealed partial class FileJson : JsonSerializerContext;
