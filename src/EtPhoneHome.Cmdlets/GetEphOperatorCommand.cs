using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Lists operators (SSH keys with a name and a role), by name; removed ones too with -IncludeRemoved.</summary>
[Cmdlet(VerbsCommon.Get, "EphOperator", HelpUri = HelpLinks.Base + "Get-EphOperator.md")]
[OutputType(typeof(EphOperator))]
public sealed class GetEphOperatorCommand : EphAsyncCmdlet
{
    /// <summary>Operator names or key fingerprints; * and ? wildcards. Every operator when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    public string[]? Name { get; set; }

    /// <summary>Removed operators too.</summary>
    [Parameter]
    public SwitchParameter IncludeRemoved { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        IReadOnlyList<OperatorRecord> operators;
        if (Remote is not null)
        {
            operators = await (await RemoteOperatorAsync(ct).ConfigureAwait(false)).ListOperatorsAsync(IncludeRemoved, ct).ConfigureAwait(false);
        }
        else
        {
            using var registry = OpenRegistry();
            operators = registry.Operators.ListOperators(IncludeRemoved);
        }

        var patterns = Name ?? [];
        bool Matches(string pattern, OperatorRecord op) => ClientNameMatcher.IsMatch(pattern, op.Name) || ClientNameMatcher.IsMatch(pattern, op.Fingerprint);
        foreach (var op in operators.Where(o => patterns.Length == 0 || patterns.Any(p => Matches(p, o))))
        {
            WriteObject(new EphOperator(op));
        }

        foreach (var literal in patterns.Where(p => !ClientNameMatcher.IsWildcard(p) && !operators.Any(o => Matches(p, o))))
        {
            WriteError(NewError(Strings.OperatorNotFoundId, ErrorCategory.ObjectNotFound, literal,
                string.Format(CultureInfo.CurrentCulture, Strings.OperatorNotFound, literal)));
        }
    }
}
