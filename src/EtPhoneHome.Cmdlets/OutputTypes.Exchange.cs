using EtPhoneHome.Core.Exchange;
using EtPhoneHome.Core.Text;

namespace EtPhoneHome;

/// <summary>An uploaded transfer (Send-EphExchangeFile). DownloadUrl is a bearer token until ExpiresAt; the default view hides it.</summary>
public sealed class EphExchangeTransfer
{
    internal EphExchangeTransfer(ExchangeUploadResult r)
    {
        // Through a server these come from it: every text is made safe for a terminal (a clean value is unchanged).
        TransferId = UntrustedText.ForTerminal(r.TransferId);
        Key = UntrustedText.ForTerminal(r.Key);
        DownloadUrl = r.DownloadUrl.AbsoluteUri;
        ExpiresAt = r.ExpiresAt;
        Size = r.Size;
        FileName = UntrustedText.ForTerminal(r.FileName);
        Sha256 = UntrustedText.ForTerminal(r.Sha256);
        SourceClient = UntrustedText.ForTerminal(r.SourceClient);
        DestinationClient = UntrustedText.ForTerminal(r.DestClient);
    }

    public string TransferId { get; }
    public string Key { get; }
    /// <summary>The presigned URL, escaped as sent (a string: passed to curl or Invoke-WebRequest as is).</summary>
    public string DownloadUrl { get; }
    public DateTimeOffset ExpiresAt { get; }
    public long Size { get; }
    public string FileName { get; }
    public string Sha256 { get; }
    public string SourceClient { get; }
    public string? DestinationClient { get; }

    public override string ToString() => TransferId;
}

/// <summary>A transfer handed to a client or collected from it; every target gets one.</summary>
public sealed class EphExchangeDelivery
{
    internal EphExchangeDelivery(ExchangeDeliveryResult r)
    {
        ClientId = r.Uuid;
        PSComputerName = UntrustedText.ForTerminal(r.DisplayName);
        Status = (EphCommandStatus)(int)r.Status;
        TransferId = UntrustedText.ForTerminal(r.TransferId);
        RemotePath = UntrustedText.ForTerminal(r.RemotePath);
        Size = r.Size;
        Sha256 = UntrustedText.ForTerminal(r.Sha256);
        Verified = r.Verified;
        LocalPath = r.LocalPath;
        Error = UntrustedText.ForTerminal(r.Error);
    }

    public string ClientId { get; }
    /// <summary>The client's display name, like Invoke-Command's PSComputerName.</summary>
    public string PSComputerName { get; }
    public EphCommandStatus Status { get; }
    public string TransferId { get; }
    public string RemotePath { get; }
    public long? Size { get; }
    public string? Sha256 { get; }
    public bool Verified { get; }
    public string? LocalPath { get; }
    public string? Error { get; }

    public override string ToString() => $"{PSComputerName}: {Status}";
}

/// <summary>A file written by Receive-EphExchangeFile.</summary>
public sealed class EphExchangeDownload
{
    internal EphExchangeDownload(ExchangeDownloadResult r)
    {
        LocalPath = r.LocalPath;
        Size = r.Size;
        Sha256 = r.Sha256;
        Verified = r.Verified;
        Resumed = r.Resumed;
        TransferId = r.TransferId;
    }

    public string LocalPath { get; }
    public long Size { get; }
    public string Sha256 { get; }
    public bool Verified { get; }
    public bool Resumed { get; }
    public string? TransferId { get; }

    public override string ToString() => LocalPath;
}

/// <summary>A transfer waiting in the bucket (Get-EphExchangeFile); pipes to Remove-EphExchangeFile and Receive-EphExchangeFile.</summary>
public sealed class EphExchangeFile
{
    internal EphExchangeFile(ExchangeObject o)
    {
        // A bucket's keys and metadata are written by whoever held an upload URL: made safe for a terminal.
        Key = UntrustedText.ForTerminal(o.Key);
        TransferId = UntrustedText.ForTerminal(o.TransferId ?? o.Key);
        SourceClient = UntrustedText.ForTerminal(o.SourceClient ?? "");
        DestinationClient = o.Metadata.TryGetValue("dest_client", out var d) && d.Length > 0 ? UntrustedText.ForTerminal(d) : null;
        FileName = UntrustedText.ForTerminal(o.Metadata.TryGetValue("filename", out var f) ? f : (o.TransferId is null ? null : TransferNames.FileNameOf(o.TransferId)));
        Sha256 = o.Metadata.TryGetValue("sha256", out var s) ? UntrustedText.ForTerminal(s) : null;
        Size = o.Size;
        LastModified = o.LastModified;
        Metadata = new EphMap(SafeMetadata(o.Metadata));
    }

    public string Key { get; }
    public string TransferId { get; }
    public string SourceClient { get; }
    public string? DestinationClient { get; }
    public string? FileName { get; }
    public string? Sha256 { get; }
    public long Size { get; }
    public DateTimeOffset? LastModified { get; }
    public EphMap Metadata { get; }

    public override string ToString() => TransferId;

    private static Dictionary<string, string> SafeMetadata(IReadOnlyDictionary<string, string> metadata)
    {
        var safe = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, value) in metadata)
        {
            safe[UntrustedText.ForTerminal(name, 128)] = UntrustedText.ForTerminal(value, 1024);
        }

        return safe;
    }
}

/// <summary>The outcome of Remove-EphExchangeFile: Deleted is false when there was no such transfer.</summary>
public sealed class EphExchangeRemoval
{
    internal EphExchangeRemoval(ExchangeDeleteResult r)
    {
        Key = r.Key;
        TransferId = r.TransferId;
        Deleted = r.Deleted;
    }

    public string Key { get; }
    public string TransferId { get; }
    public bool Deleted { get; }
}

/// <summary>A presigned PUT URL (New-EphExchangeUploadUrl): <c>curl -T FILE "$UploadUrl"</c> on the client.</summary>
public sealed class EphExchangeUploadUrl
{
    internal EphExchangeUploadUrl(ExchangeUploadUrl r)
    {
        TransferId = r.TransferId;
        Key = r.Key;
        UploadUrl = r.UploadUrl.AbsoluteUri;
        ExpiresAt = r.ExpiresAt;
        SourceClient = r.SourceClient;
        FileName = r.FileName;
    }

    public string TransferId { get; }
    public string Key { get; }
    /// <summary>The presigned PUT URL, escaped as sent (a string: <c>curl -T FILE $u.UploadUrl</c> works as is).</summary>
    public string UploadUrl { get; }
    public DateTimeOffset ExpiresAt { get; }
    public string SourceClient { get; }
    public string FileName { get; }

    public override string ToString() => TransferId;
}

/// <summary>A bucket lifecycle rule (Initialize-EphExchange).</summary>
public sealed class EphExchangeLifecycleRule
{
    internal EphExchangeLifecycleRule(ExchangeLifecycleRule r)
    {
        Id = r.Id;
        Prefix = r.Prefix;
        ExpirationDays = r.ExpirationDays;
        Enabled = r.Enabled;
    }

    public string Id { get; }
    public string Prefix { get; }
    public int ExpirationDays { get; }
    public bool Enabled { get; }
}
