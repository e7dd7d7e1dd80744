using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Completes client uuids (matching a typed uuid or display name prefix) from the registry.</summary>
public sealed class ClientIdCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        RegistryCompletion.Complete(FleetCompletions.ClientIds, wordToComplete);
}

/// <summary>Completes the tags in use in the registry.</summary>
public sealed class TagCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        RegistryCompletion.Complete(FleetCompletions.Tags, wordToComplete);
}

/// <summary>Completes the capabilities the agents reported.</summary>
public sealed class CapabilityCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        RegistryCompletion.Complete(FleetCompletions.Capabilities, wordToComplete);
}

/// <summary>Completes the operations the history records (Core's list; no registry needed).</summary>
public sealed class HistoryOperationCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        [.. FleetCompletions.HistoryOperations(wordToComplete).Select(c => new CompletionResult(c.Text, c.ListItem, CompletionResultType.ParameterValue, c.ToolTip))];
}

/// <summary>Completes key fingerprints (pending first) from the registry.</summary>
public sealed class KeyFingerprintCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        RegistryCompletion.Complete(FleetCompletions.KeyFingerprints, wordToComplete);
}

/// <summary>
/// Runs a Core completion source against the module's registry, or through the session's server connection (its
/// answers cached for a few seconds); a registry that cannot be opened or a server that does not answer completes nothing.
/// </summary>
internal static class RegistryCompletion
{
    public static IReadOnlyList<CompletionResult> Complete(Func<IClientStore, string?, IReadOnlyList<Completion>> source, string? word) =>
        Results(Query(source, word));

    public static IReadOnlyList<CompletionResult> Complete(Func<IKeyStore, string?, IReadOnlyList<Completion>> source, string? word) =>
        Results(Query(source, word));

    /// <summary>The completions of <paramref name="source"/> from the module's registry's clients; none when it cannot be opened.</summary>
    public static IReadOnlyList<Completion> Query(Func<IClientStore, string?, IReadOnlyList<Completion>> source, string? word) =>
        ModuleConfiguration.Current.Remote is { } remote
            ? source(new SnapshotClientStore(remote.CompletionClients(RemoteTimeout)), word)
            : Query(stores => source(stores.Clients, word));

    /// <summary>The completions of <paramref name="source"/> from the module's registry's keys; none when it cannot be opened.</summary>
    public static IReadOnlyList<Completion> Query(Func<IKeyStore, string?, IReadOnlyList<Completion>> source, string? word) =>
        ModuleConfiguration.Current.Remote is { } remote
            ? source(new SnapshotKeyStore(remote.CompletionKeys(RemoteTimeout)), word)
            : Query(stores => source(stores.Keys, word));

    /// <summary>How long a completer waits for the server before it completes nothing (the prompt must stay responsive).</summary>
    private static readonly TimeSpan RemoteTimeout = TimeSpan.FromSeconds(5);

    private static IReadOnlyList<CompletionResult> Results(IReadOnlyList<Completion> completions) =>
        [.. completions.Select(c => new CompletionResult(c.Text, c.ListItem, CompletionResultType.ParameterValue, c.ToolTip))];

    private static IReadOnlyList<Completion> Query(Func<RegistryStores, IReadOnlyList<Completion>> read)
    {
        try
        {
            using var registry = EphConfiguration.OpenRegistry(ModuleConfiguration.ResolveDataDirectory().Directory, ModuleConfiguration.Current.Registry);
            return read(registry);
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            // Completion must never throw at the prompt.
            return [];
        }
    }
}
