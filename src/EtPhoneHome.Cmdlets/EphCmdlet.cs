using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Base of every EtPhoneHome cmdlet: registry access and error records with stable IDs.</summary>
public abstract class EphCmdlet : PSCmdlet
{
    private ModuleSettings? _settings;

    /// <summary>
    /// The settings of the session this command runs in, read on the pipeline thread the first time (the async base
    /// reads it before any work goes to the thread pool, where no runspace is current).
    /// </summary>
    internal ModuleSettings Settings => _settings ??= ModuleConfiguration.Current;

    /// <summary>
    /// Opens the registry of the module's data directory (Set-EphConfiguration, else $ETPHONEHOME_DATA_DIR, else
    /// ~/.etphonehome-server).
    /// </summary>
    internal IFleetRegistry OpenRegistry()
    {
        try
        {
            return EphConfiguration.OpenRegistry(ModuleConfiguration.ResolveDataDirectory(Settings).Directory);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            // Without a registry nothing can work: a terminating error.
            throw new EphTerminatingException(NewError(Strings.RegistryUnavailableId, ErrorCategory.ResourceUnavailable, null,
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.RegistryUnavailable, ex.Message), ex));
        }
    }

    internal static ErrorRecord NewError(string id, ErrorCategory category, object? target, string message, Exception? exception = null) =>
        new(exception ?? new InvalidOperationException(message), id, category, target)
        {
            ErrorDetails = new ErrorDetails(message),
        };
}

/// <summary>
/// A terminating error raised on a worker thread; the async base rethrows it on the pipeline thread through
/// ThrowTerminatingError, which PowerShell only accepts there.
/// </summary>
internal sealed class EphTerminatingException(ErrorRecord record) : Exception(record.ErrorDetails?.Message ?? record.Exception.Message)
{
    public ErrorRecord Record { get; } = record;
}
