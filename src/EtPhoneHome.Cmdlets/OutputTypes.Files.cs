using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Text;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>The content of a file on one client, as Get-EphFileContent writes it.</summary>
public sealed class EphFileContent
{
    internal EphFileContent(FleetTarget target, ReadFileResult result, bool asBytes)
    {
        ClientId = target.Uuid;
        PSComputerName = UntrustedText.ForTerminal(target.DisplayName);
        Path = result.Path;
        Size = result.Size;
        Sha256 = result.Sha256;
        Encoding = result.Encoding;
        Truncated = result.Truncated;
        var isText = result.Encoding == FileEncodings.Utf8;
        Content = isText && !asBytes ? result.Content : null;
        Bytes = isText ? (asBytes ? EphList.Of(System.Text.Encoding.UTF8.GetBytes(result.Content)) : null) : EphList.Of(Convert.FromBase64String(result.Content));
    }

    public string ClientId { get; }
    public string PSComputerName { get; }
    public string Path { get; }
    /// <summary>Size of the whole file on the client.</summary>
    public long Size { get; }
    /// <summary>SHA-256 of the bytes returned (the whole file unless <see cref="Truncated"/>).</summary>
    public string Sha256 { get; }
    /// <summary>utf8 when the file is text; base64 when it is binary (then <see cref="Bytes"/> holds it).</summary>
    public string Encoding { get; }
    /// <summary>The text, for a UTF-8 text file read without -AsByteStream; otherwise null.</summary>
    public string? Content { get; }
    /// <summary>The raw bytes, for a binary file or with -AsByteStream; otherwise null.</summary>
    public EphList<byte>? Bytes { get; }
    public bool Truncated { get; }

    public override string ToString() => Content ?? $"{PSComputerName}:{Path} ({Size} bytes)";
}

/// <summary>What Set-EphFileContent -PassThru writes per client.</summary>
public sealed class EphFileWriteResult
{
    internal EphFileWriteResult(FleetTarget target, WriteFileResult result)
    {
        ClientId = target.Uuid;
        PSComputerName = UntrustedText.ForTerminal(target.DisplayName);
        Path = result.Path;
        Size = result.Size;
        Sha256 = result.Sha256;
        Created = result.Created;
    }

    public string ClientId { get; }
    public string PSComputerName { get; }
    public string Path { get; }
    public long Size { get; }
    public string Sha256 { get; }
    /// <summary>True when the file did not exist before.</summary>
    public bool Created { get; }
}

/// <summary>One entry of a directory listing on a client (Get-EphChildItem).</summary>
public sealed class EphFileEntry
{
    internal EphFileEntry(FleetTarget target, string directory, FileEntry entry)
    {
        ClientId = target.Uuid;
        PSComputerName = UntrustedText.ForTerminal(target.DisplayName);
        Directory = directory;
        Name = entry.Name;
        FullName = directory.TrimEnd('/', '\\') + "/" + entry.Name;
        Type = entry.Type switch
        {
            FileEntryTypes.File => EphFileType.File,
            FileEntryTypes.Directory => EphFileType.Directory,
            FileEntryTypes.Symlink => EphFileType.SymbolicLink,
            _ => EphFileType.Other,
        };
        Size = entry.Size;
        Mode = entry.Mode;
        LastWriteTime = entry.Mtime;
        Target = entry.Target;
        Error = UntrustedText.ForTerminal(entry.Error);
    }

    public string ClientId { get; }
    public string PSComputerName { get; }
    /// <summary>The listed directory (canonical path on the client).</summary>
    public string Directory { get; }
    /// <summary>Name relative to <see cref="Directory"/> ("sub/file.txt" with -Recurse).</summary>
    public string Name { get; }
    public string FullName { get; }
    public EphFileType Type { get; }
    public long Size { get; }
    /// <summary>Unix permission bits in octal ("644"); null on Windows clients.</summary>
    public string? Mode { get; }
    public DateTimeOffset? LastWriteTime { get; }
    /// <summary>Where a symbolic link points (not followed).</summary>
    public string? Target { get; }
    /// <summary>Why the entry could not be read; the rest of the listing is unaffected.</summary>
    public string? Error { get; }

    public override string ToString() => FullName;
}

/// <summary>Type of an <see cref="EphFileEntry"/>.</summary>
public enum EphFileType
{
    File,
    Directory,
    SymbolicLink,
    Other,
}

/// <summary>Direction of an <see cref="EphFileTransfer"/>.</summary>
public enum EphTransferDirection
{
    ToClient = TransferDirection.ToClient,
    FromClient = TransferDirection.FromClient,
}

/// <summary>The shell Invoke-EphCommand asks the client to use.</summary>
public enum EphShell
{
    Sh,
    Bash,
    PowerShell,
    Pwsh,
    Cmd,
}

/// <summary>The result of Copy-EphFile on one client; every target gets one.</summary>
public sealed class EphFileTransfer
{
    internal EphFileTransfer(FleetFileOutcome<FileTransferResult> outcome, EphTransferDirection direction, string localPath, string remotePath)
    {
        ClientId = outcome.Target.Uuid;
        PSComputerName = UntrustedText.ForTerminal(outcome.Target.DisplayName);
        Status = (EphCommandStatus)(int)outcome.Status;
        Direction = direction;
        LocalPath = outcome.Value?.LocalPath ?? localPath;
        RemotePath = outcome.Value?.RemotePath ?? remotePath;
        Size = outcome.Value?.Size ?? 0;
        Sha256 = outcome.Value?.Sha256;
        ResumedFrom = outcome.Value?.ResumedFrom ?? 0;
        Attempts = outcome.Value?.Attempts ?? 0;
        Duration = TimeSpan.FromMilliseconds(outcome.DurationMs);
        Error = UntrustedText.ForTerminal(outcome.Error);
    }

    public string ClientId { get; }
    public string PSComputerName { get; }
    public EphCommandStatus Status { get; }
    public EphTransferDirection Direction { get; }
    public string LocalPath { get; }
    public string RemotePath { get; }
    public long Size { get; }
    /// <summary>SHA-256 verified on both ends; null when the transfer did not succeed.</summary>
    public string? Sha256 { get; }
    /// <summary>Bytes taken from the partial file of an earlier, interrupted transfer.</summary>
    public long ResumedFrom { get; }
    public int Attempts { get; }
    public TimeSpan Duration { get; }
    public string? Error { get; }

    public override string ToString() => $"{PSComputerName}: {Status}";
}
