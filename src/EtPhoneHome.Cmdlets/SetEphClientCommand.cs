using System.Globalization;
using System.Management.Automation;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Edits the operator fields of clients: name, purpose, tags, allowed paths, webhook URL, rate limits.</summary>
[Cmdlet(VerbsCommon.Set, "EphClient", HelpUri = HelpLinks.Base + "Set-EphClient.md", SupportsShouldProcess = true, ConfirmImpact = ConfirmImpact.Medium)]
[OutputType(typeof(EphClient))]
public sealed class SetEphClientCommand : EphAsyncCmdlet
{
    /// <summary>Client uuids or display names (wildcards allowed); binds Id/Uuid of piped objects.</summary>
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("Uuid", "ClientId")]
    [ValidateNotNullOrEmpty]
    [SupportsWildcards]
    [ArgumentCompleter(typeof(ClientNameCompleter))]
    public string[]? Id { get; set; }

    /// <summary>New display name, 1 to 100 characters.</summary>
    [Parameter]
    [ValidateLength(1, 100)]
    public string? DisplayName { get; set; }

    /// <summary>New purpose, at most 200 characters; an empty string clears it.</summary>
    [Parameter]
    [AllowEmptyString]
    [ValidateLength(0, 200)]
    public string? Purpose { get; set; }

    /// <summary>Replaces all tags (an empty array removes every tag).</summary>
    [Parameter]
    [AllowEmptyCollection]
    [ArgumentCompleter(typeof(TagCompleter))]
    public string[]? Tag { get; set; }

    /// <summary>Tags to add.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TagCompleter))]
    public string[]? AddTag { get; set; }

    /// <summary>Tags to remove (case-insensitive).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(TagCompleter))]
    public string[]? RemoveTag { get; set; }

    /// <summary>Server-side allowed paths; an empty array or $null clears the restriction (all paths).</summary>
    [Parameter]
    [AllowNull]
    [AllowEmptyCollection]
    public string[]? AllowedPath { get; set; }

    /// <summary>The client's own webhook URL; an empty string falls back to the global one.</summary>
    [Parameter]
    [AllowEmptyString]
    public string? WebhookUrl { get; set; }

    /// <summary>Requests per rolling minute.</summary>
    [Parameter]
    [ValidateRange(1, 1000)]
    public int RateLimitRpm { get; set; }

    /// <summary>Requests in flight at once.</summary>
    [Parameter]
    [ValidateRange(1, 100)]
    public int RateLimitConcurrent { get; set; }

    /// <summary>Writes the updated client.</summary>
    [Parameter]
    public SwitchParameter PassThru { get; set; }

    private protected override bool SupportsRemote => true;

    protected override async Task ProcessRecordAsync(CancellationToken ct)
    {
        var update = BuildUpdate(MyInvocation.BoundParameters.Keys);
        if (Remote is not null)
        {
            await RemoteAsync(update, ct).ConfigureAwait(false);
            return;
        }

        using var registry = OpenRegistry();
        var lookup = ClientQueries.Find(registry.Clients, names: Id, ids: null, onlineOnly: false);
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        var action = string.Format(CultureInfo.CurrentCulture, Strings.SetClientAction, Describe(update));
        foreach (var client in lookup.Clients)
        {
            if (!await ShouldProcessAsync(ClientText.Describe(client.DisplayName, client.Uuid), action).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var updated = ClientAdministration.Set(registry.Clients, client.Uuid, update, OperatorContext.ForSurface(Surfaces.PowerShell));
                if (PassThru)
                {
                    WriteObject(new EphClient(updated));
                }
            }
            catch (ClientNameTakenException ex)
            {
                // A name another client has: its own ID, so a script can tell it from a malformed value.
                WriteError(NewError(Strings.ClientNameTakenId, ErrorCategory.ResourceExists, client.Uuid,
                    string.Format(CultureInfo.CurrentCulture, Strings.InvalidClientField, ClientText.Describe(client.DisplayName, client.Uuid), ex.Message), ex));
            }
            catch (RegistryValidationException ex)
            {
                WriteError(NewError(Strings.InvalidClientFieldId, ErrorCategory.InvalidArgument, client.Uuid,
                    string.Format(CultureInfo.CurrentCulture, Strings.InvalidClientField, ClientText.Describe(client.DisplayName, client.Uuid), ex.Message), ex));
            }
            catch (RegistryNotFoundException ex)
            {
                WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, client.Uuid, ex.Message, ex));
            }
        }
    }

    /// <summary>The same edit through the server: its search resolves the names, its operator service applies the edit.</summary>
    private async Task RemoteAsync(ClientUpdate update, CancellationToken ct)
    {
        var op = await RemoteOperatorAsync(ct).ConfigureAwait(false);
        var lookup = await op.SearchAsync(new ClientQuery { Names = Id }, ct).ConfigureAwait(false);
        foreach (var missing in lookup.NotFound)
        {
            WriteError(NewError(Strings.ClientNotFoundId, ErrorCategory.ObjectNotFound, missing,
                string.Format(CultureInfo.CurrentCulture, Strings.ClientNotFound, missing)));
        }

        var action = string.Format(CultureInfo.CurrentCulture, Strings.SetClientAction, Describe(update));
        foreach (var client in lookup.Clients)
        {
            if (!await ShouldProcessAsync(ClientText.Describe(client.DisplayName, client.Uuid), action).ConfigureAwait(false))
            {
                continue;
            }

            try
            {
                var updated = await op.UpdateClientAsync(client.Uuid, update, ct).ConfigureAwait(false);
                if (PassThru)
                {
                    WriteObject(new EphClient(updated));
                }
            }
            catch (EtPhoneHome.Core.Remote.OperatorRemoteException ex)
            {
                WriteError(RemoteTargetError(ex, client.Uuid, Strings.InvalidClientFieldId));
            }
        }
    }

    /// <summary>The edit the bound parameters ask for: only bound parameters change anything.</summary>
    internal ClientUpdate BuildUpdate(ICollection<string> bound)
    {
        bool Has(string name) => bound.Contains(name);
        var clearPaths = Has(nameof(AllowedPath)) && AllowedPath is null or { Length: 0 };
        return new ClientUpdate
        {
            DisplayName = Has(nameof(DisplayName)) ? DisplayName : null,
            Purpose = Has(nameof(Purpose)) ? Purpose ?? "" : null,
            Tags = Has(nameof(Tag)) ? Tag ?? [] : null,
            AddTags = Has(nameof(AddTag)) ? AddTag : null,
            RemoveTags = Has(nameof(RemoveTag)) ? RemoveTag : null,
            AllowedPaths = Has(nameof(AllowedPath)) && !clearPaths ? AllowedPath : null,
            ClearAllowedPaths = clearPaths,
            WebhookUrl = Has(nameof(WebhookUrl)) ? WebhookUrl ?? "" : null,
            RateLimitRpm = Has(nameof(RateLimitRpm)) ? RateLimitRpm : null,
            RateLimitConcurrent = Has(nameof(RateLimitConcurrent)) ? RateLimitConcurrent : null,
        };
    }

    /// <summary>What -WhatIf shows: the fields the edit changes.</summary>
    internal static string Describe(ClientUpdate u)
    {
        var parts = new List<string>();
        if (u.DisplayName is not null) parts.Add($"DisplayName '{u.DisplayName}'");
        if (u.Purpose is not null) parts.Add(u.Purpose.Length == 0 ? "clear Purpose" : $"Purpose '{u.Purpose}'");
        if (u.Tags is not null) parts.Add($"Tag [{string.Join(", ", u.Tags)}]");
        if (u.AddTags is not null) parts.Add($"add tag [{string.Join(", ", u.AddTags)}]");
        if (u.RemoveTags is not null) parts.Add($"remove tag [{string.Join(", ", u.RemoveTags)}]");
        if (u.ClearAllowedPaths) parts.Add("allow all paths");
        if (u.AllowedPaths is not null) parts.Add($"AllowedPath [{string.Join(", ", u.AllowedPaths)}]");
        if (u.WebhookUrl is not null) parts.Add(u.WebhookUrl.Length == 0 ? "use the global webhook" : "set WebhookUrl");
        if (u.RateLimitRpm is { } rpm) parts.Add(string.Create(CultureInfo.InvariantCulture, $"RateLimitRpm {rpm}"));
        if (u.RateLimitConcurrent is { } c) parts.Add(string.Create(CultureInfo.InvariantCulture, $"RateLimitConcurrent {c}"));
        return parts.Count == 0 ? "nothing" : string.Join(", ", parts);
    }
}
