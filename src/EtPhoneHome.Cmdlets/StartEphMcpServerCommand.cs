using System.Management.Automation;
using EtPhoneHome.Mcp;

namespace EtPhoneHome;

/// <summary>
/// <para type="synopsis">Serves the EtPhoneHome MCP tools to an AI agent over stdio.</para>
/// <para type="description">
/// Meant to be launched by an MCP client as <c>pwsh -NoProfile -Command Start-EphMcpServer</c>. While it
/// serves, stdin and stdout carry the protocol, so the cmdlet writes nothing to any PowerShell stream; log
/// lines go to stderr. Ctrl+C (or the client closing stdin) stops it. For HTTP, use
/// <c>eph-server mcp --http</c> or the hub's <c>eph-server run --http</c>: PowerShell does not ship the
/// ASP.NET Core runtime the HTTP transport needs.
/// </para>
/// </summary>
/// <remarks>
/// No ShouldProcess: a confirmation prompt would be written into the protocol stream. The tools it serves
/// record every operation in the history (surface <c>mcp</c>).
/// </remarks>
[Cmdlet(VerbsLifecycle.Start, "EphMcpServer", HelpUri = HelpLinks.Base + "Start-EphMcpServer.md")]
public sealed class StartEphMcpServerCommand : EphAsyncCmdlet
{
    /// <summary>Per-stream output budget of a tool answer, in bytes.</summary>
    [Parameter]
    [ValidateRange(1024, 1048576)]
    public int MaxOutputBytes { get; set; } = McpServerSettings.DefaultMaxOutputBytes;

    /// <summary>Absolute server directories the tools may read and write local files in (default: the data directory's exchange folder).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string[]? AllowLocalDirectory { get; set; }

    protected override async Task EndProcessingAsync(CancellationToken ct)
    {
        using var registry = OpenRegistry();
        var settings = new McpServerSettings
        {
            MaxOutputBytes = MaxOutputBytes,
            // Absolute paths: this runs on a worker thread, where PowerShell's current location must not be read.
            AllowedLocalDirectories = (AllowLocalDirectory ?? []).Select(d => Path.GetFullPath(d)).ToList(),
        };
        await using var fleet = new McpFleet(registry, settings);

        // Ctrl+C: StopProcessing cancels ct, RunStdioAsync ends, and the base reports a stopped pipeline.
        await EphMcpServer.RunStdioAsync(fleet, ct).ConfigureAwait(false);
    }
}
