namespace EtPhoneHome;

/// <summary>Where each cmdlet's help page lives online (Get-Help -Online, the HelpUri of every [Cmdlet]).</summary>
internal static class HelpLinks
{
    /// <summary>The docs/help folder of the project repository (ProjectUri in EtPhoneHome.psd1); a page is &lt;Verb-Noun&gt;.md.</summary>
    public const string Base = "https://github.com/etphonehome/etphonehome/blob/main/docs/help/";
}
