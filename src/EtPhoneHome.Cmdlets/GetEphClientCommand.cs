using System.Management.Automation;
using EtPhoneHome.Core.Operations;

namespace EtPhoneHome;

/// <summary>Gets registered clients by name (wildcards) or id.</summary>
[Cmdlet(VerbsCommon.Get, "EphClient", DefaultParameterSetName = NameSet)]
[OutputType(typeof(EphClient))]
public sealed class GetEphClientCommand : EphAsyncCmdlet
{
    public const string NameSet = "Name";
    public const string IdSet = "Id";

    /// <summary>Display names or uuids; * and ? wildcards. All clients when omitted.</summary>
    [Parameter(ParameterSetName = NameSet, Position = 0, ValueFromPipeline = true)]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? Name { get; set; }

    /// <summary>Exact client uuids.</summary>
    [Parameter(ParameterSetName = IdSet, Mandatory = true, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? Id { get; set; }

    /// <summary>Only clients with an online session.</summary>
    [Parameter]
    public SwitchParameter Online { get; set; }

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry, ParameterSetName == IdSet ? null : Name, ParameterSetName == IdSet ? Id : null, Online.IsPresent);
        foreach (var client in lookup.Clients)
        {
            WriteObject(new EphClient(client));
        }

        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        return Task.CompletedTask;
    }
}
