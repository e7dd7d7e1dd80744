using EtPhoneHome.Protocol;

namespace EtPhoneHome.Agent;

/// <summary>
/// An error the agent answers with a code from <see cref="RpcErrorCodes"/>. Its message goes to the operator,
/// so it names the field or path at fault and never carries exception internals.
/// </summary>
public sealed class RpcFault(int code, string message) : Exception(message)
{
    public int Code { get; } = code;
}
