using EtPhoneHome.Core.Logging;

namespace EtPhoneHome.Server;

/// <summary>
/// eph-server's logs. Everything goes to stderr (the invocation's error writer): stdout carries the verbs' output,
/// which scripts parse, and the MCP protocol on stdio. <see cref="EphLog.LevelEnvironmentVariable"/> lowers or raises
/// the least level.
/// </summary>
internal static class CliLog
{
    /// <summary>A verb's log: <c>eph-server: warning: …</c>; warnings and errors unless the environment says otherwise.</summary>
    public static IEphLog ForVerb(TextWriter error, Func<string, string?>? environment = null)
        => new TextWriterLog(error, TextWriterLog.Prefixed("eph-server")).AtLeast(EphLog.LevelFromEnvironment(EphLogLevel.Warning, environment));

    /// <summary>
    /// The hub daemon's log: one timestamped line per entry naming its source (<c>… eph-hub: client … online</c>,
    /// <c>… eph-webhooks: warning: …</c>); information and above unless the environment says otherwise.
    /// </summary>
    public static IEphLog ForDaemon(TextWriter error, Func<string, string?>? environment = null, TimeProvider? time = null)
        => new TextWriterLog(error, TextWriterLog.Timestamped(time)).AtLeast(EphLog.LevelFromEnvironment(EphLogLevel.Information, environment));
}
