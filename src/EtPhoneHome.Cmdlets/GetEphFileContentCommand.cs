using EtPhoneHome.Core.Services;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>Reads a file on one or many clients (at most 10 MiB; Copy-EphFile -FromClient streams larger files).</summary>
[Cmdlet(VerbsCommon.Get, "EphFileContent", DefaultParameterSetName = ClientIdSet, HelpUri = HelpLinks.Base + "Get-EphFileContent.md")]
[OutputType(typeof(EphFileContent))]
public sealed class GetEphFileContentCommand : EphFleetTargetCmdlet
{
    /// <summary>Absolute path of the file on the client.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>Return the bytes (Bytes property) even when the file is text.</summary>
    [Parameter]
    public SwitchParameter AsByteStream { get; set; }

    /// <summary>Largest file read whole; a larger one is an error unless -Truncate is given.</summary>
    [Parameter]
    [ValidateRange(1, FileLimits.DefaultReadBytes)]
    public long MaxBytes { get; set; } = FileLimits.DefaultReadBytes;

    /// <summary>Return the first -MaxBytes bytes of a larger file instead of an error.</summary>
    [Parameter]
    public SwitchParameter Truncate { get; set; }

    private protected override bool SupportsRemote => true;

    private ReadFileParams Parameters => new() { Path = Path, MaxBytes = MaxBytes, Truncate = Truncate.IsPresent ? true : null };

    private protected override Task RunAsync(IReadOnlyList<FleetTarget> targets, OperatorServices services, CancellationToken ct) =>
        WriteAsync(services.ReadFilesAsync(targets, Parameters, ThrottleLimit, ct));

    private protected override Task RunRemoteAsync(IReadOnlyList<FleetTarget> targets, EtPhoneHome.Core.Remote.RemoteOperator remote, CancellationToken ct) =>
        WriteAsync(remote.ReadFilesAsync(Selection(targets), Parameters, ThrottleLimit, null, ct));

    private async Task WriteAsync(IAsyncEnumerable<FleetFileOutcome<ReadFileResult>> outcomes)
    {
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            if (outcome.Value is { } value)
            {
                WriteObject(new EphFileContent(outcome.Target, value, AsByteStream.IsPresent));
            }
            else
            {
                WriteError(OutcomeError(outcome, Path));
            }
        }
    }
}
