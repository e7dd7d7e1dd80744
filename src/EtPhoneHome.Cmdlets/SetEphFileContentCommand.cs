using EtPhoneHome.Core.Services;
using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Files;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Protocol;

namespace EtPhoneHome;

/// <summary>Writes a file on one or many clients, atomically (temp file, fsync, rename); never through a symbolic link.</summary>
[Cmdlet(VerbsCommon.Set, "EphFileContent", HelpUri = HelpLinks.Base + "Set-EphFileContent.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium, DefaultParameterSetName = TextSet)]
[OutputType(typeof(EphFileWriteResult))]
public sealed class SetEphFileContentCommand : EphFleetCmdlet
{
    public const string TextSet = "Text";
    public const string BytesSet = "Bytes";
    public const string TextAllSet = "TextAll";
    public const string BytesAllSet = "BytesAll";

    /// <summary>Absolute path of the file on the client.</summary>
    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = "";

    /// <summary>The text to write (UTF-8).</summary>
    [Parameter(ParameterSetName = TextSet, Mandatory = true, Position = 1)]
    [Parameter(ParameterSetName = TextAllSet, Mandatory = true, Position = 1)]
    [AllowEmptyString]
    public string Value { get; set; } = "";

    /// <summary>The bytes to write.</summary>
    [Parameter(ParameterSetName = BytesSet, Mandatory = true)]
    [Parameter(ParameterSetName = BytesAllSet, Mandatory = true)]
    [ValidateNotNull]
    public byte[]? ByteValue { get; set; }

    /// <summary>Client uuids or display names.</summary>
    [Parameter(ParameterSetName = TextSet, ValueFromPipelineByPropertyName = true)]
    [Parameter(ParameterSetName = BytesSet, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Clients from Get-EphClient.</summary>
    [Parameter(ParameterSetName = TextSet, ValueFromPipeline = true)]
    [Parameter(ParameterSetName = BytesSet, ValueFromPipeline = true)]
    [ValidateNotNull]
    public EphClient[]? InputObject { get; set; }

    /// <summary>Every registered client: the whole fleet is never a default, it is asked for.</summary>
    [Parameter(ParameterSetName = TextAllSet, Mandatory = true)]
    [Parameter(ParameterSetName = BytesAllSet, Mandatory = true)]
    public SwitchParameter All { get; set; }

    private protected override string[]? TargetIds => ClientId;

    private protected override EphClient[]? TargetClients => InputObject;

    private protected override bool TargetAll => All.IsPresent;

    private bool IsBytes => ParameterSetName is BytesSet or BytesAllSet;

    /// <summary>Fail when the parent directory is missing instead of creating it.</summary>
    [Parameter]
    public SwitchParameter NoCreateParents { get; set; }

    /// <summary>Unix permission bits in octal ("640"); default keeps an existing file's mode, else 644.</summary>
    [Parameter]
    [ValidatePattern("^[0-7]{1,4}$")]
    public string? Mode { get; set; }

    /// <summary>Write an EphFileWriteResult per client.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override bool SupportsRemote => true;

    private protected override async Task RunAsync(IReadOnlyList<FleetTarget> targets, OperatorServices services, CancellationToken ct)
    {
        var (parameters, approved) = await ApproveAsync(targets).ConfigureAwait(false);
        await WriteAsync(services.WriteFilesAsync(approved, parameters, ThrottleLimit, ct)).ConfigureAwait(false);
    }

    private protected override async Task RunRemoteAsync(IReadOnlyList<FleetTarget> targets, EtPhoneHome.Core.Remote.RemoteOperator remote, CancellationToken ct)
    {
        var (parameters, approved) = await ApproveAsync(targets).ConfigureAwait(false);
        if (approved.Count > 0)
        {
            await WriteAsync(remote.WriteFilesAsync(Selection(approved), parameters, ThrottleLimit, null, ct)).ConfigureAwait(false);
        }
    }

    /// <summary>The write and the targets ShouldProcess approved (-WhatIf: none).</summary>
    private async Task<(WriteFileParams Parameters, List<FleetTarget> Approved)> ApproveAsync(IReadOnlyList<FleetTarget> targets)
    {
        var bytes = IsBytes ? ByteValue! : System.Text.Encoding.UTF8.GetBytes(Value);
        var parameters = new WriteFileParams
        {
            Path = Path,
            Content = IsBytes ? Convert.ToBase64String(bytes) : Value,
            Encoding = IsBytes ? FileEncodings.Base64 : FileEncodings.Utf8,
            CreateParents = !NoCreateParents.IsPresent,
            Mode = Mode,
        };

        var action = string.Format(CultureInfo.CurrentCulture, Strings.WriteFileAction, bytes.Length, Path);
        var approved = new List<FleetTarget>(targets.Count);
        foreach (var target in targets)
        {
            if (await ShouldProcessAsync(target.Describe(), action).ConfigureAwait(false))
            {
                approved.Add(target);
            }
        }

        return (parameters, approved);
    }

    private async Task WriteAsync(IAsyncEnumerable<FleetFileOutcome<WriteFileResult>> outcomes)
    {
        await foreach (var outcome in outcomes.ConfigureAwait(false))
        {
            if (outcome.Value is { } value)
            {
                if (PassThru.IsPresent)
                {
                    WriteObject(new EphFileWriteResult(outcome.Target, value));
                }
            }
            else
            {
                WriteError(OutcomeError(outcome, Path));
            }
        }
    }
}
