using System.CommandLine;
using EtPhoneHome.Server.Verbs;

namespace EtPhoneHome.Server;

/// <summary>eph-server: the hub daemon and the operator verbs for shell scripts.</summary>
public static class Program
{
    public static Task<int> Main(string[] args) => BuildRoot().Parse(args).InvokeAsync();

    /// <summary>The full command tree (also used by tests to check every verb and option).</summary>
    public static RootCommand BuildRoot()
    {
        var root = new RootCommand("EtPhoneHome server: the hub (run) and operator verbs. Every verb takes --data DIR (default $ETPHONEHOME_DATA_DIR, else ~/.etphonehome-server).");
        HubVerbs.Register(root);
        MaintenanceVerbs.Register(root);
        OperatorVerbs.Register(root);
        HealthVerbs.Register(root);
        ExchangeVerbs.Register(root);
        WebhookVerbs.Register(root);
        RateLimitVerbs.Register(root);
        RegistryVerbs.Register(root);
        McpVerbs.Register(root);
        FilesVerbs.Register(root);
        return root;
    }
}
