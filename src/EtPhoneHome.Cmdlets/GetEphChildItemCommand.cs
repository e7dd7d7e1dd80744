using EtPhoneHome.Core.Services;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>Lists a directory on one or many clients; entries sorted by name, unreadable entries carry an Error.</summary>
[Cmdlet(VerbsCommon.Get, "EphChildItem", DefaultParameterSetName = ClientIdSet, HelpUri = HelpLinks.Base + "Get-EphChildItem.md")]
[OutputType(typeof(EphFileEntry))]
public sealed class GetEphChildItemCommand : EphFleetTargetCmdlet
{
    /// <summary>Absolute path of the directory on the client.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Descend into subdirectories (symbolic links are listed, never followed).</summary>
    [Parameter]
    public SwitchParameter Recurse { get; set; }

    /// <summary>Most entries per client; a longer listing ends with a warning.</summary>
    [Parameter]
    [ValidateRange(1, FileLimits.MaxListEntries)]
    public int MaxEntries { get; set; } = FileLimits.DefaultListEntries;

    private protected override bool SupportsRemote => true;

    private ListFilesParams Parameters => new() { Path = Path, Recursive = Recurse.IsPresent ? true : null, MaxEntries = MaxEntries };

    private protected override Task RunAsync(IReadOnlyList<FleetTarget> targets, OperatorServices services, CancellationToken ct) =>
        WriteAsync(services.ListFilesAsync(targets, Parameters, ThrottleLimit, ct));

    private protected override Task RunRemoteAsync(IReadOnlyList<FleetTarget> targets, EtPhoneHome.Core.Remote.RemoteOperator remote, CancellationToken ct) =>
        WriteAsync(remote.ListFilesAsync(Selection(targets), Parameters, ThrottleLimit, null, ct));

    private async Task WriteAsync(IAsyncEnumerable<FleetFileOutcome<ListFilesResult>> outcomes)
    {
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            if (outcome.Value is not { } listing)
            {
                WriteError(OutcomeError(outcome, Path));
                continue;
            }

            foreach (var entry in listing.Entries)
            {
                WriteObject(new EphFileEntry(outcome.Target, listing.Path, entry));
            }

            if (listing.Truncated)
            {
                WriteWarning($"{outcome.Target.Describe()}: the listing of {listing.Path} stopped at {MaxEntries} entries (-MaxEntries).");
            }
        }
    }
}
