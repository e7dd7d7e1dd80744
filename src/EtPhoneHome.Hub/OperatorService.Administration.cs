using System.Text.Json;
using EtPhoneHome.Core.Registry;
using EtPhoneHome.Core.Remote;

namespace EtPhoneHome.Hub;

public sealed partial class OperatorService
{
    private sealed partial class Connection
    {
        /// <summary>Operator management (admin only, checked before this runs): list, add, remove, set a role.</summary>
        private partial Task<JsonElement> RunAdministrationAsync(ServerCall call, OperatorIdentity who)
        {
            var store = Registry.Operators;
            var by = who.Name;
            var surface = RemoteSurfaces.Recorded(_surface);
            JsonElement result = call.Op switch
            {
                OperatorOperations.ListOperators => OperatorOperations.ToElement(store.ListOperators(
                    call.Args is { ValueKind: JsonValueKind.Object } a && a.TryGetProperty("includeRemoved", out var all) && all.ValueKind == JsonValueKind.True)),
                OperatorOperations.AddOperator => OperatorOperations.ToElement(store.AddOperator(
                    StringArg(call, "name"), StringArg(call, "key"), OperatorRoles.Parse(StringArg(call, "role")), by, surface)),
                OperatorOperations.RemoveOperator => OperatorOperations.ToElement(store.RemoveOperator(StringArg(call, "name"), by, surface)),
                OperatorOperations.SetOperatorRole => OperatorOperations.ToElement(store.SetOperatorRole(
                    StringArg(call, "name"), OperatorRoles.Parse(StringArg(call, "role")), by, surface)),
                _ => throw new ArgumentException($"the server has no operation \"{call.Op}\""),
            };
            return Task.FromResult(result);
        }
    }
}
