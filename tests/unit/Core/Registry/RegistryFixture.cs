using EtPhoneHome.Core;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome.Tests.Unit.Registry;

/// <summary>A settable clock for staleness tests.</summary>
internal sealed class ManualTime(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset _now = start;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>A temporary data directory, removed on dispose.</summary>
internal sealed class TempData : IDisposable
{
    public TempData()
    {
        Root = Path.Combine(Path.GetTempPath(), "eph-test-" + Guid.NewGuid().ToString("N")[..12]);
        Dir = new DataDirectory(Path.Combine(Root, "data"));
    }

    public string Root { get; }

    public DataDirectory Dir { get; }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

internal static class Keys
{
    public const string A = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    public const string B = "SHA256:BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    public const string C = "SHA256:CCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC";
    public const string D = "SHA256:DDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDDD";

    public static AgentIdentity Identity(string host = "web-01", string? claimed = null, string[]? tags = null, string[]? caps = null, string? name = null)
        => new()
        {
            ClaimedUuid = claimed,
            Hostname = host,
            Platform = "linux-x64",
            Username = "svc",
            AgentVersion = "0.1.0",
            Capabilities = caps ?? ["run_command"],
            DisplayName = name,
            Purpose = "testing",
            Tags = tags ?? ["Prod", "eu"],
        };

    /// <summary>Records, approves and admits a key; returns the client.</summary>
    public static ClientRecord Admit(SqliteRegistry r, string fp, AgentIdentity id)
    {
        r.RecordPendingKey(fp, "ssh-ed25519 AAAAtest", id);
        r.ApproveKey(fp, "tester");
        return r.AdmitClient(fp, id);
    }
}
