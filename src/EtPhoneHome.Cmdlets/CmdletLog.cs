using EtPhoneHome.Core.Logging;

namespace EtPhoneHome;

/// <summary>
/// Core's log routed to PowerShell's streams, so the preference variables, -Verbose, -Debug, -WarningAction,
/// -WarningVariable and redirection (3&gt;, 4&gt;, 5&gt;) apply: warnings to the warning stream, information to the
/// verbose stream (what -Verbose shows), debug and trace to the debug stream. Errors of the log go to the warning stream
/// too: they are diagnostics, not the cmdlet's outcome — a target's failure is written as an ErrorRecord with a stable
/// ID by the cmdlet itself — so a log entry never turns into a terminating error under -ErrorAction Stop (friendly
/// warnings for people, as dbatools does). The cmdlet's Write* methods marshal to the pipeline thread, so any thread
/// may log.
/// </summary>
internal sealed class CmdletLog(EphAsyncCmdlet cmdlet) : IEphLog
{
    // PowerShell filters by its own preferences; every level is handed over.
    public bool IsEnabled(EphLogLevel level) => level < EphLogLevel.None;

    public void Write(EphLogEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        switch (entry.Level)
        {
            case EphLogLevel.Trace or EphLogLevel.Debug:
                cmdlet.WriteDebug(entry.Message);
                break;
            case EphLogLevel.Information:
                cmdlet.WriteVerbose(entry.Message);
                break;
            default:
                cmdlet.WriteWarning(entry.Message);
                break;
        }
    }
}
