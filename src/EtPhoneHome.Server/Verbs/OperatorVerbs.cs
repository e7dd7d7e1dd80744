using System.CommandLine;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Operator verbs: keys, approve, revoke, clients, exec.</summary>
internal static class OperatorVerbs
{
    public static void Register(RootCommand root)
    {
        _ = root;
    }
}
