namespace EtPhoneHome.Core.Registry;

/// <summary>Names of the surfaces, as they appear in the history.</summary>
public static class Surfaces
{
    public const string PowerShell = "pwsh";
    public const string Mcp = "mcp";
    public const string Cli = "cli";
    public const string Hub = "hub";
}
