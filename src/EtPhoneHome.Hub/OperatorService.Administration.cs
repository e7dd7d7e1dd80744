using System.Text.Json;

namespace EtPhoneHome.Hub;

public sealed partial class OperatorService
{
    private sealed partial class Connection
    {
        private partial Task<JsonElement> RunAdministrationAsync(ServerCall call, OperatorIdentity who) =>
            throw new ArgumentException($"{call.Op} is not available yet");
    }
}
