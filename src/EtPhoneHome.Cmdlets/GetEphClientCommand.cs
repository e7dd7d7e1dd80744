using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Gets registered clients by name (wildcards) or id, filtered by text, purpose, tags, capabilities and online state.</summary>
[Cmdlet(VerbsCommon.Get, "EphClient", HelpUri = HelpLinks.Base + "Get-EphClient.md", DefaultParameterSetName = NameSet)]
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
    [Alias("Uuid", "ClientId")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientIdCompleter))]
    public string[]? Id { get; set; }

    /// <summary>Case-insensitive text in the display name, purpose, hostname or tags.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Query { get; set; }

    /// <summary>Case-insensitive text in the purpose.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Purpose { get; set; }

    /// <summary>Only clients carrying ALL of these tags.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TagCompleter))]
    public string[]? Tag { get; set; }

    /// <summary>Only clients with ALL of these capabilities (docker, nvidia-gpu, python3.12…).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(CapabilityCompleter))]
    public string[]? Capability { get; set; }

    /// <summary>Only clients with an online session.</summary>
    [Parameter]
    public SwitchParameter Online { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        var query = new ClientQuery
        {
            Names = ParameterSetName == IdSet ? null : Name,
            Ids = ParameterSetName == IdSet ? Id : null,
            Query = Query,
            Purpose = Purpose,
            Tags = Tag,
            Capabilities = Capability,
            OnlineOnly = Online.IsPresent,
        };
        ClientLookup lookup;
        if (Remote is not null)
        {
            lookup = await (await RemoteOperatorAsync(ct).ConfigureAwait(false)).SearchAsync(query, ct).ConfigureAwait(false);
        }
        else
        {
            using var registry = OpenRegistry();
            lookup = ClientQueries.Search(registry.Clients, query);
        }

        foreach (var client in lookup.Clients)
        {
            WriteObject(new EphClient(client));
        }

        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(System.Globalization.CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }
    }
}
