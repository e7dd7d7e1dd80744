using System.CommandLine;

namespace EtPhoneHome.Server.Verbs;

/// <summary>Verbs that set up and run the hub: init, sshd-config, run.</summary>
internal static class HubVerbs
{
    public static void Register(RootCommand root)
    {
        _ = root;
    }
}
