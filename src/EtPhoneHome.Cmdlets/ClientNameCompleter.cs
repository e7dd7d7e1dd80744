using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using EtPhoneHome.Core;
using EtPhoneHome.Core.Operations;
using EtPhoneHome.Core.Registry;

namespace EtPhoneHome;

/// <summary>Completes -Name with the display names in the registry.</summary>
public sealed class ClientNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        IReadOnlyList<ClientRecord> clients;
        try
        {
            using var registry = EphConfiguration.OpenRegistry(DataDirectory.Resolve(null));
            clients = registry.QueryClients(new ClientQuery());
        }
        catch (Exception ex) when (ex is InvalidOperationException or IOException or UnauthorizedAccessException)
        {
            return [];
        }

        return ClientQueries.Complete(clients, wordToComplete)
            .Select(c => new CompletionResult(ClientQueries.QuoteIfNeeded(c.DisplayName), c.DisplayName, CompletionResultType.ParameterValue, $"{c.DisplayName} ({c.Uuid})"))
            .ToList();
    }
}
