using EtPhoneHome.Core.Text;

namespace EtPhoneHome.Core.Registry;

/// <summary>Wording shared by every surface when it names a client.</summary>
public static class ClientText
{
    /// <summary>
    /// "client 'web-01' (3f2a9c1e…)": the display name and enough of the uuid to tell clients apart. The name may have
    /// come from the agent, so its control characters are escaped (<see cref="UntrustedText"/>).
    /// </summary>
    public static string Describe(string displayName, string uuid)
    {
        var shortId = uuid.Length > 8 ? uuid[..8] + "…" : uuid;
        return $"client '{UntrustedText.ForTerminal(displayName)}' ({UntrustedText.ForTerminal(shortId)})";
    }
}
