using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>
/// Gets the history of operations on clients (commands, file access, metadata changes, key decisions):
/// who, through which surface, what, result and duration; newest first. -First and -Skip page through it.
/// </summary>
[Cmdlet(VerbsCommon.Get, "EphHistory", HelpUri = HelpLinks.Base + "Get-EphHistory.md", SupportsPaging = true)]
[OutputType(typeof(EphHistoryEntry))]
public sealed class GetEphHistoryCommand : EphAsyncCmdlet
{
    /// <summary>Entries fetched per registry query while paging.</summary>
    internal const int PageSize = 500;

    private readonly List<string> _clients = [];

    /// <summary>Clients (uuids or display names, wildcards allowed); binds Id/Uuid/ClientId of piped objects.</summary>
    [Parameter(Position = 0, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [Alias("Uuid", "Id")]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? ClientId { get; set; }

    /// <summary>Operations, named as the MCP tools: run_command, read_file, update_client, accept_key, revoke_key, remove_client…</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(HistoryOperationCompleter))]
    public string[]? Operation { get; set; }

    /// <summary>Statuses: Succeeded, Failed, TimedOut, Denied, Unchanged…</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public EphOperationStatus[]? Status { get; set; }

    /// <summary>Only entries at or after this time.</summary>
    [Parameter]
    public DateTime Since { get; set; }

    /// <summary>Only entries before this time.</summary>
    [Parameter]
    public DateTime Until { get; set; }

    protected override Task ProcessRecordAsync(CancellationToken ct)
    {
        _clients.AddRange(ClientId ?? []);
        return Task.CompletedTask;
    }

    private protected override bool SupportsRemote => true;

    private protected override string? RemoteInvalidArgumentId => Strings.InvalidHistoryQueryId;

    protected override Task EndProcessingAsync(CancellationToken ct)
    {
        if (_clients.Count == 0 && MyInvocation.ExpectingInput)
        {
            return Task.CompletedTask; // upstream delivered no client: no history, not everyone's
        }

        if (Remote is not null)
        {
            return RemoteAsync(ct);
        }

        using var registry = OpenRegistry();
        var clients = ClientHistory.ResolveClients(registry.Clients, _clients);
        foreach (var missing in clients.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        if (_clients.Count > 0 && clients.Uuids.Count == 0)
        {
            return Task.CompletedTask; // every named client was unknown: their errors say so
        }

        var bound = MyInvocation.BoundParameters;
        var query = new HistoryQuery
        {
            Uuids = _clients.Count > 0 ? clients.Uuids : null,
            Operations = Operation,
            Statuses = Status?.Select(s => OperationNames.Wire((OperationStatus)(int)s)).ToList(),
            Since = bound.ContainsKey(nameof(Since)) ? ToUtc(Since) : null,
            Until = bound.ContainsKey(nameof(Until)) ? ToUtc(Until) : null,
        };

        var skip = PagingParameters.Skip;
        var remaining = PagingParameters.First;
        var names = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        try
        {
            if (PagingParameters.IncludeTotalCount)
            {
                // PowerShell's convention: the total comes first, then the page.
                WriteObject(PagingParameters.NewTotalCount((ulong)registry.History.CountHistory(query), 1.0));
            }

            while (remaining > 0 && skip <= int.MaxValue)
            {
                ct.ThrowIfCancellationRequested();
                var take = (int)Math.Min((ulong)PageSize, remaining);
                var page = registry.History.QueryHistory(query with { Skip = (int)skip, Take = take });
                foreach (var (uuid, name) in ClientHistory.DisplayNames(registry.Clients, page.Select(e => e.Uuid).Where(u => u is not null && !names.ContainsKey(u))))
                {
                    names[uuid] = name;
                }

                foreach (var entry in page)
                {
                    WriteObject(new EphHistoryEntry(entry, entry.Uuid is { } u ? names.GetValueOrDefault(u) : null));
                }

                if (page.Count < take)
                {
                    break;
                }

                skip += (ulong)page.Count;
                remaining -= (ulong)page.Count;
            }
        }
        catch (RegistryValidationException ex)
        {
            throw new EphTerminatingException(NewError(Strings.InvalidHistoryQueryId, ErrorCategory.InvalidArgument, null, ex.Message, ex));
        }

        return Task.CompletedTask;
    }

    /// <summary>The same query, pages and total through the server's operator service.</summary>
    private async Task RemoteAsync(CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        IReadOnlyList<string>? uuids = null;
        if (_clients.Count > 0)
        {
            var lookup = await op.SearchAsync(new ClientQuery { Names = _clients }, ct).ConfigureAwait(false);
            foreach (var missing in lookup.NotFound)
            {
                WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                    string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
            }

            if (lookup.Clients.Count == 0)
            {
                return; // every named client was unknown: their errors say so
            }

            uuids = [.. lookup.Clients.Select(c => c.Uuid)];
        }

        var query = Query(uuids);
        var skip = PagingParameters.Skip;
        var remaining = PagingParameters.First;
        var first = true;
        while (remaining > 0 && skip <= int.MaxValue)
        {
            var take = (int)Math.Min((ulong)PageSize, remaining);
            var page = await op.QueryHistoryAsync(query with { Skip = (int)skip, Take = take }, first && PagingParameters.IncludeTotalCount, ct).ConfigureAwait(false);
            if (first && PagingParameters.IncludeTotalCount)
            {
                // PowerShell's convention: the total comes first, then the page.
                WriteObject(PagingParameters.NewTotalCount((ulong)(page.Total ?? 0), page.Total is null ? 0.0 : 1.0));
            }

            first = false;
            foreach (var entry in page.Entries)
            {
                WriteObject(new EphHistoryEntry(entry, entry.Uuid is { } u ? page.DisplayNames.GetValueOrDefault(u) : null));
            }

            if (page.Entries.Count < take)
            {
                break;
            }

            skip += (ulong)page.Entries.Count;
            remaining -= (ulong)page.Entries.Count;
        }
    }

    private HistoryQuery Query(IReadOnlyList<string>? uuids)
    {
        var bound = MyInvocation.BoundParameters;
        return new HistoryQuery
        {
            Uuids = uuids,
            Operations = Operation,
            Statuses = Status?.Select(s => OperationNames.Wire((OperationStatus)(int)s)).ToList(),
            Since = bound.ContainsKey(nameof(Since)) ? ToUtc(Since) : null,
            Until = bound.ContainsKey(nameof(Until)) ? ToUtc(Until) : null,
        };
    }

    /// <summary>A DateTime as PowerShell hands it over: Local and Unspecified kinds mean local time.</summary>
    internal static DateTimeOffset ToUtc(DateTime value) =>
        value.Kind == DateTimeKind.Utc ? new DateTimeOffset(value) : new DateTimeOffset(value.ToUniversalTime(), TimeSpan.Zero);
}
