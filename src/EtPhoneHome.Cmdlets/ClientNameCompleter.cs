using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using EtPhoneHome.Core.Operations;

namespace EtPhoneHome;

/// <summary>Completes -Name with the display names in the registry.</summary>
public sealed class ClientNameCompleter : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters) =>
        RegistryCompletion.Complete(FleetCompletions.ClientNames, wordToComplete);
}
