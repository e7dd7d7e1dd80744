using ModelContextProtocol;

namespace EtPhoneHome.Mcp;

/// <summary>
/// Stable error codes of the MCP tools. A model (and a prompt or skill written against it) can branch on
/// these; the message and the recovery hint are for reading.
/// </summary>
public static class ToolErrorCodes
{
    public const string ClientNotFound = "CLIENT_NOT_FOUND";
    public const string ClientOffline = "CLIENT_OFFLINE";
    public const string ClientUnreachable = "CLIENT_UNREACHABLE";
    public const string KeyMismatch = "KEY_MISMATCH";
    public const string KeyNotFound = "KEY_NOT_FOUND";
    public const string NoClientSelected = "NO_CLIENT_SELECTED";
    public const string InvalidArgument = "INVALID_ARGUMENT";
    public const string PathDenied = "PATH_DENIED";
    public const string Timeout = "TIMEOUT";
    public const string RateLimited = "RATE_LIMITED";
    public const string R2NotConfigured = "R2_NOT_CONFIGURED";
    public const string CommandNotFound = "COMMAND_NOT_FOUND";
    public const string Busy = "BUSY";
    public const string Internal = "INTERNAL";

    // ----- through a server's operator service (eph-server mcp --server) -----
    /// <summary>The operator's role does not allow the call; <c>needs</c> names the least role that does.</summary>
    public const string Forbidden = "FORBIDDEN";
    /// <summary>The tool has no operation in the server's operator service; it runs only where the registry is.</summary>
    public const string NotAvailableRemotely = "NOT_AVAILABLE_REMOTELY";
    /// <summary>The server could not be reached, or the connection to it was lost.</summary>
    public const string ServerUnreachable = "SERVER_UNREACHABLE";

    // ----- exchange -----
    /// <summary>exchange_download was given a URL that is not on the configured exchange endpoint.</summary>
    public const string UrlNotAllowed = "URL_NOT_ALLOWED";
    /// <summary>The storage endpoint or the transfer failed (expired or unknown URL, S3 error, local I/O).</summary>
    public const string TransferFailed = "TRANSFER_FAILED";
    /// <summary>The downloaded bytes do not hash to the transfer's SHA-256; nothing was written.</summary>
    public const string ChecksumMismatch = "CHECKSUM_MISMATCH";

    // ----- files -----
    /// <summary>The remote file or directory does not exist.</summary>
    public const string NotFound = "NOT_FOUND";
    /// <summary>The content is over a size limit (write_file's content, or a file the agent will not read whole).</summary>
    public const string TooLarge = "TOO_LARGE";
    /// <summary>The client's file system refused or failed the operation (permissions, a file changing while read).</summary>
    public const string FileError = "FILE_ERROR";
}

/// <summary>
/// A tool failure the model may see: a stable <see cref="Code"/>, a message and a recovery hint. Derives
/// from <see cref="McpException"/> so the SDK would also show its message should it ever escape
/// <see cref="ToolResults"/>. Messages never carry exception text from below (that goes to stderr).
/// </summary>
public sealed class ToolFailure : McpException
{
    public ToolFailure(string code, string message, string hint, IReadOnlyDictionary<string, object?>? details = null)
        : base(message)
    {
        Code = code;
        Hint = hint;
        Details = details;
    }

    public string Code { get; }

    public string Hint { get; }

    /// <summary>Extra fields of the error object (for example the clients a CLIENT_NOT_FOUND could mean).</summary>
    public IReadOnlyDictionary<string, object?>? Details { get; }

    /// <summary>INVALID_ARGUMENT naming the parameter and its limit.</summary>
    public static ToolFailure Invalid(string parameter, string message) =>
        new(ToolErrorCodes.InvalidArgument, message, $"Fix '{parameter}' and call the tool again; the limits are in the tool's input schema.",
            new Dictionary<string, object?> { ["parameter"] = parameter });
}
