using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// <c>read_file</c>, <c>write_file</c> and <c>list_files</c>. Every path goes through the session's
/// <see cref="PathPolicy"/> before anything is opened; a refused request touches nothing.
/// </summary>
public static class FileRequests
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    public static JsonElement ReadFile(JsonElement? parameters, PathPolicy policy)
    {
        var p = Parse(parameters, FileJson.Default.ReadFileParams, "path");
        var max = p.MaxBytes ?? FileLimits.DefaultReadBytes;
        if (max < 1 || max > FileLimits.DefaultReadBytes)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"max_bytes must be between 1 and {FileLimits.DefaultReadBytes} (got {max}); use download for larger files"));
        }

        var path = policy.Resolve(p.Path);
        if (Directory.Exists(path))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"path is a directory (list_files lists it): {PathPolicy.Shorten(p.Path)}");
        }

        byte[] bytes;
        long size;
        bool truncated;
        try
        {
            using var file = NoFollow.OpenRead(path, 0);
            policy.VerifyOpened(file.SafeFileHandle, path);
            size = file.Length;
            if (size > max && p.Truncate != true)
            {
                throw new RpcFault(RpcErrorCodes.TooLarge, string.Create(CultureInfo.InvariantCulture,
                    $"file is {size} bytes, over max_bytes {max}; ask for truncate or use download"));
            }

            var want = (int)Math.Min(size, max);
            bytes = new byte[want];
            var got = file.ReadAtLeast(bytes, want, throwOnEndOfStream: false);
            if (got < want)
            {
                Array.Resize(ref bytes, got); // the file shrank while being read
            }

            truncated = size > got;
        }
        catch (FileNotFoundException)
        {
            throw NotFound(p.Path);
        }
        catch (DirectoryNotFoundException)
        {
            throw NotFound(p.Path);
        }
        catch (UnauthorizedAccessException)
        {
            throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies reading {PathPolicy.Shorten(p.Path)}");
        }

        var (encoding, content, returned) = Encode(bytes, truncated);
        return Wire.ToElement(new ReadFileResult
        {
            Path = path,
            Size = size,
            Sha256 = Hex(SHA256.HashData(returned.Span)),
            Encoding = encoding,
            Content = content,
            Truncated = truncated,
        }, FileJson.Default.ReadFileResult);
    }

    /// <summary>
    /// Text when the bytes are valid UTF-8 without NUL bytes, else base64 (never mangled text). A truncated read may end
    /// inside a multi-byte character: that incomplete tail is dropped rather than turning the whole content into base64.
    /// </summary>
    internal static (string Encoding, string Content, ReadOnlyMemory<byte> Returned) Encode(byte[] bytes, bool truncated)
    {
        ReadOnlyMemory<byte> text = bytes;
        if (truncated)
        {
            text = bytes.AsMemory(0, bytes.Length - IncompleteUtf8Tail(bytes));
        }

        if (IsText(text.Span))
        {
            return (FileEncodings.Utf8, StrictUtf8.GetString(text.Span), text);
        }

        return (FileEncodings.Base64, Convert.ToBase64String(bytes), bytes);
    }

    /// <summary>True for valid UTF-8 with no NUL byte.</summary>
    public static bool IsText(ReadOnlySpan<byte> bytes) => bytes.IndexOf((byte)0) < 0 && System.Text.Unicode.Utf8.IsValid(bytes);

    /// <summary>Number of trailing bytes (0–3) that start a UTF-8 sequence the buffer ends before completing.</summary>
    private static int IncompleteUtf8Tail(ReadOnlySpan<byte> bytes)
    {
        for (var back = 1; back <= Math.Min(3, bytes.Length); back++)
        {
            var b = bytes[^back];
            if ((b & 0xC0) == 0x80)
            {
                continue; // continuation byte: keep looking for the lead byte
            }

            var need = (b & 0xE0) == 0xC0 ? 2 : (b & 0xF0) == 0xE0 ? 3 : (b & 0xF8) == 0xF0 ? 4 : 1;
            return need > back ? back : 0;
        }

        return 0;
    }

    public static JsonElement WriteFile(JsonElement? parameters, PathPolicy policy)
    {
        var p = Parse(parameters, FileJson.Default.WriteFileParams, "path and content");
        byte[] bytes;
        switch (p.Encoding ?? FileEncodings.Utf8)
        {
            case FileEncodings.Utf8:
                if (Encoding.UTF8.GetMaxByteCount(p.Content.Length) > FileLimits.MaxWriteBytes && Encoding.UTF8.GetByteCount(p.Content) > FileLimits.MaxWriteBytes)
                {
                    throw TooLargeWrite();
                }

                bytes = Encoding.UTF8.GetBytes(p.Content);
                break;
            case FileEncodings.Base64:
                try
                {
                    bytes = Convert.FromBase64String(p.Content);
                }
                catch (FormatException)
                {
                    throw new RpcFault(RpcErrorCodes.InvalidParams, "content is not valid base64");
                }

                break;
            default:
                throw new RpcFault(RpcErrorCodes.InvalidParams, $"encoding must be utf8 or base64 (got {PathPolicy.Shorten(p.Encoding!)})");
        }

        if (bytes.Length > FileLimits.MaxWriteBytes)
        {
            throw TooLargeWrite();
        }

        var mode = ParseMode(p.Mode);
        var target = PrepareDestination(policy, p.Path, p.CreateParents ?? true);
        var created = !File.Exists(target);
        try
        {
            AtomicFile.Write(target, bytes, mode, policy);
        }
        catch (UnauthorizedAccessException)
        {
            throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies writing {PathPolicy.Shorten(target)}");
        }
        return Wire.ToElement(new WriteFileResult
        {
            Path = target,
            Size = bytes.Length,
            Sha256 = Hex(SHA256.HashData(bytes)),
            Created = created,
        }, FileJson.Default.WriteFileResult);
    }

    /// <summary>
    /// Resolves a write destination and makes sure its parent directory exists (creating it when asked), then
    /// checks the created parent again: a directory swapped for a link while it was being created is refused.
    /// </summary>
    internal static string PrepareDestination(PathPolicy policy, string path, bool createParents)
    {
        var target = policy.ResolveForWrite(path);
        var parent = Path.GetDirectoryName(target)!;
        if (!Directory.Exists(parent))
        {
            if (!createParents)
            {
                throw new RpcFault(RpcErrorCodes.NotFound, $"parent directory does not exist (create_parents is false): {PathPolicy.Shorten(parent)}");
            }

            try
            {
                Directory.CreateDirectory(parent);
            }
            catch (IOException)
            {
                throw new RpcFault(RpcErrorCodes.InvalidParams, $"cannot create the parent directory (a file is in the way?): {PathPolicy.Shorten(parent)}");
            }
            catch (UnauthorizedAccessException)
            {
                throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies creating {PathPolicy.Shorten(parent)}");
            }

            target = policy.ResolveForWrite(path);
        }

        return target;
    }

    public static JsonElement ListFiles(JsonElement? parameters, PathPolicy policy)
    {
        var p = Parse(parameters, FileJson.Default.ListFilesParams, "path");
        var max = p.MaxEntries ?? FileLimits.DefaultListEntries;
        if (max < 1 || max > FileLimits.MaxListEntries)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, string.Create(CultureInfo.InvariantCulture,
                $"max_entries must be between 1 and {FileLimits.MaxListEntries} (got {max})"));
        }

        var path = policy.Resolve(p.Path);
        if (!Directory.Exists(path))
        {
            if (File.Exists(path))
            {
                var single = Describe(new FileInfo(path), Path.GetFileName(path));
                return Wire.ToElement(new ListFilesResult { Path = path, Entries = [single], Truncated = false }, FileJson.Default.ListFilesResult);
            }

            throw NotFound(p.Path);
        }

        var entries = new List<FileEntry>();
        var truncated = false;
        var pending = new Stack<(string Dir, string Prefix)>();
        pending.Push((path, ""));
        while (pending.Count > 0 && !truncated)
        {
            var (dir, prefix) = pending.Pop();
            List<FileSystemInfo> children;
            try
            {
                children = [.. new DirectoryInfo(dir).EnumerateFileSystemInfos("*", new EnumerationOptions
                {
                    RecurseSubdirectories = false,
                    IgnoreInaccessible = false,
                    AttributesToSkip = 0,
                    ReturnSpecialDirectories = false,
                })];
            }
            catch (Exception ex) when (ex is UnauthorizedAccessException or IOException or ArgumentException)
            {
                if (prefix.Length == 0)
                {
                    throw new RpcFault(RpcErrorCodes.Internal, $"the file system denies listing {PathPolicy.Shorten(p.Path)}");
                }

                // Report the unreadable directory on its own entry; the rest of the listing goes on.
                var index = entries.FindLastIndex(e => e.Name == prefix.TrimEnd('/'));
                if (index >= 0)
                {
                    entries[index] = entries[index] with { Error = ex is UnauthorizedAccessException ? "permission denied" : "cannot be read" };
                }

                continue;
            }

            children.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
            var subdirectories = new List<(string, string)>();
            foreach (var child in children)
            {
                if (entries.Count >= max)
                {
                    truncated = true;
                    break;
                }

                var entry = Describe(child, prefix + child.Name);
                entries.Add(entry);
                if (p.Recursive == true && entry.Type == FileEntryTypes.Directory)
                {
                    subdirectories.Add((Path.Join(dir, child.Name), entry.Name + "/"));
                }
            }

            for (var i = subdirectories.Count - 1; i >= 0; i--)
            {
                pending.Push(subdirectories[i]);
            }
        }

        entries.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        return Wire.ToElement(new ListFilesResult { Path = path, Entries = [.. entries], Truncated = truncated }, FileJson.Default.ListFilesResult);
    }

    /// <summary>One entry, without following a link; a stat failure becomes the entry's error.</summary>
    internal static FileEntry Describe(FileSystemInfo info, string name)
    {
        try
        {
            var link = info.LinkTarget;
            var type = link is not null ? FileEntryTypes.Symlink
                : info.Attributes.HasFlag(FileAttributes.Directory) ? FileEntryTypes.Directory
                : info.Attributes.HasFlag(FileAttributes.Device) ? FileEntryTypes.Other
                : FileEntryTypes.File;
            return new FileEntry
            {
                Name = name,
                Type = type,
                Size = type == FileEntryTypes.File && info is FileInfo file ? file.Length : 0,
                Mode = OperatingSystem.IsWindows() ? null : Octal(info.UnixFileMode),
                Mtime = new DateTimeOffset(info.LastWriteTimeUtc, TimeSpan.Zero),
                Target = link,
            };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return new FileEntry { Name = name, Type = FileEntryTypes.Other, Error = ex is UnauthorizedAccessException ? "permission denied" : "cannot be read" };
        }
    }

    /// <summary>"644"-style permission bits.</summary>
    public static string Octal(UnixFileMode mode) => Convert.ToString((int)mode, 8);

    /// <summary>Parses an octal mode ("644", "0755"); null when absent; INVALID_PARAMS when malformed.</summary>
    public static UnixFileMode? ParseMode(string? mode)
    {
        if (mode is null)
        {
            return null;
        }

        if (mode.Length is < 1 or > 4 || mode.Any(c => c is < '0' or > '7'))
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"mode must be octal permission bits such as 644 or 0755 (got {PathPolicy.Shorten(mode)})");
        }

        return (UnixFileMode)Convert.ToInt32(mode, 8);
    }

    public static string Hex(ReadOnlySpan<byte> hash) => Convert.ToHexString(hash).ToLowerInvariant();

    internal static T Parse<T>(JsonElement? parameters, JsonTypeInfo<T> type, string required)
        where T : class
    {
        if (parameters is not { ValueKind: JsonValueKind.Object } element)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"params must be an object with {required}");
        }

        try
        {
            return element.Deserialize(type) ?? throw new RpcFault(RpcErrorCodes.InvalidParams, "params must be an object");
        }
        catch (JsonException ex)
        {
            var field = ex.Path is { Length: > 2 } path ? path.TrimStart('$', '.') : null;
            throw new RpcFault(RpcErrorCodes.InvalidParams, field is null
                ? $"params are incomplete: {required} required"
                : $"{field} has the wrong type");
        }
    }

    private static RpcFault NotFound(string path) => new(RpcErrorCodes.NotFound, $"no such file or directory: {PathPolicy.Shorten(path)}");

    private static RpcFault TooLargeWrite() => new(RpcErrorCodes.TooLarge, string.Create(CultureInfo.InvariantCulture,
        $"content is over {FileLimits.MaxWriteBytes} bytes; use upload for larger files"));
}

/// <summary>Atomic replacement of a file: a temp file in the same directory, fsync, then rename over the target.</summary>
internal static class AtomicFile
{
    public static void Write(string target, ReadOnlySpan<byte> content, UnixFileMode? mode, PathPolicy policy)
    {
        var dir = Path.GetDirectoryName(target)!;
        var temp = Path.Join(dir, "." + Path.GetFileName(target) + ".eph-tmp-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(6)).ToLowerInvariant());
        try
        {
            using (var file = NoFollow.OpenWrite(temp, 0))
            {
                policy.VerifyOpened(file.SafeFileHandle, temp);
                file.SetLength(0);
                file.Write(content);
                file.Flush(flushToDisk: true);
                ApplyMode(file, target, mode);
            }

            Commit(temp, target);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>
    /// Sets the final mode on the open temp file: the requested one, else the mode of the file being replaced, else 0644.
    /// </summary>
    public static void ApplyMode(FileStream file, string target, UnixFileMode? mode)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        UnixFileMode final;
        if (mode is { } requested)
        {
            final = requested;
        }
        else if (File.Exists(target))
        {
            final = File.GetUnixFileMode(target);
        }
        else
        {
            final = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        }

        File.SetUnixFileMode(file.SafeFileHandle, final);
    }

    /// <summary>
    /// Renames <paramref name="source"/> over <paramref name="target"/>. rename(2) replaces the directory entry itself,
    /// so even a link planted at the target after the check is replaced, never written through.
    /// </summary>
    public static void Commit(string source, string target)
    {
        if (Directory.Exists(target) && new FileInfo(target).LinkTarget is null)
        {
            throw new RpcFault(RpcErrorCodes.InvalidParams, $"path is a directory: {PathPolicy.Shorten(target)}");
        }

        File.Move(source, target, overwrite: true);
    }

    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }
}
